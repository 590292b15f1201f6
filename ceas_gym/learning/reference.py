"""Dense gate-by-gate reference simulator (numpy, complex128, one sample at a time), for tests only.

It shares no code with :mod:`ceas_gym.learning.circuit`: every gate is expanded to a full ``2^n x 2^n``
matrix by Kronecker products with identities (qubit 0 most significant) and applied in circuit order.
It is slow on purpose and exists to check the batched simulator and its gradients.
"""

from __future__ import annotations

import numpy as np

_IDENTITY = np.eye(2, dtype=np.complex128)
_PROJECTOR_0 = np.diag([1.0, 0.0]).astype(np.complex128)
_PROJECTOR_1 = np.diag([0.0, 1.0]).astype(np.complex128)
_PAULI_X = np.array([[0, 1], [1, 0]], dtype=np.complex128)
_PAULI_Z = np.diag([1.0, -1.0]).astype(np.complex128)


def _ry(angle: float) -> np.ndarray:
    c, s = np.cos(angle / 2), np.sin(angle / 2)
    return np.array([[c, -s], [s, c]], dtype=np.complex128)


def _rz(angle: float) -> np.ndarray:
    return np.diag([np.exp(-0.5j * angle), np.exp(0.5j * angle)])


def _embed(operators: dict[int, np.ndarray], num_qubits: int) -> np.ndarray:
    matrix = np.eye(1, dtype=np.complex128)
    for q in range(num_qubits):
        matrix = np.kron(matrix, operators.get(q, _IDENTITY))
    return matrix


def _cnot(control: int, target: int, num_qubits: int) -> np.ndarray:
    return _embed({control: _PROJECTOR_0}, num_qubits) + _embed({control: _PROJECTOR_1, target: _PAULI_X}, num_qubits)


def _ring(num_qubits: int) -> list[tuple[int, int]]:
    if num_qubits == 1:
        return []
    if num_qubits == 2:
        return [(0, 1)]
    return [(q, (q + 1) % num_qubits) for q in range(num_qubits)]


def reference_state(params: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Return the output state of one sample.

    Args:
        params: ``(L, n, 2)`` angles (radians): ``[l, q, 0]`` for RY, ``[l, q, 1]`` for RZ.
        features: ``(n,)`` encoding angles (radians).

    Returns:
        ``(2^n,)`` complex128 state vector.
    """
    num_layers, num_qubits, _ = params.shape
    state = np.zeros(2**num_qubits, dtype=np.complex128)
    state[0] = 1.0
    for q in range(num_qubits):
        state = _embed({q: _ry(features[q])}, num_qubits) @ state
    for layer in range(num_layers):
        for q in range(num_qubits):
            state = _embed({q: _ry(params[layer, q, 0])}, num_qubits) @ state
            state = _embed({q: _rz(params[layer, q, 1])}, num_qubits) @ state
        for control, target in _ring(num_qubits):
            state = _cnot(control, target, num_qubits) @ state
    return state


def reference_expectations(params: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Return ``<Z_q>`` for every sample and qubit.

    Args:
        params: ``(L, n, 2)`` angles (radians).
        features: ``(S, n)`` features (radians).

    Returns:
        ``(S, n)`` float64 expectations.
    """
    num_qubits = params.shape[1]
    observables = [_embed({q: _PAULI_Z}, num_qubits) for q in range(num_qubits)]
    out = np.empty((features.shape[0], num_qubits))
    for s, sample in enumerate(features):
        state = reference_state(params, sample)
        out[s] = [np.real(np.vdot(state, observable @ state)) for observable in observables]
    return out


def reference_parameter_shift(params: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Return ``d<Z_q>/d theta_j`` of shape ``(S, n, 2nL)`` by the two-term shift rule on the dense simulator."""
    flat = params.reshape(-1)
    grads = np.empty((features.shape[0], params.shape[1], flat.size))
    for j in range(flat.size):
        plus, minus = flat.copy(), flat.copy()
        plus[j] += np.pi / 2
        minus[j] -= np.pi / 2
        grads[..., j] = 0.5 * (
            reference_expectations(plus.reshape(params.shape), features)
            - reference_expectations(minus.reshape(params.shape), features)
        )
    return grads
