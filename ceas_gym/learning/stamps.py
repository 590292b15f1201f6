"""Fidelity stamps (CEAS Def. 1): one reliability scalar per node in (0, 1].

Ingredients, per node ``k``:

* ``q_k in [0, 1]``, the normalised quantum Fisher information (QFI) of the local circuit. For the pure output
  state ``|psi(x; theta)> = U(theta) |x>`` (``|x>`` the encoded sample) the QFI matrix is

      F_ij = 4 Re[ <d_i psi | d_j psi> - <d_i psi | psi> <psi | d_j psi> ],

  averaged over a few probe samples. For rotations ``exp(-i theta P / 2)`` with a Pauli ``P`` the derivative
  state is exact and cheap: ``d_j psi = psi(theta + pi e_j) / 2``, so all ``2nL`` derivatives of all nodes come
  from one batched simulation. Each diagonal entry is ``4 Var(P/2) <= 1``, so ``q_k = tr(F) / (2nL)`` lies in
  ``[0, 1]``. (Example: ``RY(theta)|0>`` has ``F = 1``.)

  The shifted states are not simulated one circuit each. ``RY(a + pi) = RY(a) (-i Y)`` and
  ``RZ(b + pi) = (-i Z) RZ(b)``, so with the layer unitaries ``V_l = P_ring K_l`` (:mod:`ceas_gym.learning.circuit`),
  prefix states ``phi_l = V_{l-1} ... V_0 |x>`` and suffix unitaries ``T_l = V_{L-1} ... V_l`` (``T_L = I``):

      RY shift of qubit q in layer l:  psi = T_l (-i Y_q) phi_l,
      RZ shift of qubit q in layer l:  psi = T_{l+1} (-i Z~_q) phi_{l+1},

  where ``(-i Y_q phi)[c] = (2 bit_q(c) - 1) phi[c XOR 2^(n-1-q)]`` and ``Z~_q = P_ring Z_q P_ring^T`` is diagonal
  with entries ``s_q(src[c])`` (``s_q = 1 - 2 bit_q``). This is exact (equal up to floating-point reassociation to
  simulating each shifted circuit) and costs ``O(L)`` small matmuls instead of ``2nL`` circuit constructions.
  The stamp needs only the trace, and each diagonal entry has a closed form without derivative states,
  ``F_jj = <chi|chi> - <chi|P_j|chi>^2`` with ``chi`` the state the gate acts on (:func:`qfi_trace_score`): one pass
  over the layers and ``2nL`` expectation values per probe.
* ``D_k in [0, 1)``, the process infidelity of the node's effective white-noise channel,
  ``(1 - g_k)(1 - 1/4^n)`` (:func:`ceas_gym.learning.noise.process_infidelity`).
* ``F_pair,k in (0, 1]``, the mean fidelity of the Bell pairs the node's update travelled through (1 when it
  travelled through none).

Stamp:

    phi_k = [(kappa + q_k) / (kappa + 1)] * (1 - D_k)^{gamma_c} * F_pair,k^{gamma_p}

with ``kappa > 0`` (default 1), ``gamma_c, gamma_p >= 0`` (default 1). Each factor lies in (0, 1], so
``phi_k in (0, 1]``; ``phi_k = 1`` exactly for maximal QFI, a perfect channel and perfect pairs. The stamp is
strictly increasing in ``q_k`` and, for positive exponents, strictly decreasing in ``D_k`` and in ``1 - F_pair``.
``kappa`` keeps the stamp positive when the QFI vanishes and sets how much the QFI can matter: the QFI factor
ranges over ``[kappa / (kappa + 1), 1]``.
"""

from __future__ import annotations

import dataclasses

import torch

from ceas_gym.config import check_range
from ceas_gym.learning.circuit import BatchedCircuit
from ceas_gym.learning.circuit_tables import layer_phase_signs, ring_source_rows
from ceas_gym.learning.classifier import QuantumClassifier
from ceas_gym.learning.noise import NodeNoise, expectation_shrink, process_infidelity


