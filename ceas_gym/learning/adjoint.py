"""Closed-form gradient of the classifier's loss for the ``Z_0`` readout, without autograd.

Local training needs, for every node, the gradient of its mean binary cross-entropy with respect to its own
parameter row. Autograd through the fused unitary (:meth:`BatchedCircuit.stacked_unitary`) gets it, but records and
replays a graph of many small operations and builds the full observable. For ``readout="first"`` the loss has a
shorter form, and its gradient a short hand-written backward pass (this module, as in the adjoint method of circuit
simulators, at the level of the ``D x D`` layer matrices rather than per sample).

Forward. With ``P_1`` the projector on ``q_0 = 1`` (the lower ``H = D/2`` basis rows),
``<Z_0> = 1 - 2 p`` with ``p = ||P_1 U x||^2``, for the normalised encoded state ``x``. The last layer is
``V_L = D_L Y'_L`` (diagonal phases, then the real factor with the ring's rows, :mod:`ceas_gym.learning.circuit`),
and a diagonal phase does not change a squared modulus, so

    p = ||R x||^2,   R = K W,   K = Y'_L[H:, :] (real, H x D),   W = V_{L-1} ... V_1 (complex, D x D).

``R`` is ``H x D`` complex; with ``R_s = [Re R; Im R]`` (``D x D`` real) the samples need one real product,
``v = R_s x`` and ``p = |v|^2``. The last layer's RZ angles do not enter: their gradient is exactly zero.

Backward, per node, with ``delta_s = (sigmoid(logit_s) - y_s) / S`` (``S`` samples) and the logit
``w g (1 - 2 p_s) + b`` (head weight ``w``, white-noise shrink ``g``, bias ``b``):

* ``dL/db = sum_s delta_s``, ``dL/dw = sum_s delta_s g (1 - 2 p_s)``;
* ``dL/dR_s = sum_s gamma_s 2 v_s x_s^T`` with ``gamma_s = dL/dp_s = -2 w g delta_s``;
* with the complex gradient ``G = dL/dRe + i dL/dIm`` of each complex matrix: ``G_R = [dL/dR_s]_top + i
  [dL/dR_s]_bottom``; ``dL/dK = Re(G_R W^H)``, ``G_W = K^T G_R``;
* through ``W_l = diag(e^{i phi_l}) T_l``, ``T_l = Y'_l W_{l-1}`` (``W_0 = I``), from ``l = L - 1`` down:
  ``dL/dphi_l[r] = sum_c Im(G_W[r, c] conj(W_l[r, c]))``, ``G_T = diag(e^{-i phi_l}) G_W``,
  ``dL/dY'_l = Re(G_T W_{l-1}^H)``, ``G_{W_{l-1}} = Y'_l^T G_T``;
* RZ angles from the phases (``phi_l[r] = sum_q b_q sigma_q(r)``, so ``dL/db_q = sum_r dL/dphi_l[r] sigma_q(r)``)
  and RY angles from ``dL/dY'_l`` by :meth:`BatchedCircuit.real_factor_angle_gradient`.

Complex matrices are multiplied by real ones on their interleaved ``(Re, Im)`` view (one real batched matmul), and
``Re(A B^H)`` is the interleaved view of ``A`` times the transposed interleaved view of ``B``. Every product is
batched per node (no matmul over rows of several nodes), so a node's gradient does not depend on the batch it is
computed in. Tests compare it with autograd through :meth:`QuantumClassifier.loss` and with the parameter-shift
rule.
"""

from __future__ import annotations

import torch

from ceas_gym.learning.classifier import QuantumClassifier


def supports_closed_form(model: QuantumClassifier) -> bool:
    """Whether :func:`loss_gradient` covers the model (the ``Z_0`` readout, ``readout="first"``)."""
    return model.config.readout == "first"


def _interleaved(state: torch.Tensor) -> torch.Tensor:
    """Complex ``(..., D, K)`` -> real ``(..., D, 2K)`` with (Re, Im) of each entry side by side (a view)."""
    return torch.view_as_real(state).flatten(-2)


