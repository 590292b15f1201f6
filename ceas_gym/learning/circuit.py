"""Batched state-vector simulation of the variational quantum classifier, all nodes and samples at once.

Circuit (DESIGN.md section 4), on ``n`` qubits with ``L`` layers:

1. Angle encoding: ``RY(x_q)`` on qubit ``q`` for feature ``x_q`` (radians), from ``|0...0>``.
2. ``L`` variational layers, each: ``RY(theta[l, q, 0])`` then ``RZ(theta[l, q, 1])`` on every qubit, then a CNOT
   ring ``CNOT(0,1), CNOT(1,2), ..., CNOT(n-2,n-1), CNOT(n-1,0)`` applied in that order. For ``n = 2`` the ring
   is the single ``CNOT(0,1)``; for ``n = 1`` there is no CNOT.
3. Readout: Pauli-Z expectation on qubit 0 (``readout="first"``) or on every qubit (``readout="all"``).

Conventions: ``RY(a) = exp(-i a Y / 2)``, ``RZ(b) = exp(-i b Z / 2)``; qubit 0 is the most significant bit of the
basis-state index (``|q0 q1 ... q_{n-1}>``, as in PennyLane); angles are in radians.

Batched simulation: per node, the ``L`` layers are fused into one ``2^n x 2^n`` unitary
``U = P_ring K_L ... P_ring K_1`` where ``K_l`` is the Kronecker product of the single-qubit ``RZ RY`` gates
(built batched over nodes, differentiable) and ``P_ring`` is the CNOT ring's permutation (a row gather). Each
sample's encoded product state is built as a ``(num_nodes, samples, 2^n)`` tensor and all outputs come from one
batched matmul. Parameters have shape ``(num_nodes, L, n, 2)``.

Gradients: autograd through the fused unitary, or :func:`parameter_shift_jacobian`, the exact two-term rule
``d<Z>/dtheta = (<Z>(theta + pi/2) - <Z>(theta - pi/2)) / 2`` valid for ``RY`` and ``RZ`` (generators with
eigenvalues +-1/2).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ceas_gym.config import check_choice, check_int

READOUTS = ("first", "all")
COMPLEX_DTYPES = {"complex64": torch.complex64, "complex128": torch.complex128}
REAL_DTYPES = {torch.complex64: torch.float32, torch.complex128: torch.float64}


@dataclasses.dataclass(frozen=True)
class CircuitConfig:
    """Shape of the variational circuit.

    Attributes:
        num_qubits: Number of qubits n (one feature per qubit).
        num_layers: Number of variational layers L.
        readout: ``"first"`` (Pauli-Z on qubit 0) or ``"all"`` (Pauli-Z on every qubit).
        dtype: Complex dtype of the simulation, ``"complex64"`` or ``"complex128"``.
    """

    num_qubits: int = 4
    num_layers: int = 3
    readout: str = "first"
    dtype: str = "complex64"

    def __post_init__(self) -> None:
        check_int("CircuitConfig.num_qubits", self.num_qubits, 1, 12)
        check_int("CircuitConfig.num_layers", self.num_layers, 1, 64)
        check_choice("CircuitConfig.readout", self.readout, READOUTS)
        check_choice("CircuitConfig.dtype", self.dtype, tuple(COMPLEX_DTYPES))

    @property
    def dimension(self) -> int:
        """Hilbert-space dimension ``2^n``."""
        return 2**self.num_qubits

    @property
    def num_readouts(self) -> int:
        """Number of measured Pauli-Z expectations per sample (1 or n)."""
        return 1 if self.readout == "first" else self.num_qubits

    @property
    def num_circuit_parameters(self) -> int:
        """Number of rotation angles ``2 n L``."""
        return 2 * self.num_qubits * self.num_layers


def cnot_ring_pairs(num_qubits: int) -> list[tuple[int, int]]:
    """Return the (control, target) pairs of the CNOT ring, in application order."""
    if num_qubits == 1:
        return []
    if num_qubits == 2:
        return [(0, 1)]
    return [(q, (q + 1) % num_qubits) for q in range(num_qubits)]


def gate_counts(config: CircuitConfig) -> tuple[int, int]:
    """Return (single-qubit gates, two-qubit gates) of one circuit execution, encoding included.

    ``n1 = n + 2 n L`` (encoding ``RY`` plus ``RY``, ``RZ`` per qubit per layer); ``n2 = L * len(ring)``.
    """
    single = config.num_qubits + 2 * config.num_qubits * config.num_layers
    two = config.num_layers * len(cnot_ring_pairs(config.num_qubits))
    return single, two


def _basis_bits(num_qubits: int) -> np.ndarray:
    """Return ``(2^n, n)`` bits of every basis index, qubit 0 most significant."""
    index = np.arange(2**num_qubits)
    return (index[:, None] >> (num_qubits - 1 - np.arange(num_qubits))[None, :]) & 1


def ring_source_rows(num_qubits: int) -> np.ndarray:
    """Return ``src`` with ``(P_ring psi)[c] = psi[src[c]]`` for the CNOT ring permutation ``P_ring``."""
    bits = _basis_bits(num_qubits).copy()
    for control, target in cnot_ring_pairs(num_qubits):
        bits[:, target] ^= bits[:, control]
    weights = 2 ** (num_qubits - 1 - np.arange(num_qubits))
    image = bits @ weights  # basis state b is mapped to image[b]
    source = np.empty_like(image)
    source[image] = np.arange(image.size)
    return source


def rotation_gates(angles: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Return the single-qubit gates ``RZ(b) RY(a)`` for angles ``(..., 2)`` = (a, b), shape ``(..., 2, 2)``."""
    half_a = angles[..., 0] / 2
    half_b = angles[..., 1] / 2
    cos_a = torch.cos(half_a).to(dtype)
    sin_a = torch.sin(half_a).to(dtype)
    phase_minus = torch.polar(torch.ones_like(half_b), -half_b).to(dtype)
    phase_plus = torch.conj(phase_minus)
    row0 = torch.stack([phase_minus * cos_a, -phase_minus * sin_a], dim=-1)
    row1 = torch.stack([phase_plus * sin_a, phase_plus * cos_a], dim=-1)
    return torch.stack([row0, row1], dim=-2)


