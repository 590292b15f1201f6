"""Density-matrix simulation of the classifier split over several processors (CEAS Fig. 1b and 1c).

The monolithic classifier of :mod:`ceas_gym.learning.circuit` (angle encoding, ``L`` layers of ``RZ RY`` rotations
followed by the CNOT ring, Pauli-Z readout) is here executed by several processors joined by Bell pairs. The only
noise modelled is that of the joining pairs, so with perfect pairs both forward passes below equal the monolithic
circuit exactly. Node gate noise is left out (it is the data-level environment's subject). This module knows
nothing of Bell pairs: callers pass depolarising strengths ``p`` (probabilities); a Werner pair of fidelity ``F``
gives ``p = 4 (1 - F) / 3`` (:func:`ceas_gym.learning.transport.depolarising_strength`).

State. A batch of ``S`` samples is a ``(S, 2^n, 2^n)`` complex tensor of density matrices, all samples at once.
Qubit 0 is the most significant bit, as in :mod:`ceas_gym.learning.circuit`.

Channels (``p`` in [0, 1]):

* **Single-qubit depolarising** on qubit ``q``: ``rho -> (1 - p) rho + p Tr_q(rho) (x) I/2``. Teleporting one
  qubit through a Werner pair of fidelity ``F`` is exactly this channel with ``p = 4 (1 - F) / 3`` (the Werner pair
  is the perfect pair mixed with white noise of weight ``p``), so any single-qubit Pauli expectation of the
  teleported qubit shrinks by ``1 - p = (4F - 1) / 3``. A qubit whose pair is missing cannot be teleported: the
  receiver holds a maximally mixed qubit (``p = 1``).
* **Two-qubit depolarising** on qubits ``(c, t)``: ``rho -> (1 - p) rho + p Tr_ct(rho) (x) I/4``. Used after a
  non-local CNOT done by gate teleportation through a pair of fidelity ``F`` (``p = 4 (1 - F) / 3``). This is a
  modelling choice (the exact error of a noisy-resource gate teleportation is a Pauli channel that depends on
  the protocol); it has the right end points: ``F = 1`` is the perfect gate, ``F = 1/4`` erases both qubits.

Unitary-level partition (:func:`chain_expectations`, Fig. 1b). The ``L`` layers are cut into consecutive
blocks, block ``k`` run by chain node ``k``; node ``k`` applies its block ``U_k`` and teleports all ``n`` qubits to
node ``k + 1`` (hop ``k``), each qubit through its own pair: ``n`` single-qubit depolarising channels with that
hop's strengths. The last node reads out.

Circuit-level partition (:func:`partitioned_expectations`, Fig. 1c). Every layer applies its rotations (local),
then the CNOT ring in order; each ring gate is either applied perfectly (local), applied and followed by the
two-qubit depolarising channel of its pair (non-local with a pair), or skipped (non-local without a pair: the
gate is not applied; the register stays as it was).

Gradients flow through every channel by autograd (the channels are linear in ``rho``).

Training (:class:`ChannelTrainer`). One flat parameter row in the layout of
:class:`~ceas_gym.learning.classifier.QuantumClassifier` (angles, head weights ``a``, bias ``b``); logits
``a . z + b`` of the distributed readout ``z``; mean binary cross-entropy (nats); one Adam step (torch's
``Adam``, moments kept across steps) per call on a minibatch, through the same channel as the forward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional

from ceas_gym.learning.circuit import COMPLEX_DTYPES, REAL_DTYPES, CircuitConfig
from ceas_gym.learning.circuit_tables import (
    basis_bits,
    batched_kron,
    cnot_ring_pairs,
    encode_product_states,
    ring_source_rows,
    rotation_gates,
)
from ceas_gym.learning.classifier import QuantumClassifier


def cnot_source_rows(num_qubits: int, control: int, target: int) -> np.ndarray:
    """Return ``src`` with ``(CNOT psi)[c] = psi[src[c]]`` (a CNOT is its own inverse, so ``src`` is the image)."""
    bits = basis_bits(num_qubits).copy()
    bits[:, target] ^= bits[:, control]
    return bits @ (2 ** (num_qubits - 1 - np.arange(num_qubits)))


class DensityMatrixCircuit:
    """Batched density-matrix primitives for the classifier circuit on ``n`` qubits.

    Args:
        config: Circuit shape, readout and complex dtype (as for the monolithic circuit).
        device: Torch device.
    """

    def __init__(self, config: CircuitConfig, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.num_qubits = config.num_qubits
        self.dimension = config.dimension
        self.device = torch.device(device)
        self.complex_dtype = COMPLEX_DTYPES[config.dtype]
        self.real_dtype = REAL_DTYPES[self.complex_dtype]
        n = config.num_qubits
        self._ring_rows = torch.as_tensor(ring_source_rows(n), device=self.device)
        self.ring = cnot_ring_pairs(n)
        dimension = self.dimension
        # rho -> P rho P^T for a permutation P is one gather over the flattened (row, column) index.
        self._cnot_entries = []
        for control, target in self.ring:  # setup, once per ring gate
            rows = cnot_source_rows(n, control, target)
            self._cnot_entries.append(
                torch.as_tensor((rows[:, None] * dimension + rows[None, :]).reshape(-1), device=self.device)
            )
        signs = 1.0 - 2.0 * basis_bits(n)
        if config.readout == "first":
            signs = signs[:, :1]
        self._z_signs = torch.as_tensor(signs, dtype=self.real_dtype, device=self.device)
        self._half_identity = torch.eye(2, dtype=self.complex_dtype, device=self.device) / 2

    # ------------------------------------------------------------------------------------- building blocks
    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Return ``(S, D, D)`` density matrices of the angle-encoded features ``(S, n)`` (radians)."""
        psi = encode_product_states(features.to(self.device, self.real_dtype), self.complex_dtype)
        return psi[:, :, None] * psi.conj()[:, None, :]

    def rotation_unitaries(self, angles: torch.Tensor) -> torch.Tensor:
        """Return ``(L, D, D)`` rotation-only unitaries ``K_l = (x)_q RZ RY`` for angles ``(L, n, 2)`` (radians)."""
        return batched_kron(rotation_gates(angles.to(self.device), self.complex_dtype))

    def layer_unitaries(self, angles: torch.Tensor) -> torch.Tensor:
        """Return ``(L, D, D)`` unitaries ``P_ring K_l`` of each layer (rotations, then the CNOT ring)."""
        return self.rotation_unitaries(angles).index_select(1, self._ring_rows)

    @staticmethod
    def apply_unitary(rho: torch.Tensor, unitary: torch.Tensor) -> torch.Tensor:
        """Return ``U rho U^dagger`` for every sample; ``rho`` ``(S, D, D)``, ``unitary`` ``(D, D)``."""
        return unitary @ rho @ unitary.conj().transpose(-1, -2)

    def apply_cnot(self, rho: torch.Tensor, gate: int) -> torch.Tensor:
        """Apply ring gate number ``gate`` (a CNOT, a permutation) to every sample."""
        flat = rho.reshape(rho.shape[0], -1).index_select(1, self._cnot_entries[gate])
        return flat.reshape(rho.shape)

    def fully_mix(self, rho: torch.Tensor, qubit: int) -> torch.Tensor:
        """Return ``Tr_q(rho) (x) I/2`` (qubit ``q`` replaced by the maximally mixed state) for every sample."""
        samples = rho.shape[0]
        before, after = 2**qubit, 2 ** (self.num_qubits - qubit - 1)
        view = rho.reshape(samples, before, 2, after, before, 2, after)
        reduced = view[:, :, 0, :, :, 0, :] + view[:, :, 1, :, :, 1, :]  # (S, A, B, A, B)
        mixed = reduced[:, :, None, :, :, None, :] * self._half_identity[:, None, None, :, None]
        return mixed.reshape(rho.shape)

    def depolarise(self, rho: torch.Tensor, qubits: tuple[int, ...], strength: float) -> torch.Tensor:
        """Return ``(1 - p) rho + p Tr_Q(rho) (x) I/2^|Q|`` for the qubits ``Q`` (probability ``p`` in [0, 1])."""
        if strength <= 0.0:
            return rho
        if len(qubits) == 1:
            return self._depolarise_one(rho, qubits[0], strength)
        return self._depolarise_pair(rho, qubits, strength)

    def _depolarise_one(self, rho: torch.Tensor, qubit: int, strength: float) -> torch.Tensor:
        """Single-qubit depolarising on the ``2 x 2`` (row bit, column bit) blocks of ``qubit``, in one pass.

        With ``a, d`` the diagonal and ``b, c`` the off-diagonal blocks: ``a -> (1 - p/2) a + p/2 d``,
        ``d -> (1 - p/2) d + p/2 a``, ``b -> (1 - p) b``, ``c -> (1 - p) c``.
        """
        samples = rho.shape[0]
        before, after = 2**qubit, 2 ** (self.num_qubits - qubit - 1)
        view = rho.reshape(samples, before, 2, after, before, 2, after)
        diagonal = view[:, :, 0, :, :, 0, :] + view[:, :, 1, :, :, 1, :]  # (S, A, B, A, B): a + d
        result = view * (1.0 - strength)
        for bit in range(2):  # the two diagonal blocks
            result[:, :, bit, :, :, bit, :] += (strength / 2) * diagonal
        return result.reshape(rho.shape)

    def _depolarise_pair(self, rho: torch.Tensor, qubits: tuple[int, ...], strength: float) -> torch.Tensor:
        """Two-qubit depolarising ``(1 - p) rho + p Tr_ct(rho) (x) I/4`` in one pass over the qubits' blocks."""
        first, second = qubits
        n = self.num_qubits
        view = rho.reshape(rho.shape[0], *([2] * (2 * n)))

        def block(bit_first: int, bit_second: int) -> tuple[slice | int, ...]:
            index: list[slice | int] = [slice(None)] * (2 * n + 1)
            for qubit, bit in ((first, bit_first), (second, bit_second)):
                index[1 + qubit] = bit  # row bit
                index[1 + n + qubit] = bit  # column bit
            return tuple(index)

        bits = ((0, 0), (0, 1), (1, 0), (1, 1))
        trace = sum(view[block(*pair)] for pair in bits)  # Tr over the two qubits
        result = view * (1.0 - strength)
        for pair in bits:  # the four diagonal blocks of the pair
            result[block(*pair)] += (strength / 4) * trace
        return result.reshape(rho.shape)

    def readout(self, rho: torch.Tensor) -> torch.Tensor:
        """Return Pauli-Z expectations ``(S, R)`` of density matrices ``(S, D, D)``."""
        populations = torch.diagonal(rho, dim1=-2, dim2=-1).real
        return populations @ self._z_signs