def _complex(interleaved: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_interleaved` (a view when contiguous)."""
    return torch.view_as_complex(interleaved.unflatten(-1, (-1, 2)))


def loss_gradient(
    model: QuantumClassifier,
    flat: torch.Tensor,
    features: torch.Tensor,
    labels: torch.Tensor,
    shrink: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gradient of every row's mean binary cross-entropy with respect to that row (module docstring).

    Args:
        model: The classifier; its readout must be ``"first"`` (:func:`supports_closed_form`).
        flat: ``(B, P)`` parameter rows.
        features: ``(B, S, n)`` each row's features (radians).
        labels: ``(B, S)`` labels in {0, 1}.
        shrink: ``(B,)`` white-noise factors, or None for the noise-free circuit.

    Returns:
        ``(B, P)`` gradients in the flat layout of :meth:`QuantumClassifier.split` (nats per radian for the angles).

    Raises:
        ValueError: If the readout is not ``"first"``.
    """
    if not supports_closed_form(model):
        raise ValueError(f"loss_gradient covers readout='first' only, got readout={model.config.readout!r}")
    circuit = model.circuit
    flat = flat.detach().to(model.device, model.dtype)
    angles, weights, bias = model.split(flat)
    batch, layers = angles.shape[0], angles.shape[1]
    dimension = circuit.config.dimension
    half = dimension // 2
    factors = circuit.real_layer_factors(angles[..., 0])  # (B, L, D, D) real, Y'_l
    rotations = circuit.row_rotations(angles[..., 1])  # (B, L, D, 1) complex, e^{i phi_l}
    lower = factors[:, -1, half:, :]  # K = Y'_L[H:, :], (B, H, D)

    if layers > 1:
        prefixes = circuit.layer_products(factors.unbind(1), rotations.unbind(1), layers - 1)  # W_1 ... W_{L-1}
        reduced = lower @ _interleaved(prefixes[-1])  # R = K W, interleaved (B, H, 2D)
        stacked = reduced.unflatten(-1, (dimension, 2)).permute(0, 3, 1, 2).reshape(batch, dimension, dimension)
    else:
        stacked = torch.cat([lower, torch.zeros_like(lower)], dim=1)  # W = I: R = K is real

    encoded = circuit.encode_real(features)  # (B, S, D)
    projected = encoded @ stacked.transpose(-1, -2)  # v_s = R_s x_s, (B, S, D)
    probability = projected.square().sum(-1)  # p_s, (B, S)
    readout = 1 - 2 * probability
    head = weights[:, 0]
    gain = head  # dlogit/d<Z_0>: the head weight, times the white-noise shrink
    if shrink is not None:
        shrink = shrink.to(readout.device, readout.dtype)
        readout = readout * shrink[:, None]
        gain = head * shrink
    logits = readout * head[:, None] + bias[:, None]
    targets = labels.to(logits.device, logits.dtype)
    delta = (torch.sigmoid(logits) - targets) / logits.shape[-1]  # dL/dlogit_s
    grad_bias = delta.sum(-1)
    grad_head = (delta * readout).sum(-1)
    weighted = projected * (delta * (-4 * gain)[:, None])[..., None]  # gamma_s 2 v_s, gamma_s = -2 w g delta_s
    grad_stacked = weighted.transpose(-1, -2) @ encoded  # dL/dR_s, (B, D, D)

    zero = torch.zeros(batch, circuit.config.num_qubits, dtype=factors.dtype, device=factors.device)
    grad_ry: list[torch.Tensor] = []  # per layer, last first
    grad_rz = [zero]  # the last layer's RZ angles do not enter p
    if layers == 1:
        grad_ry.append(circuit.real_factor_angle_gradient(grad_stacked[:, :half], lower))
    else:
        grad_reduced = torch.stack([grad_stacked[:, :half], grad_stacked[:, half:]], dim=-1).flatten(-2)  # G_R
        grad_lower = grad_reduced @ _interleaved(prefixes[-1]).transpose(-1, -2)  # dL/dK = Re(G_R W^H)
        grad_ry.append(circuit.real_factor_angle_gradient(grad_lower, lower))
        grad_prefix = lower.transpose(-1, -2) @ grad_reduced  # G_W, interleaved (B, D, 2D)
        for layer in range(layers - 2, -1, -1):  # backward over layers (L), not nodes
            gradient = _complex(grad_prefix)
            grad_phase = (gradient * prefixes[layer].conj()).imag.sum(-1)  # dL/dphi_l, (B, D)
            grad_rz.append(circuit.phase_angle_gradient(grad_phase))
            grad_inner = gradient * rotations[:, layer].conj()  # G_T
            if layer == 0:  # W_0 = I
                # .real is a view with stride 2: contiguous, or the matmul falls back to one product per node
                grad_ry.append(circuit.real_factor_angle_gradient(grad_inner.real.contiguous(), factors[:, 0]))
                break
            inner = _interleaved(grad_inner)
            grad_factor = inner @ _interleaved(prefixes[layer - 1]).transpose(-1, -2)  # Re(G_T W_{l-1}^H)
            grad_ry.append(circuit.real_factor_angle_gradient(grad_factor, factors[:, layer]))
            grad_prefix = factors[:, layer].transpose(-1, -2) @ inner

    grad_angles = torch.stack([torch.stack(grad_ry[::-1], dim=1), torch.stack(grad_rz[::-1], dim=1)], dim=-1)
    return model.join(grad_angles, grad_head[:, None], grad_bias)
