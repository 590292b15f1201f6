"""The exact two-term parameter-shift gradient of the circuit's expectations, the reference for the fast gradients.

The fast gradients (:mod:`ceas_gym.learning.adjoint`, autograd through
:class:`~ceas_gym.learning.circuit.BatchedCircuit`) are tested against it.

``d<Z>/dtheta = (<Z>(theta + pi/2) - <Z>(theta - pi/2)) / 2``, valid for ``RY`` and ``RZ`` (generators with
eigenvalues +-1/2).
"""

from __future__ import annotations

import math

import torch

from ceas_gym.learning.circuit import BatchedCircuit

__all__ = ["parameter_shift_jacobian"]


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