def layer_blocks(num_layers: int, num_blocks: int) -> np.ndarray:
    """Return block boundaries ``(num_blocks + 1,)``: block ``k`` is layers ``[b[k], b[k+1])``.

    Layers are shared out as evenly as possible, earlier blocks taking the extra layers (``numpy.array_split``).
    """
    sizes = np.full(num_blocks, num_layers // num_blocks)
    sizes[: num_layers % num_blocks] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def chain_expectations(
    simulator: DensityMatrixCircuit,
    angles: torch.Tensor,
    features: torch.Tensor,
    blocks: np.ndarray,
    hop_strength: np.ndarray,
) -> torch.Tensor:
    """Unitary-level forward pass: blocks of layers on a chain of nodes, the state teleported between them.

    Args:
        simulator: The density-matrix primitives.
        angles: ``(L, n, 2)`` rotation angles (radians) of the whole circuit.
        features: ``(S, n)`` input features (radians).
        blocks: ``(K + 1,)`` layer boundaries of the ``K`` chain nodes (:func:`layer_blocks`).
        hop_strength: ``(K - 1, n)`` depolarising probability of each qubit's teleportation on each hop
            (1 where the qubit's pair was missing).

    Returns:
        ``(S, R)`` Pauli-Z expectations read out at the last node.
    """
    num_hops = len(blocks) - 2
    if hop_strength.shape != (num_hops, simulator.num_qubits):
        raise ValueError(f"hop_strength: expected shape {(num_hops, simulator.num_qubits)}, got {hop_strength.shape}")
    unitaries = simulator.layer_unitaries(angles)
    rho = simulator.encode(features)
    for node in range(num_hops + 1):  # loop over chain nodes (the sequential pipeline), not samples
        for layer in range(int(blocks[node]), int(blocks[node + 1])):
            rho = simulator.apply_unitary(rho, unitaries[layer])
        if node < num_hops:
            for qubit in range(simulator.num_qubits):  # each qubit through its own pair
                rho = simulator.depolarise(rho, (qubit,), float(hop_strength[node, qubit]))
    return simulator.readout(rho)


def partitioned_expectations(
    simulator: DensityMatrixCircuit,
    angles: torch.Tensor,
    features: torch.Tensor,
    gate_applied: np.ndarray,
    gate_strength: np.ndarray,
) -> torch.Tensor:
    """Circuit-level forward pass: a register split over nodes, non-local ring CNOTs by gate teleportation.

    Args:
        simulator: The density-matrix primitives.
        angles: ``(L, n, 2)`` rotation angles (radians).
        features: ``(S, n)`` input features (radians).
        gate_applied: ``(L, G)`` bool, whether ring gate ``g`` of layer ``l`` was applied (False: skipped for lack
            of a pair). ``G`` is the number of ring CNOTs.
        gate_strength: ``(L, G)`` two-qubit depolarising probability after each applied gate (0 for local gates).

    Returns:
        ``(S, R)`` Pauli-Z expectations.
    """
    shape = (angles.shape[0], len(simulator.ring))
    if gate_applied.shape != shape or gate_strength.shape != shape:
        raise ValueError(f"gate_applied and gate_strength: expected shape {shape}")
    rotations = simulator.rotation_unitaries(angles)
    rho = simulator.encode(features)
    for layer in range(shape[0]):  # loop over layers and gates (the circuit's schedule), not samples
        rho = simulator.apply_unitary(rho, rotations[layer])
        for gate, qubits in enumerate(simulator.ring):
            if gate_applied[layer, gate]:
                rho = simulator.apply_cnot(rho, gate)
                rho = simulator.depolarise(rho, qubits, float(gate_strength[layer, gate]))
    return simulator.readout(rho)


Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(angles (L, n, 2), features (S, n)) -> (S, R)`` readout of one distributed execution."""


class ChannelTrainer:
    """Adam on one flat classifier row whose forward pass runs through a distributed channel.

    Args:
        model: Supplies the flat layout (``split``) and the initial row.
        learning_rate: Adam step size (radians per unit gradient for the angles).
    """

    def __init__(self, model: QuantumClassifier, learning_rate: float) -> None:
        self.model = model
        self.learning_rate = learning_rate
        self.params = torch.zeros(model.num_parameters, dtype=model.dtype, device=model.device)
        self._optimizer: torch.optim.Adam | None = None

    def reset(self, initial: torch.Tensor) -> None:
        """Start from the flat row ``initial`` ``(P,)`` with fresh Adam moments."""
        self.params = initial.detach().clone().to(self.model.device, self.model.dtype).requires_grad_(True)
        self._optimizer = torch.optim.Adam([self.params], lr=self.learning_rate)

    def logits(self, flat: torch.Tensor, forward: Forward, features: torch.Tensor) -> torch.Tensor:
        """Return ``(S,)`` logits ``a . z + b`` of the distributed readout ``z`` for the row ``flat`` ``(P,)``."""
        angles, weights, bias = self.model.split(flat[None])
        readout = forward(angles[0], features).to(weights.dtype)
        return readout @ weights[0] + bias[0]

    def step(self, forward: Forward, features: torch.Tensor, labels: torch.Tensor) -> float:
        """One Adam step on the minibatch through ``forward``; returns the loss before the step (nats)."""
        if self._optimizer is None:
            raise RuntimeError("ChannelTrainer.step called before reset")
        self._optimizer.zero_grad()
        logits = self.logits(self.params, forward, features)
        loss = functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        loss.backward()
        self._optimizer.step()
        return float(loss.detach())

    def evaluate(
        self, flat: torch.Tensor, forward: Forward, features: torch.Tensor, labels: torch.Tensor
    ) -> tuple[float, float]:
        """Return ``(accuracy, loss)`` of the row ``flat`` on ``(features, labels)`` through ``forward``."""
        with torch.no_grad():
            logits = self.logits(flat.detach(), forward, features)
            targets = labels.to(logits.dtype)
            accuracy = float(((logits >= 0).to(logits.dtype) == targets).to(logits.dtype).mean())
            loss = float(functional.binary_cross_entropy_with_logits(logits, targets))
        return accuracy, loss
