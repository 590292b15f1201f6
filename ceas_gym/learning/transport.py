"""Transport noise: an update sent over a Bell pair of Werner fidelity F arrives perturbed.

Model (DESIGN.md section 4). A Werner pair of fidelity ``F`` is ``F |Phi+><Phi+| + (1 - F)/3 (I - |Phi+><Phi+|)``,
i.e. the perfect pair mixed with white noise of weight ``p = 4 (1 - F) / 3``; teleporting through it applies the
depolarising channel of the same strength ``p`` to the transmitted state. We carry this over to the classical
update vector ``W in R^P`` that the state encodes: the signal shrinks by ``1 - p`` and isotropic Gaussian noise of
strength ``p`` relative to the update's root-mean-square size is added,

    W' = (1 - p) W + p * rms(W) * xi,   xi ~ N(0, I_P),   rms(W) = ||W|| / sqrt(P).

``p`` is clipped to [0, 1] (``F <= 1/4`` gives ``p = 1``: the update is replaced by noise of its own size).
Consequences, used by the tests: ``F = 1`` leaves ``W`` unchanged, and the expected squared error is

    E ||W' - W||^2 = p^2 ||W||^2 + p^2 rms(W)^2 P = 2 p^2 ||W||^2,

which decreases monotonically as ``F`` rises. All messages are processed in one vectorised call; randomness
comes from a passed, seeded ``torch.Generator``.

Receivers. The ``"raw"`` receiver uses ``W'`` as it arrives, so a received message is biased toward zero by the
factor ``1 - p``. A receiver that knows the pair's fidelity (the stamp protocol tells it) can undo the shrinkage,
as error mitigation rescales a depolarised expectation value: the ``"unbiased"`` receiver returns
``W'' = W' / (1 - p)`` for ``p < 1`` (``E[W''] = W``, ``E ||W'' - W||^2 = (p / (1 - p))^2 ||W||^2``) and ``W'``
where ``p = 1`` (nothing is left to decode).
"""

from __future__ import annotations

import math

import torch

from ceas_gym.learning.sampling import standard_normal


def depolarising_strength(fidelity: torch.Tensor) -> torch.Tensor:
    """Return ``p = clip(4 (1 - F) / 3, 0, 1)`` for Werner fidelities ``F`` in [0, 1].

    Raises:
        ValueError: If a fidelity lies outside [0, 1].
    """
    fidelity = torch.as_tensor(fidelity)
    if not bool(((fidelity >= 0) & (fidelity <= 1)).all()):  # NaN fails both comparisons
        raise ValueError(f"fidelity must lie in [0, 1], got min {fidelity.min().item()}, max {fidelity.max().item()}")
    return (4 * (1 - fidelity) / 3).clamp(0.0, 1.0)


RECEIVERS = ("raw", "unbiased")


def transmit(
    updates: torch.Tensor, fidelity: torch.Tensor, generator: torch.Generator, receiver: str = "raw"
) -> torch.Tensor:
    """Return updates as received after travelling over pairs of the given fidelity.

    Args:
        updates: ``(B, P)`` one message per row.
        fidelity: ``(B,)`` Werner fidelity of the pair each message used.
        generator: Seeded source of the Gaussian noise (on the updates' device).
        receiver: ``"raw"`` (use the message as it arrives) or ``"unbiased"`` (divide by ``1 - p`` where ``p < 1``).

    Returns:
        ``(B, P)`` received messages, ``(1 - p) W + p rms(W) xi`` (raw) or that divided by ``1 - p`` (unbiased).
    """
    if receiver not in RECEIVERS:
        raise ValueError(f"receiver = {receiver!r} is not allowed; choose one of {', '.join(map(repr, RECEIVERS))}")
    if updates.dim() != 2 or torch.as_tensor(fidelity).shape != updates.shape[:1]:
        raise ValueError(
            f"updates must be (B, P) and fidelity (B,); got {tuple(updates.shape)} and "
            f"{tuple(torch.as_tensor(fidelity).shape)}"
        )
    return receive(updates, fidelity, standard_normal(updates, generator), receiver)


def receive(updates: torch.Tensor, fidelity: torch.Tensor, noise: torch.Tensor, receiver: str = "raw") -> torch.Tensor:
    """:func:`transmit` with the standard-normal ``noise`` ``(B, P)`` given (drawn by the caller, e.g. per env)."""
    strength = depolarising_strength(fidelity).to(updates.device, updates.dtype)[:, None]
    rms = torch.linalg.vector_norm(updates, dim=-1, keepdim=True) / math.sqrt(updates.shape[-1])
    received = torch.lerp(updates, rms * noise, strength)  # (1 - p) W + p rms xi
    if receiver == "raw":
        return received
    keep = 1 - strength
    return torch.where(keep > 0, received / keep.clamp_min(torch.finfo(updates.dtype).tiny), received)


def expected_squared_error(updates: torch.Tensor, fidelity: torch.Tensor) -> torch.Tensor:
    """Return the closed-form ``E ||W' - W||^2 = 2 p^2 ||W||^2`` per message, shape ``(B,)``."""
    strength = depolarising_strength(fidelity).to(updates.device, updates.dtype)
    return 2 * strength.square() * updates.square().sum(-1)