@dataclasses.dataclass(frozen=True)
class StampConfig:
    """Shape of the stamp function.

    Attributes:
        qfi_offset: kappa > 0; the QFI factor spans ``[kappa / (kappa + 1), 1]``.
        channel_exponent: gamma_c >= 0, weight of the channel process fidelity.
        pair_exponent: gamma_p >= 0, weight of the Bell-pair fidelity.
    """

    qfi_offset: float = 1.0
    channel_exponent: float = 1.0
    pair_exponent: float = 1.0

    def __post_init__(self) -> None:
        check_range("StampConfig.qfi_offset", self.qfi_offset, 0.0, None, low_inclusive=False)
        check_range("StampConfig.channel_exponent", self.channel_exponent, 0.0, 100.0)
        check_range("StampConfig.pair_exponent", self.pair_exponent, 0.0, 100.0)


def quantum_fisher_information(
    circuit: BatchedCircuit, angles: torch.Tensor, probe_features: torch.Tensor
) -> torch.Tensor:
    """Return the probe-averaged QFI matrix of the pure output state w.r.t. the circuit angles.

    Args:
        circuit: The simulator.
        angles: ``(B, L, n, 2)`` circuit angles (radians).
        probe_features: ``(B, M, n)`` or ``(M, n)`` probe samples (radians).

    Returns:
        ``(B, 2nL, 2nL)`` real symmetric QFI matrices (per radian squared).
    """
    psi, derivatives = _probe_state_derivatives(circuit, angles, probe_features)
    gram = torch.einsum("bimd,bjmd->bmij", derivatives.conj(), derivatives)
    overlap = torch.einsum("bimd,bmd->bmi", derivatives.conj(), psi)  # <d_i psi | psi>
    berry = overlap[..., :, None] * overlap.conj()[..., None, :]
    return (4 * (gram - berry).real).mean(1)


def qfi_trace_score(circuit: BatchedCircuit, angles: torch.Tensor, probe_features: torch.Tensor) -> torch.Tensor:
    """Return ``q = tr(F) / P``, the normalised trace of the probe-averaged QFI, in closed form.

    Equal to ``normalised_qfi_trace(quantum_fisher_information(...))`` without any derivative state. The angle
    ``j`` enters as ``exp(-i theta_j P_j / 2)`` with a Pauli ``P_j``, so ``d_j psi = U_after (-i P_j / 2) chi_j``
    with ``chi_j`` the state the gate acts on and ``U_after`` unitary, and

        F_jj = 4 (<d_j psi|d_j psi> - |<d_j psi|psi>|^2) = <chi_j|chi_j> - <chi_j|P_j|chi_j>^2.

    ``P_j`` commutes with the other single-qubit gates of its layer that come before it, so ``chi_j`` can be taken as
    the layer's input ``phi_l`` for an RY angle (``P = Y_q``) and as the layer's output ``phi_{l+1}`` for an RZ angle
    (``P = Z~_q = P_ring Z_q P_ring^T``, diagonal with entries ``s_q(src[c])``): one pass over the layers
    (:meth:`BatchedCircuit.prefix_states`) and ``2nL`` expectation values per probe, no suffix unitaries.
    With ``phi = A + iB``: ``<Y_q> = sum_c s_q(c) (A_c B_{c'} - B_c A_{c'})`` (``c' = c XOR 2^(n-1-q)``) and
    ``<Z~_q> = sum_c s_q(src[c]) (A_c^2 + B_c^2)``.

    Args:
        circuit: The simulator.
        angles: ``(B, L, n, 2)`` circuit angles (radians).
        probe_features: ``(B, M, n)`` or ``(M, n)`` probe samples (radians).

    Returns:
        ``(B,)`` scores in [0, 1].
    """
    if probe_features.dim() == 2:
        probe_features = probe_features.expand(angles.shape[0], *probe_features.shape)
    n = circuit.config.num_qubits
    with torch.no_grad():
        real, imag = circuit.prefix_states(angles.detach(), probe_features)  # (B, L + 1, M, D) each
        real, imag = real.contiguous(), imag.contiguous()
        ring_signs = -2 * torch.as_tensor(layer_phase_signs(n), dtype=real.dtype, device=real.device)  # s_q(src[c])
        before_real, before_imag = real[:, :-1], imag[:, :-1]  # phi_l, l < L: (B, L, M, D)
        pauli_y = []
        for qubit in range(n):  # loop over qubits (n), not nodes: c and c' = c XOR 2^(n-1-q) as two views
            shape = (*before_real.shape[:-1], 2**qubit, 2, 2 ** (n - 1 - qubit))
            a, b = before_real.reshape(shape), before_imag.reshape(shape)
            pairs = a[..., 0, :] * b[..., 1, :] - b[..., 0, :] * a[..., 1, :]  # bit_q(c) = 0 terms
            pauli_y.append(2 * pairs.sum((-1, -2)))  # the bit_q(c) = 1 terms repeat them (s_q flips the sign)
        pauli_y = torch.stack(pauli_y, dim=-1)  # (B, L, M, n)
        norm_before = (before_real.square() + before_imag.square()).sum(-1, keepdim=True)  # (B, L, M, 1)
        after = real[:, 1:].square() + imag[:, 1:].square()  # |phi_{l+1}|^2: (B, L, M, D)
        pauli_z = (after[..., None, :] * ring_signs).sum(-1)  # (B, L, M, n)
        norm_after = after.sum(-1, keepdim=True)
        diagonal = torch.stack([norm_before - pauli_y.square(), norm_after - pauli_z.square()], dim=-1)
        return diagonal.mean((1, 2, 3, 4)).clamp(0.0, 1.0)


