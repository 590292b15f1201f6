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
``U = V_L ... V_1`` with layer unitaries ``V_l = P_ring K_l``, where ``K_l`` is the Kronecker product of the
single-qubit ``RZ RY`` gates and ``P_ring`` is the CNOT ring's permutation, ``(P_ring psi)[r] = psi[src[r]]``.
Parameters have shape ``(num_nodes, L, n, 2)``.

Fast construction (closed form, few tensor operations, all layers and nodes at once). By the mixed-product rule
``K_l = (RZ_0 (x) ... (x) RZ_{n-1}) (RY_0 (x) ... (x) RY_{n-1}) = D_l Y_l`` with a diagonal phase
``D_l[r] = exp(-i/2 sum_q b_q s_q(r))`` (``s_q(r) = 1 - 2 bit_q(r)`` the ``Z_q`` eigenvalue, ``b_q`` the RZ angle)
and a real matrix ``Y_l[r, c] = prod_q RY(a_q)[bit_q(r), bit_q(c)]``. Folding the ring permutation into the row
index gives ``V_l[r, c] = D_l[src[r]] Y_l[src[r], c]``. The real factors ``Y'_l[r, c] = Y_l[src[r], c]`` are
Kronecker products taken pairwise (each qubit pair's ``4 x 4`` gate, then the pairs in order: ``D^2 (n/2 - 1) +
16 n/2`` multiplications per layer instead of ``D^2 (n - 1)``) followed by a gather of the ring's rows ``src[r]``.

The fused unitary (:meth:`BatchedCircuit.stacked_unitary`) uses that ``Y'_l`` is real: ``V_l (A + iB) =
diag(e^{i phi_l}) (Y'_l A + i Y'_l B)`` is one real batched matmul on the interleaved (Re, Im) view of the complex
state (half the multiplications of a complex matmul) and one complex row rotation per layer; it returns
``[Re U; Im U]``. The encoded product state ``prod_q RY(x_q)|0>`` is real (``amp[c] = prod_q f_q[bit_q(c)]``,
``f_q = (cos(x_q/2), sin(x_q/2))``), so no complex state is formed for the readout: with ``readout="all"``,
:meth:`BatchedCircuit.expectations` multiplies it with ``[Re U; Im U]`` and reads ``|amp|^2`` off the squares; with
``readout="first"`` it folds the observable into ``M = Re(U^H Z_0 U)`` and evaluates ``x^T M x``.
Everything stays in the configured precision (complex64 -> float32). Encoded states of the last few feature
tensors are cached (keyed by storage address, shape, strides and version counter, holding a reference so the
storage cannot be reused; least recently used out first), since a training run encodes the same training, probe
and test sets every round.

Batch invariance: a parameter set's numbers do not depend on the batch it is computed in (no matmul whose
summation order could change with the number of rows; tested), so the batched vector environment reproduces
single environments bit for bit.

Gradients: :mod:`ceas_gym.learning.adjoint` (the loss gradient for the ``Z_0`` readout, by hand, without autograd;
local training uses it), autograd through the fused unitary, with a closed-form backward for the layer construction
(:class:`RealLayerFactors`: one ``D x D`` matmul per layer instead of differentiating the gathers and products),
or :func:`~ceas_gym.learning.parameter_shift.parameter_shift_jacobian`, the exact two-term rule
``d<Z>/dtheta = (<Z>(theta + pi/2) - <Z>(theta - pi/2)) / 2`` valid for ``RY`` and ``RZ`` (generators with
eigenvalues +-1/2). Tests check them against each other, against autograd through the construction and against a
dense reference simulator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ceas_gym.config import check_choice, check_int
from ceas_gym.learning.circuit_tables import (
    basis_bits,
    batch_last_kron,
    cnot_ring_pairs,
    encoding_index,
    layer_phase_signs,
    real_product_states,
    ring_source_rows,
)

READOUTS = ("first", "all")
COMPLEX_DTYPES = {"complex64": torch.complex64, "complex128": torch.complex128}
REAL_DTYPES = {torch.complex64: torch.float32, torch.complex128: torch.float64}
ENCODING_CACHE_SIZE = 6
"""Feature tensors whose encoded states a :class:`BatchedCircuit` remembers (most recently used first)."""


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


