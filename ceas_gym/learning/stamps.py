"""Fidelity stamps (CEAS Def. 1): one reliability scalar per node in (0, 1].

Ingredients, per node ``k``:

* ``q_k in [0, 1]``, the normalised quantum Fisher information (QFI) of the local circuit. For the pure output
  state ``|psi(x; theta)> = U(theta) |x>`` (``|x>`` the encoded sample) the QFI matrix is

      F_ij = 4 Re[ <d_i psi | d_j psi> - <d_i psi | psi> <psi | d_j psi> ],

  averaged over a few probe samples. For rotations ``exp(-i theta P / 2)`` with a Pauli ``P`` the derivative
  state is exact and cheap: ``d_j psi = psi(theta + pi e_j) / 2``, so all ``2nL`` derivatives of all nodes come
  from one batched simulation. Each diagonal entry is ``4 Var(P/2) <= 1``, so ``q_k = tr(F) / (2nL)`` lies in
  ``[0, 1]``. (Example: ``RY(theta)|0>`` has ``F = 1``.)
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
import math

import torch

from ceas_gym.config import check_range
from ceas_gym.learning.circuit import BatchedCircuit
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
    batch = angles.shape[0]
    count = angles[0].numel()
    if probe_features.dim() == 2:
        probe_features = probe_features.expand(batch, *probe_features.shape)
    probes = probe_features.shape[1]
    angles = angles.detach().to(circuit.device, circuit.real_dtype)
    eye = torch.eye(count, dtype=angles.dtype, device=angles.device).reshape(count, *angles.shape[1:])
    shifted = torch.cat([angles[:, None], angles[:, None] + math.pi * eye[None]], dim=1)  # (B, 1 + P, L, n, 2)
    states = circuit.states(
        shifted.reshape(-1, *angles.shape[1:]),
        probe_features[:, None].expand(batch, count + 1, probes, -1).reshape(batch * (count + 1), probes, -1),
    ).reshape(batch, count + 1, probes, -1)
    psi = states[:, 0]  # (B, M, D)
    derivatives = states[:, 1:] / 2  # (B, P, M, D)
    gram = torch.einsum("bimd,bjmd->bmij", derivatives.conj(), derivatives)
    overlap = torch.einsum("bimd,bmd->bmi", derivatives.conj(), psi)  # <d_i psi | psi>
    berry = overlap[..., :, None] * overlap.conj()[..., None, :]
    return (4 * (gram - berry).real).mean(1)


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
    q = normalised_qfi_trace(quantum_fisher_information(model.circuit, angles, probe_features)).cpu()
    infidelity = process_infidelity(expectation_shrink(noise, model.config), model.config.num_qubits)
    pair = torch.ones_like(infidelity) if pair_fidelity is None else torch.as_tensor(pair_fidelity).cpu()
    return fidelity_stamp(q.double(), infidelity, pair.double(), config)
