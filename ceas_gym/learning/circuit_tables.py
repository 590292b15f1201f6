"""Gates and index tables of the batched circuit simulator, pure functions of the qubit count and angles.

Basis bits, the CNOT ring and its row permutation, rotation gates, Kronecker products and the gathers that build
product states and layer factors; shared by :mod:`ceas_gym.learning.circuit` (the circuit they serve) and the stamps.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "basis_bits",
    "batch_last_kron",
    "batched_kron",
    "cnot_ring_pairs",
    "column_product",
    "encode_product_states",
    "encoding_index",
    "gather_product",
    "layer_entry_index",
    "layer_phase_signs",
    "real_product_states",
    "ring_source_rows",
    "rotation_gates",
]


def cnot_ring_pairs(num_qubits: int) -> list[tuple[int, int]]:
    """Return the (control, target) pairs of the CNOT ring, in application order."""
    if num_qubits == 1:
        return []
    if num_qubits == 2:
        return [(0, 1)]
    return [(q, (q + 1) % num_qubits) for q in range(num_qubits)]


def basis_bits(num_qubits: int) -> np.ndarray:
    """Return ``(2^n, n)`` bits of every basis index, qubit 0 most significant."""
    index = np.arange(2**num_qubits)
    return (index[:, None] >> (num_qubits - 1 - np.arange(num_qubits))[None, :]) & 1


def ring_source_rows(num_qubits: int) -> np.ndarray:
    """Return ``src`` with ``(P_ring psi)[c] = psi[src[c]]`` for the CNOT ring permutation ``P_ring``."""
    bits = basis_bits(num_qubits).copy()
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


def batch_last_kron(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Kronecker product of batch-last matrices: ``(r, c, batch)``, ``(r2, c2, batch)`` -> ``(r r2, c c2, batch)``."""
    product = left[:, None, :, None] * right[None, :, None, :]
    return product.reshape(left.shape[0] * right.shape[0], left.shape[1] * right.shape[1], -1)


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
    num_qubits = features.shape[-1]
    index = torch.as_tensor(encoding_index(num_qubits), device=features.device)
    return real_product_states(features, index).to(dtype)


def encoding_index(num_qubits: int) -> np.ndarray:
    """Return the flat index ``2 q + bit_q(c)`` into ``(n, 2)`` factor tables, shape ``(n * 2^n,)``, q-major."""
    bits = basis_bits(num_qubits)  # (D, n)
    return (2 * np.arange(num_qubits)[:, None] + bits.T).reshape(-1)


def real_product_states(features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Real amplitudes ``prod_q f_q[bit_q(c)]``, ``f_q = (cos(x_q/2), sin(x_q/2))``: ``(..., n)`` -> ``(..., 2^n)``.

    Args:
        features: Angles (radians), ``(..., n)``.
        index: :func:`encoding_index` of ``n`` as a tensor on the features' device.
    """
    half = features / 2
    table = torch.stack([torch.cos(half), torch.sin(half)], dim=-1).flatten(-2)  # (..., 2n)
    return gather_product(table, index, features.shape[-1])


def gather_product(table: torch.Tensor, index: torch.Tensor, num_factors: int) -> torch.Tensor:
    """Return ``out[..., m] = prod_f table[..., index[f * M + m]]`` for ``M = len(index) / num_factors``.

    The gather runs on the transposed, batch-last layout (:func:`column_product`), which on CPU is far cheaper than
    gathering along the last dimension.

    Args:
        table: ``(..., K)`` values.
        index: ``(num_factors * M,)`` long indices into the last dimension, factor-major.
        num_factors: Number of factors multiplied per output entry.

    Returns:
        ``(..., M)`` products, contiguous.
    """
    batch_shape = table.shape[:-1]
    columns = table.reshape(-1, table.shape[-1]).T.contiguous()  # (K, batch)
    product = column_product(columns, index, num_factors)
    return product.T.contiguous().reshape(*batch_shape, -1)  # batch-major again: matmuls need unit column stride


def column_product(columns: torch.Tensor, index: torch.Tensor, num_factors: int) -> torch.Tensor:
    """:func:`gather_product` in the batch-last layout: ``(K, batch)`` -> ``(M, batch)``.

    ``index_select`` along dim 0 copies contiguous rows; products of several stages can stay in this layout.
    """
    factors = columns.index_select(0, index).unflatten(0, (num_factors, -1)).unbind(0)  # F x (M, batch)
    product = factors[0]  # unbind, not indexing: its backward is one stack instead of F zero-filled copies
    for factor in factors[1:]:  # loop over factors (qubits), not nodes or samples
        product = product * factor
    return product


def layer_entry_index(num_qubits: int) -> np.ndarray:
    """Flat index ``4 q + 2 bit_q(src[r]) + bit_q(c)`` into ``(n, 4)`` RY-entry tables, shape ``(n * D * D,)``.

    Gathering ``(cos, -sin, sin, cos)`` of each qubit's RY angle with it and multiplying over qubits gives the real
    factor ``Y[src[r], c]`` of the layer unitary with the CNOT ring folded into the rows (see module docstring). The
    simulator takes the Kronecker products pairwise (:meth:`BatchedCircuit.real_layer_factors`); this one-stage index
    is its reference.
    """
    bits = basis_bits(num_qubits)  # (D, n)
    row_bits = bits[ring_source_rows(num_qubits)]  # (D, n): bits of src[r]
    entry = 2 * row_bits.T[:, :, None] + bits.T[:, None, :]  # (n, D, D)
    return (4 * np.arange(num_qubits)[:, None, None] + entry).reshape(-1)


def layer_phase_signs(num_qubits: int) -> np.ndarray:
    """Return ``-s_q(src[r]) / 2``, shape ``(n, D)``: RZ angles ``(..., n)`` @ it = phase angles of ``D[src[r]]``."""
    bits = basis_bits(num_qubits)[ring_source_rows(num_qubits)]  # (D, n)
    return -(1.0 - 2.0 * bits.T) / 2