def _probe_state_derivatives(
    circuit: BatchedCircuit, angles: torch.Tensor, probe_features: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`shifted_state_derivatives` of detached angles, with ``(M, n)`` probes shared by every row."""
    if probe_features.dim() == 2:
        probe_features = probe_features.expand(angles.shape[0], *probe_features.shape)
    angles = angles.detach().to(circuit.device, circuit.real_dtype)
    return shifted_state_derivatives(circuit, angles, probe_features)


def shifted_state_derivatives(
    circuit: BatchedCircuit, angles: torch.Tensor, probe_features: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the output states and their exact angle derivatives ``psi(theta + pi e_j) / 2`` (module docstring).

    Args:
        circuit: The simulator.
        angles: ``(B, L, n, 2)`` circuit angles (radians).
        probe_features: ``(B, M, n)`` probe samples (radians).

    Returns:
        ``psi`` ``(B, M, D)`` and derivatives ``(B, 2nL, M, D)`` with ``j`` the flat (row-major) angle index.
    """
    batch, num_layers, n = angles.shape[:3]
    dimension = circuit.config.dimension
    layers = circuit.layer_unitaries(angles).unbind(1)  # L x (B, D, D)
    prefix = [circuit.encode(probe_features)]  # phi_0 (B, M, D)
    for layer in layers:  # loop over layers (L), not nodes
        prefix.append(prefix[-1] @ layer.transpose(-1, -2))
    identity = torch.eye(dimension, dtype=circuit.complex_dtype, device=circuit.device).expand(batch, -1, -1)
    suffix = [identity]  # T_L, then T_{L-1}, ..., T_0
    for layer in reversed(layers):  # loop over layers (L), not nodes
        suffix.append(suffix[-1] @ layer)
    phi = torch.stack(prefix, dim=1)  # (B, L + 1, M, D)
    suffix_t = torch.stack(suffix[::-1], dim=1).transpose(-1, -2)  # (B, L + 1, D, D): T_l^T
    basis = torch.arange(dimension, device=circuit.device)
    masks = 2 ** (n - 1 - torch.arange(n, device=circuit.device))  # (n,)
    bits = (basis[None, :] & masks[:, None]) != 0  # (n, D): bit_q(c)
    flipped = (basis[None, :] ^ masks[:, None]).reshape(-1)  # (n * D,): c XOR 2^(n-1-q)
    complex_dtype = circuit.complex_dtype
    y_sign = (2.0 * bits - 1.0).to(complex_dtype)  # (n, D)
    z_phase = (-1j * (1.0 - 2.0 * bits[:, torch.as_tensor(ring_source_rows(n), device=circuit.device)])).to(
        complex_dtype
    )  # (n, D): -i s_q(src[c])
    probes = phi.shape[2]
    # Rows ordered (M, n) so each layer's states meet its suffix unitary in one plain batched matmul.
    y_applied = phi[:, :num_layers].index_select(-1, flipped).unflatten(-1, (n, dimension)) * y_sign  # (B,L,M,n,D)
    z_applied = phi[:, 1:, :, None, :] * z_phase  # (B, L, M, n, D): -i Z~_q phi_{l+1}
    ry_states = y_applied.reshape(batch, num_layers, probes * n, dimension) @ suffix_t[:, :num_layers]
    rz_states = z_applied.reshape(batch, num_layers, probes * n, dimension) @ suffix_t[:, 1:]
    stacked = torch.stack([ry_states, rz_states], dim=-2).unflatten(2, (probes, n))  # (B, L, M, n, 2, D)
    derivatives = stacked.permute(0, 1, 3, 4, 2, 5) / 2  # (B, L, n, 2, M, D)
    return phi[:, num_layers], derivatives.reshape(batch, num_layers * n * 2, *derivatives.shape[-2:])


def normalised_qfi_trace(qfi: torch.Tensor) -> torch.Tensor:
    """Return ``q = tr(F) / P`` per node, in [0, 1] for Pauli-rotation generators; ``(B, P, P)`` -> ``(B,)``."""
    return torch.diagonal(qfi, dim1=-2, dim2=-1).mean(-1).clamp(0.0, 1.0)


def fidelity_stamp(
    qfi_score: torch.Tensor,
    channel_infidelity: torch.Tensor,
    pair_fidelity: torch.Tensor,
    config: StampConfig | None = None,
) -> torch.Tensor:
    """Return ``phi = [(kappa + q)/(kappa + 1)] (1 - D)^{gamma_c} F_pair^{gamma_p}`` elementwise.

    Args:
        qfi_score: q in [0, 1] per node.
        channel_infidelity: D in [0, 1) per node.
        pair_fidelity: Mean Bell-pair fidelity in (0, 1] per node.
        config: Stamp shape.

    Returns:
        Stamps in (0, 1], broadcast shape of the inputs.

    Raises:
        ValueError: If an input lies outside its allowed range.
    """
    config = config or StampConfig()
    q = torch.as_tensor(qfi_score, dtype=torch.float64)
    infidelity = torch.as_tensor(channel_infidelity, dtype=torch.float64)
    pair = torch.as_tensor(pair_fidelity, dtype=torch.float64)
    if bool(torch.any((q < 0) | (q > 1) | torch.isnan(q))):
        raise ValueError("qfi_score must lie in [0, 1]")
    if bool(torch.any((infidelity < 0) | (infidelity >= 1) | torch.isnan(infidelity))):
        raise ValueError("channel_infidelity must lie in [0, 1)")
    if bool(torch.any((pair <= 0) | (pair > 1) | torch.isnan(pair))):
        raise ValueError("pair_fidelity must lie in (0, 1]")
    qfi_factor = (config.qfi_offset + q) / (config.qfi_offset + 1)
    return qfi_factor * (1 - infidelity) ** config.channel_exponent * pair**config.pair_exponent


def compute_stamps(
    model: QuantumClassifier,
    parameters: torch.Tensor,
    probe_features: torch.Tensor,
    noise: NodeNoise,
    pair_fidelity: torch.Tensor | None = None,
    config: StampConfig | None = None,
) -> torch.Tensor:
    """Return every node's stamp from its parameters, hardware noise and Bell-pair fidelity.

    Args:
        model: The classifier (its circuit is used for the QFI).
        parameters: ``(num_nodes, P)`` flat parameter rows.
        probe_features: ``(M, n)`` shared or ``(num_nodes, M, n)`` per-node probe samples (radians).
        noise: The nodes' error rates.
        pair_fidelity: ``(num_nodes,)`` mean pair fidelity, or None for 1 (no pairs used).
        config: Stamp shape.

    Returns:
        ``(num_nodes,)`` float64 stamps in (0, 1].
    """
    angles, _, _ = model.split(parameters)
    q = qfi_trace_score(model.circuit, angles, probe_features).cpu()
    infidelity = process_infidelity(expectation_shrink(noise, model.config), model.config.num_qubits)
    pair = torch.ones_like(infidelity) if pair_fidelity is None else torch.as_tensor(pair_fidelity).cpu()
    return fidelity_stamp(q.double(), infidelity, pair.double(), config)
