"""Trust scores: an exponential moving average of per-round verification outcomes (CEAS Sec. III-D).

Rule (CEAS Sec. III-D, "Authentication Tags and Trust Scores"), vectorised over nodes:

    tau_k(t + 1) = alpha * tau_k(t) + (1 - alpha) * v_k(t),

with ``alpha in (0, 1)`` the memory of past behaviour and ``v_k(t) in [0, 1]`` the verification outcome of node
``k`` in round ``t`` (1: its payload verified, 0: it failed). Unrolled, after ``T`` rounds,
``tau_k(T) = alpha^T tau_k(0) + (1 - alpha) * sum_{t<T} alpha^(T-1-t) v_k(t)``, which stays in [0, 1].
Nodes without an outcome in a round (``observed`` False) keep their score. Scores start at ``initial`` (default
1: full trust). How ``v`` is produced is the protocol's choice; the CEAS protocol uses the per-round divergence test
of :mod:`ceas_gym.consensus.bft`, optionally ANDed with authentication outcomes supplied by the environment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ceas_gym.config import ConfigError, check_range


@dataclass(frozen=True)
class TrustConfig:
    """Trust-score settings.

    Attributes:
        alpha: Memory of the moving average, in (0, 1); larger forgets more slowly (rounds ~ 1 / (1 - alpha)).
        initial: Score of every node at the start of an episode, in [0, 1].
    """

    alpha: float = 0.8
    initial: float = 1.0

    def __post_init__(self) -> None:
        check_range("TrustConfig.alpha", self.alpha, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
        check_range("TrustConfig.initial", self.initial, 0.0, 1.0)


def update_trust(
    trust: np.ndarray, verified: np.ndarray, alpha: float, observed: np.ndarray | None = None
) -> np.ndarray:
    """Return ``alpha * trust + (1 - alpha) * verified`` where observed, ``trust`` elsewhere.

    Args:
        trust: Current scores tau. ``(N,)`` float in [0, 1], or ``(B, N)`` for B networks at once.
        verified: Verification outcomes v, shaped like ``trust``, bool or float in [0, 1].
        alpha: Memory in (0, 1).
        observed: Which nodes have an outcome this round (default: all), shaped like ``trust``, bool.

    Returns:
        The new scores, float64, shaped like ``trust``.

    Raises:
        ConfigError: On mismatched shapes or values outside [0, 1].
    """
    check_range("alpha", alpha, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    tau = np.asarray(trust, dtype=np.float64)
    outcome = np.asarray(verified, dtype=np.float64)
    if tau.ndim not in (1, 2) or outcome.shape != tau.shape:
        raise ConfigError(f"verified: expected shape {tau.shape} like trust, got {outcome.shape}")
    if np.any((outcome < 0) | (outcome > 1)) or np.any((tau < 0) | (tau > 1)):
        raise ConfigError("trust and verified: every value must be in [0, 1]")
    updated = alpha * tau + (1.0 - alpha) * outcome
    if observed is None:
        return updated
    mask = np.asarray(observed, dtype=bool)
    if mask.shape != tau.shape:
        raise ConfigError(f"observed: expected shape {tau.shape}, got {mask.shape}")
    return np.where(mask, updated, tau)