def gate_counts(config: CircuitConfig) -> tuple[int, int]:
    """Return (single-qubit gates, two-qubit gates) of one circuit execution, encoding included.

    ``n1 = n + 2 n L`` (encoding ``RY`` plus ``RY``, ``RZ`` per qubit per layer); ``n2 = L * len(ring)``.
    """
    single = config.num_qubits + 2 * config.num_qubits * config.num_layers
    two = config.num_layers * len(cnot_ring_pairs(config.num_qubits))
    return single, two


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
        bits = basis_bits(n)  # (D, n)
        self._source_rows = torch.as_tensor(ring_source_rows(n), device=self.device)
        self._encoding_index = torch.as_tensor(encoding_index(n), device=self.device)
        self._phase_signs = torch.as_tensor(layer_phase_signs(n), dtype=self.real_dtype, device=self.device)
        dimension = 2**n
        flip = np.arange(dimension)[None, :] ^ (1 << (n - 1 - np.arange(n)))[:, None]  # (n, D): c xor mask_q
        pair_index = (np.arange(dimension)[None, :] * dimension + flip).reshape(-1)  # flat (c, c ^ m_q)
        self._ry_pair_index = torch.as_tensor(pair_index, device=self.device)
        self._ry_pair_signs = torch.as_tensor((1.0 - 2.0 * bits.T) / 2, dtype=self.real_dtype, device=self.device)
        signs = 1.0 - 2.0 * bits  # (2^n, n): eigenvalue of Z_q on each basis state
        if self.config.readout == "first":
            signs = signs[:, :1]
        self._z_signs = torch.as_tensor(signs, dtype=self.real_dtype, device=self.device)
        self._z_signs_stacked = torch.cat([self._z_signs, self._z_signs])  # (2D, R): real rows, then imaginary
        self._encoding_cache: list[tuple[tuple, torch.Tensor, torch.Tensor]] = []

    @property
    def parameter_shape(self) -> tuple[int, int, int]:
        """Per-node parameter shape ``(L, n, 2)``."""
        return (self.config.num_layers, self.config.num_qubits, 2)

    def layer_unitaries(self, params: torch.Tensor) -> torch.Tensor:
        """Return the layer unitaries ``V_l = P_ring K_l`` per parameter set (closed form, module docstring).

        Differentiable in ``params``: the real factors through :class:`RealLayerFactors` (closed-form backward),
        the row phases by autograd.

        Args:
            params: ``(B, L, n, 2)`` rotation angles (radians).

        Returns:
            ``(B, L, 2^n, 2^n)`` complex unitaries.
        """
        self._check_params(params)
        params = params.to(self.device, self.real_dtype)
        real = self.real_layer_factors(params[..., 0])  # (B, L, D, D)
        phase = self._row_phases(params[..., 1])[..., :, None]  # (B, L, D, 1) phase angle of row r
        return torch.complex(torch.cos(phase) * real, torch.sin(phase) * real)

    def _row_phases(self, rz_angles: torch.Tensor) -> torch.Tensor:
        """Phase angles ``phi[r] = sum_q b_q sigma_q(r)`` of the layer rows for RZ angles ``(B, L, n)``: ``(B, L, D)``.

        A broadcast product and a sum rather than a matmul: a matmul's summation order can depend on how many rows
        it is given, and a batch of networks must compute what each network computes alone.
        """
        return (rz_angles[..., :, None] * self._phase_signs).sum(-2)

    def _real_layer_factors_forward(self, ry_angles: torch.Tensor) -> torch.Tensor:
        """Real factors ``Y_l[src[r], c]`` of the layers for RY angles ``(B, L, n)``: ``(B, L, D, D)``.

        Kronecker products in the batch-last layout, where each is one broadcast product over long rows: the gates
        of each qubit pair, then the pairs' ``4 x 4`` tables in qubit order (the products of
        :func:`layer_entry_index`'s entry-by-entry definition, multiplied in the same order). The ring's row order
        ``src[r]`` is taken by gathering the rows of the last product's two small factors, and one transposition
        returns to the batch-major layout matmuls need.
        """
        n, dimension = self.config.num_qubits, self.config.dimension
        half_ry = ry_angles / 2
        cos, sin = torch.cos(half_ry), torch.sin(half_ry)
        batch_shape = ry_angles.shape[:-1]
        cos, sin = cos.reshape(-1, n).T, sin.reshape(-1, n).T  # (n, batch): the batch-last layout
        gates = torch.stack([cos, -sin, sin, cos], dim=1).unflatten(1, (2, 2))  # (n, 2, 2, batch): RY[row, col]
        pairs = [gates[q] if q + 1 == n else batch_last_kron(gates[q], gates[q + 1]) for q in range(0, n, 2)]
        leading = pairs[0]
        for pair in pairs[1:-1]:  # loop over qubit pairs (n / 2), not nodes
            leading = batch_last_kron(leading, pair)
        if len(pairs) == 1:
            factors = leading.index_select(0, self._source_rows)  # (D, D, batch): Y[src[r], c]
        else:  # the last product already in the ring's row order: gather the two small tables' rows, not the result's
            last_rows = pairs[-1].shape[0]
            leading = leading.index_select(0, self._source_rows // last_rows)  # (D, C, batch)
            last = pairs[-1].index_select(0, self._source_rows % last_rows)  # (D, c, batch)
            factors = leading[:, :, None] * last[:, None]  # (D, C, c, batch)
        batch_major = factors.reshape(dimension * dimension, -1).T.contiguous()  # matmuls need unit column stride
        return batch_major.reshape(*batch_shape, dimension, dimension)

    def real_factor_angle_gradient(self, grad: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
        """RY-angle gradient ``(..., n)`` from ``G = dL/dY'`` and the factors ``Y'``, both ``(..., R, D)``.

        ``dL/da_q = 1/2 sum_c s_q(c) (G^T Y')[c, c ^ m_q]`` (:class:`RealLayerFactors`): one real matmul per layer.
        ``R = D`` rows, or a subset of them (for example the lower half) when ``G`` vanishes on the others.
        """
        pairs = grad.transpose(-1, -2) @ factors  # (B, L, D, D): G^T Y'
        entries = pairs.flatten(-2).index_select(-1, self._ry_pair_index).unflatten(-1, self._ry_pair_signs.shape)
        return (entries * self._ry_pair_signs).sum(-1)

    def phase_angle_gradient(self, grad_phases: torch.Tensor) -> torch.Tensor:
        """RZ-angle gradient ``(..., n)`` from ``dL/dphi`` ``(..., D)`` of the row phases (:meth:`_row_phases`).

        ``phi[r] = sum_q b_q sigma_q(r)``, so ``dL/db_q = sum_r dL/dphi[r] sigma_q(r)``; a broadcast product and a
        sum, for the batch invariance :meth:`_row_phases` keeps.
        """
        return (grad_phases[..., None, :] * self._phase_signs).sum(-1)

    def real_layer_factors(self, ry_angles: torch.Tensor) -> torch.Tensor:
        """Differentiable :meth:`_real_layer_factors_forward` (closed-form backward, :class:`RealLayerFactors`)."""
        if ry_angles.requires_grad and torch.is_grad_enabled():
            return RealLayerFactors.apply(ry_angles, self)
        return self._real_layer_factors_forward(ry_angles)

    def unitary(self, params: torch.Tensor) -> torch.Tensor:
        """Return the fused circuit unitary per parameter set.

        Args:
            params: ``(B, L, n, 2)`` rotation angles (radians).

        Returns:
            ``(B, 2^n, 2^n)`` complex unitaries ``U = P_ring K_L ... P_ring K_1``.
        """
        stacked = self.stacked_unitary(params)
        dimension = self.config.dimension
        return torch.complex(stacked[..., :dimension, :], stacked[..., dimension:, :])

    def stacked_unitary(self, params: torch.Tensor) -> torch.Tensor:
        """Return ``[Re U; Im U]`` per parameter set, ``(B, 2 * 2^n, 2^n)`` real (the form used for readout).

        With ``V_l = diag(exp(i phi_l)) Y'_l`` (``Y'_l`` the real factor with the ring's row permutation, ``phi_l``
        the RZ phases of its rows), a layer is one real batched matmul and one complex row rotation
        (:meth:`apply_layer`); the first layer applied to the identity is the rotation of ``Y'_1`` alone.
        """
        self._check_params(params)
        params = params.to(self.device, self.real_dtype)
        factors = self.real_layer_factors(params[..., 0]).unbind(1)  # L x (B, D, D); unbind: one stack in backward
        rotations = self.row_rotations(params[..., 1]).unbind(1)  # L x (B, D, 1) complex
        state = self.layer_products(factors, rotations, len(factors))[-1]  # U, complex (B, D, D)
        return torch.view_as_real(state).permute(0, 3, 1, 2).flatten(1, 2)  # [A; B], (B, 2D, D)

    def layer_products(
        self, factors: Sequence[torch.Tensor], rotations: Sequence[torch.Tensor], count: int
    ) -> list[torch.Tensor]:
        """``W_1, ..., W_count`` with ``W_l = V_l ... V_1``, complex ``(B, D, D)``; ``V_1`` is the rotated ``Y'_1``.

        Args:
            factors: Per layer, the real factors ``Y'_l``, ``(B, D, D)`` each.
            rotations: Per layer, the row rotations ``e^{i phi_l}``, ``(B, D, 1)`` each.
            count: How many leading layers to multiply, >= 1.
        """
        products = [rotations[0] * factors[0]]
        for layer in range(1, count):  # loop over layers (L), not nodes
            products.append(self.apply_layer(factors[layer], rotations[layer], products[-1]))
        return products

    def row_rotations(self, rz_angles: torch.Tensor) -> torch.Tensor:
        """``exp(i phi[r])`` of the layer rows for RZ angles ``(B, L, n)``: complex ``(B, L, D, 1)``."""
        phase = self._row_phases(rz_angles)[..., None]
        return torch.polar(torch.ones_like(phase), phase)

    @staticmethod
    def apply_layer(factor: torch.Tensor, rotation: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``V state = diag(e^{i phi}) Y' state`` for complex ``(B, D, K)`` states, real ``(B, D, D)`` factors.

        ``Y'`` is real, so it multiplies the real and imaginary parts at once: one real batched matmul on the state's
        ``(B, D, 2K)`` view with (Re, Im) interleaved, half the multiplications of a complex matmul. The row rotation
        is one complex product: fewer passes over the state, forward and backward, than rotating separate real and
        imaginary halves.
        """
        interleaved = torch.view_as_real(state).flatten(-2)  # (B, D, 2K)
        rotated = factor @ interleaved
        return rotation * torch.view_as_complex(rotated.unflatten(-1, (-1, 2)))

    def prefix_states(self, params: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the state before every layer and the output state: ``phi_0 = |x>``, ``phi_{l+1} = V_l phi_l``.

        The arithmetic of :meth:`stacked_unitary`, applied to the samples' states (the columns of a ``D x S``
        complex matrix) instead of the basis.

        Args:
            params: ``(B, L, n, 2)`` rotation angles (radians).
            features: ``(B, S, n)`` features (radians).

        Returns:
            Real and imaginary parts of ``phi_0, ..., phi_L``, each ``(B, L + 1, S, 2^n)``.
        """
        self._check_params(params)
        params = params.to(self.device, self.real_dtype)
        encoded = self.encode_real(features).transpose(-1, -2)  # (B, D, S): real input states as columns
        factors = self.real_layer_factors(params[..., 0]).unbind(1)  # L x (B, D, D)
        rotations = self.row_rotations(params[..., 1]).unbind(1)
        state = torch.complex(encoded, torch.zeros_like(encoded))
        states = [state]
        for factor, rotation in zip(factors, rotations, strict=True):  # loop over layers (L), not nodes
            state = self.apply_layer(factor, rotation, state)
            states.append(state)
        parts = torch.view_as_real(torch.stack(states, dim=1).transpose(-1, -2))  # (B, L + 1, S, D, 2)
        return parts[..., 0], parts[..., 1]

    def encode_real(self, features: torch.Tensor) -> torch.Tensor:
        """Return the real amplitudes ``(..., S, 2^n)`` of the encoded product states of features ``(..., S, n)``."""
        if features.shape[-1] != self.config.num_qubits:
            raise ValueError(
                f"features must have last dimension num_qubits = {self.config.num_qubits}, got {features.shape[-1]}"
            )
        features = features.to(self.device, self.real_dtype)
        if features.requires_grad:
            return real_product_states(features, self._encoding_index)
        key = (tuple(features.shape), features.stride(), features._version)
        for position, entry in enumerate(self._encoding_cache):
            cached_key, cached_features, encoded = entry
            if cached_key == key and cached_features.data_ptr() == features.data_ptr():
                if position:  # a hit moves to the front, so a one-off tensor evicts none of the per-round sets
                    rest = self._encoding_cache[:position] + self._encoding_cache[position + 1 :]
                    self._encoding_cache = [entry, *rest]
                return encoded
        encoded = real_product_states(features, self._encoding_index)
        # The entry keeps ``features`` alive, so no other live tensor can start at its address unless it views the
        # same storage; an in-place change bumps the shared ``_version``. Few entries: a round encodes the
        # training, probe and test sets, the honest nodes' test subsets, and every few rounds the QFI probes (a new
        # tensor each time).
        self._encoding_cache = [(key, features, encoded), *self._encoding_cache[: ENCODING_CACHE_SIZE - 1]]
        return encoded

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_encoding_cache"] = []  # a cache, not state: rebuilt on demand after unpickling or copying
        return state

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Return encoded product states ``(B, S, 2^n)`` for features ``(B, S, n)`` (radians)."""
        return self.encode_real(features).to(self.complex_dtype)

    def states(self, params: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Return output states ``(B, S, 2^n)`` of every sample under its node's parameters (one matmul)."""
        encoded = self.encode(features)
        return encoded @ self.unitary(params).transpose(-1, -2)

    def readout(self, states: torch.Tensor) -> torch.Tensor:
        """Return noise-free Pauli-Z expectations ``(..., num_readouts)`` of states ``(..., 2^n)``."""
        probabilities = states.real.square() + states.imag.square()
        return probabilities @ self._z_signs

    def expectations_from_unitary(self, stacked_unitary: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Return noise-free ``<Z_q>``, ``(B, S, R)``, from :meth:`stacked_unitary` output and features ``(B, S, n)``.

        ``[Re amp; Im amp] = [Re U; Im U] x`` for the real encoded state ``x``, so ``|amp|^2`` summed against the
        ``Z`` eigenvalues is one real matmul, a square and a second matmul. With one readout (``Z_0``) the
        observable is folded into the model first: ``<Z_0> = x^T M x`` with the real symmetric
        ``M = Re(U^H Z_0 U) = [Re U; Im U]^T diag(z, z) [Re U; Im U]``, so each sample costs a ``D x D`` product
        instead of ``D x 2D``.
        """
        encoded = self.encode_real(features)  # (B, S, D)
        if self.config.readout == "first":
            observable = (stacked_unitary * self._z_signs_stacked).transpose(-1, -2) @ stacked_unitary  # (B, D, D)
            return ((encoded @ observable) * encoded).sum(-1, keepdim=True)  # (B, S, 1)
        amplitudes = encoded @ stacked_unitary.transpose(-1, -2)  # (B, S, 2D)
        return amplitudes.square() @ self._z_signs_stacked

    def readout_observables(self, stacked_unitary: torch.Tensor) -> torch.Tensor:
        """Return the real symmetric ``M_q = Re(U^H Z_q U)`` of every readout, ``(B, R, D, D)``.

        ``<Z_q> = x^T M_q x`` for the real encoded state ``x``; ``stacked_unitary`` is :meth:`stacked_unitary`'s
        ``(B, 2D, D)``.
        """
        signed = stacked_unitary[:, None] * self._z_signs_stacked.T[None, :, :, None]  # (B, R, 2D, D)
        return signed.transpose(-1, -2) @ stacked_unitary[:, None]

    def expectations(self, params: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Return noise-free ``<Z_q>``, (B, S, R) for params ``(B, L, n, 2)``, features ``(B, S, n)``."""
        return self.expectations_from_unitary(self.stacked_unitary(params), features)

    def _check_params(self, params: torch.Tensor) -> None:
        if params.dim() != 4 or tuple(params.shape[1:]) != self.parameter_shape:
            raise ValueError(
                f"params must have shape (num_nodes, {', '.join(map(str, self.parameter_shape))}), "
                f"got {tuple(params.shape)}"
            )


class RealLayerFactors(torch.autograd.Function):
    """``a -> Y'_l``, the real layer factors of :meth:`BatchedCircuit.real_layer_factors`, with a closed-form backward.

    ``dY'/da_q = Y' J_q / 2`` with ``J = [[0, -1], [1, 0]]`` on qubit q (``d RY(a)/da = RY(a) J / 2``), and
    ``(Y' J_q)[r, c] = s_q(c) Y'[r, c ^ m_q]``, so with ``G = dL/dY'``:
    ``dL/da_q = 1/2 sum_c s_q(c) (G^T Y')[c, c ^ m_q]``: one real ``D x D`` matmul per layer. First-order only.
    """

    @staticmethod
    def forward(ry_angles: torch.Tensor, circuit: BatchedCircuit) -> torch.Tensor:  # noqa: D102
        return circuit._real_layer_factors_forward(ry_angles)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:  # noqa: D102
        ctx.circuit = inputs[1]
        ctx.save_for_backward(output)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        (factors,) = ctx.saved_tensors
        return ctx.circuit.real_factor_angle_gradient(grad, factors), None