def _pairwise_kron(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Kronecker products ``left[..., i] (x) right[..., i]`` of batched matrices ``(..., r, c)``, ``(..., r2, c2)``."""
    rows, cols = left.shape[-2] * right.shape[-2], left.shape[-1] * right.shape[-1]
    product = left[..., :, None, :, None] * right[..., None, :, None, :]
    return product.reshape(*product.shape[:-4], rows, cols)


def batched_kron(gates: torch.Tensor) -> torch.Tensor:
    """Kronecker product over the qubit axis: ``(B, n, 2, 2)`` -> ``(B, 2^n, 2^n)``, qubit 0 most significant.

    While the number of factors is even, neighbours are paired in one batched product per level (a balanced tree,
    ``log2 n`` operations for ``n`` a power of two); an odd remainder is folded in sequentially.
    """
    factors = gates
    while factors.shape[1] > 1 and factors.shape[1] % 2 == 0:  # tree levels (log2 n), not nodes
        factors = _pairwise_kron(factors[:, 0::2], factors[:, 1::2])
    result = factors[:, 0]
    for index in range(1, factors.shape[1]):  # odd remainder, at most n factors
        result = _pairwise_kron(result, factors[:, index])
    return result


def encode_product_states(features: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Encode ``(..., n)`` features as product states ``prod_q RY(x_q)|0>``, shape ``(..., 2^n)``."""
    half = features / 2
    factors = torch.stack([torch.cos(half), torch.sin(half)], dim=-1)  # (..., n, 2)
    state = factors[..., 0, :]
    for q in range(1, features.shape[-1]):  # loop over qubits
        state = (state[..., :, None] * factors[..., q, None, :]).flatten(-2)
    return state.to(dtype)


class BatchedCircuit:
    """The variational classifier circuit, simulated for many parameter sets and samples at once.

    Args:
        config: Circuit shape, readout and dtype.
        device: Torch device for all tensors (CPU by default; CUDA works when available).
    """

    def __init__(self, config: CircuitConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.config = config or CircuitConfig()
        self.device = torch.device(device)
        self.complex_dtype = COMPLEX_DTYPES[self.config.dtype]
        self.real_dtype = REAL_DTYPES[self.complex_dtype]
        n = self.config.num_qubits
        self._source_rows = torch.as_tensor(ring_source_rows(n), device=self.device)
        signs = 1.0 - 2.0 * _basis_bits(n)  # (2^n, n): eigenvalue of Z_q on each basis state
        if self.config.readout == "first":
            signs = signs[:, :1]
        self._z_signs = torch.as_tensor(signs, dtype=self.real_dtype, device=self.device)

    @property
    def parameter_shape(self) -> tuple[int, int, int]:
        """Per-node parameter shape ``(L, n, 2)``."""
        return (self.config.num_layers, self.config.num_qubits, 2)

    def unitary(self, params: torch.Tensor) -> torch.Tensor:
        """Return the fused circuit unitary per parameter set.

        Args:
            params: ``(B, L, n, 2)`` rotation angles (radians).

        Returns:
            ``(B, 2^n, 2^n)`` complex unitaries ``U = P_ring K_L ... P_ring K_1``.
        """
        self._check_params(params)
        params = params.to(self.device)
        batch, layers, n = params.shape[:3]
        gates = rotation_gates(params, self.complex_dtype)  # (B, L, n, 2, 2), all layers at once
        kron = batched_kron(gates.reshape(batch * layers, n, 2, 2))
        dimension = kron.shape[-1]
        layer_unitaries = kron.index_select(1, self._source_rows).reshape(batch, layers, dimension, dimension)
        result = layer_unitaries[:, 0]
        for layer in range(1, layers):  # loop over layers (L), not nodes
            result = layer_unitaries[:, layer] @ result
        return result

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Return encoded product states ``(B, S, 2^n)`` for features ``(B, S, n)`` (radians)."""
        if features.shape[-1] != self.config.num_qubits:
            raise ValueError(
                f"features must have last dimension num_qubits = {self.config.num_qubits}, got {features.shape[-1]}"
            )
        return encode_product_states(features.to(self.device, self.real_dtype), self.complex_dtype)

    def states(self, params: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Return output states ``(B, S, 2^n)`` of every sample under its node's parameters (one matmul)."""
        encoded = self.encode(features)
        return encoded @ self.unitary(params).transpose(-1, -2)

    def readout(self, states: torch.Tensor) -> torch.Tensor:
        """Return noise-free Pauli-Z expectations ``(..., num_readouts)`` of states ``(..., 2^n)``."""
        probabilities = states.real.square() + states.imag.square()
        return probabilities @ self._z_signs

    def expectations(self, params: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Return noise-free ``<Z_q>``, (B, S, R) for params ``(B, L, n, 2)``, features ``(B, S, n)``."""
        return self.readout(self.states(params, features))

    def _check_params(self, params: torch.Tensor) -> None:
        if params.dim() != 4 or tuple(params.shape[1:]) != self.parameter_shape:
            raise ValueError(
                f"params must have shape (num_nodes, {', '.join(map(str, self.parameter_shape))}), "
                f"got {tuple(params.shape)}"
            )


def parameter_shift_jacobian(circuit: BatchedCircuit, params: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Exact gradient of the noise-free expectations by the two-term parameter-shift rule, batched.

    Every parameter is shifted by ``+-pi/2`` in one batch of ``2 * 2nL`` circuits per node.

    Args:
        circuit: The simulator.
        params: ``(B, L, n, 2)`` angles (radians).
        features: ``(B, S, n)`` features (radians).

    Returns:
        ``(B, S, num_readouts, 2nL)``: ``d<Z_q>(x_s) / d theta_j`` with ``j`` the flat (row-major) parameter index.
    """
    batch = params.shape[0]
    count = params[0].numel()
    eye = torch.eye(count, dtype=params.dtype, device=params.device).reshape(count, *params.shape[1:])
    shifts = torch.cat([eye, -eye]) * (math.pi / 2)  # (2P, L, n, 2)
    shifted = (params[:, None] + shifts[None]).reshape(batch * 2 * count, *params.shape[1:])
    repeated = features[:, None].expand(batch, 2 * count, *features.shape[1:]).reshape(-1, *features.shape[1:])
    values = circuit.expectations(shifted, repeated).reshape(batch, 2, count, *features.shape[1:-1], -1)
    derivative = (values[:, 0] - values[:, 1]) / 2  # (B, P, S, R)
    return derivative.permute(0, 2, 3, 1)
