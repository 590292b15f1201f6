"""Robust aggregation rules: one interface, pure functions of a stack of updates plus weights.

Every rule has the signature ``rule(updates, weights=None, context=None) -> AggregationResult`` and is
registered in :data:`AGGREGATORS`. ``updates`` is a ``(n, P)`` tensor, one row per node (n nodes, P model
parameters, unit: parameter units); ``weights`` is an optional ``(n,)`` tensor of non-negative weights
(dimensionless); ``context`` carries what some rules need (number of faulty nodes ``f``, the previous global
update direction, stakes).

Rules and conventions
---------------------
- ``fedavg``: weighted mean ``sum_i w_i d_i / sum_i w_i``; weights default to equal. ``scores`` are the
  normalised weights, ``selected`` is every node with a positive weight.
- ``fidelity-weighted`` (CEAS eq. 4-5): the same weighted mean, but the weights are the nodes' fidelity
  stamps phi_i in [0, 1] and are required; ``alpha_i = phi_i / sum_j phi_j``. Negative or all-zero weights
  are an error.
- ``median``: coordinate-wise median; for even n the mean of the two middle values. ``scores`` are
  ``-||d_i - aggregate||_2`` (higher is closer), ``selected`` is every node (each may supply some coordinate).
- ``trimmed-mean``: per coordinate, drop the f largest and f smallest values and average the rest; needs
  ``2f < n``. ``scores`` and ``selected`` as for ``median``.
- ``krum`` / ``multi-krum`` (Blanchard et al., NeurIPS 2017): Krum score
  ``s_i = sum of squared L2 distances from d_i to its n - f - 2 nearest other updates`` (lower is better);
  needs ``n - f - 2 >= 1``. Krum returns the single lowest-score update; Multi-Krum returns the plain mean of
  the m lowest-score updates (``context.num_selected``, default ``n - f``).
- ``score`` (second paper, Liu et al. 2025, Alg. 2 and eq. 7-10):
  ``v1_i = cos(d_i, d_prev)`` (eq. 7); ``v2_i = sum of L2 distances (not squared) to the n - f - 1 closest other
  updates`` (eq. 8); ``v_i = z(v1)_i - z(v2)_i`` (eq. 9) where ``z(x) = (x - mean(x)) / std(x)`` with the
  population standard deviation (divide by n); keep the ``n - f - 2`` highest ``v_i`` (Alg. 2 line 6) and
  return their stake-weighted mean (eq. 10). Needs ``n - f - 2 >= 1``. ``scores`` are ``v_i`` (higher is
  better).

  Degenerate cases, decided here: if a metric has zero spread (``std <= 1e-12 * (1 + max|x|)``, e.g. all
  updates equal) its z-score is 0 for every node, so it neither helps nor hurts anyone. If there is no previous
  direction or it is the zero vector (the first round), ``v1`` is undefined and set to 0 for all nodes, so the
  score reduces to ``-z(v2)``. The cosine of a zero update with anything is defined as 0. Stakes come from
  ``context.stakes``, else from ``weights``, else are equal; the kept nodes' stakes must not all be zero.

Tie-breaking (deterministic): whenever a rule ranks nodes, equal scores are ordered by the lowest node index
first (stable sort). ``selected`` is always returned in ascending index order. Pairwise distances are computed
exactly (``torch.cdist`` without the matrix-multiplication shortcut) so equal distances compare equal.

Everything is vectorised over nodes and parameters (``torch.cdist``, ``torch.sort``); no Python loop runs over
nodes. Bad input raises :class:`~ceas_gym.config.ConfigError` naming the argument and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ceas_gym.config import ConfigError, check_int
from ceas_gym.registry import Registry

__all__ = [
    "AGGREGATORS",
    "AggregationContext",
    "AggregationResult",
    "Aggregator",
    "aggregate",
    "fedavg",
    "fidelity_weighted",
    "krum",
    "krum_scores",
    "median",
    "multi_krum",
    "score_rule",
    "trimmed_mean",
]

ZERO_SPREAD_RTOL = 1e-12


@dataclass(frozen=True, eq=False)
class AggregationResult:
    """The outcome of one aggregation.

    Attributes:
        aggregate: The aggregated update, shape ``(P,)`` (parameter units).
        scores: Each node's score under the rule, shape ``(n,)``; its meaning and direction are the rule's (see
            the module docstring).
        selected: Indices of the nodes whose updates entered the aggregate, shape ``(k,)``, int64, ascending.

    Instances compare by identity (tensors have no single truth value); compare the fields instead.
    """

    aggregate: torch.Tensor
    scores: torch.Tensor
    selected: torch.Tensor


@dataclass(frozen=True, eq=False)
class AggregationContext:
    """What some rules need beyond the updates and weights.

    Attributes:
        num_faulty: Assumed number of faulty (Byzantine) nodes f, an integer >= 0.
        previous_direction: The previous round's global update, shape ``(P,)``, or None (first round).
        stakes: Per-node stakes s(i) >= 0, shape ``(n,)``, used by the ``score`` rule (eq. 10), or None.
        num_selected: How many updates Multi-Krum averages (m), or None for ``n - f``.
    """

    num_faulty: int = 0
    previous_direction: torch.Tensor | None = None
    stakes: torch.Tensor | None = None
    num_selected: int | None = None

    def __post_init__(self) -> None:
        check_int("AggregationContext.num_faulty", self.num_faulty, 0)
        if self.num_selected is not None:
            check_int("AggregationContext.num_selected", self.num_selected, 1)


Aggregator = Callable[[torch.Tensor, "torch.Tensor | None", "AggregationContext | None"], AggregationResult]

AGGREGATORS: Registry[Aggregator] = Registry("aggregator")


def _check_updates(updates: torch.Tensor) -> tuple[int, int]:
    if not isinstance(updates, torch.Tensor):
        raise ConfigError(f"updates: expected a torch.Tensor of shape (n, P), got {type(updates).__name__}")
    if updates.ndim != 2 or updates.shape[0] < 1 or updates.shape[1] < 1:
        raise ConfigError(f"updates: expected shape (n, P) with n >= 1 and P >= 1, got {tuple(updates.shape)}")
    if not updates.is_floating_point():
        raise ConfigError(f"updates: expected a floating-point tensor, got {updates.dtype}")
    if not bool(torch.isfinite(updates).all()):
        raise ConfigError("updates: contains NaN or infinite values; allowed: finite numbers")
    return int(updates.shape[0]), int(updates.shape[1])


def _check_weights(name: str, weights: torch.Tensor, n: int, like: torch.Tensor) -> torch.Tensor:
    weights = torch.as_tensor(weights, dtype=like.dtype, device=like.device)
    if weights.shape != (n,):
        raise ConfigError(f"{name}: expected shape ({n},), one per update, got {tuple(weights.shape)}")
    if not bool(torch.isfinite(weights).all()):
        raise ConfigError(f"{name}: contains NaN or infinite values; allowed: finite numbers >= 0")
    if bool((weights < 0).any()):
        raise ConfigError(f"{name}: negative entries are not allowed; allowed: numbers >= 0 with a positive sum")
    if not bool((weights > 0).any()):
        raise ConfigError(f"{name}: all entries are zero; allowed: numbers >= 0 with a positive sum")
    return weights


def _context(context: AggregationContext | None) -> AggregationContext:
    if context is None:
        return AggregationContext()
    if not isinstance(context, AggregationContext):
        raise ConfigError(f"context: expected an AggregationContext or None, got {type(context).__name__}")
    return context


def _weighted_mean(updates: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (weights / weights.sum()) @ updates


def _index_tensor(indices: torch.Tensor) -> torch.Tensor:
    return torch.sort(indices.to(torch.int64)).values


def _rank_descending(values: torch.Tensor) -> torch.Tensor:
    """Indices ordering ``values`` from highest to lowest, equal values by lowest index first."""
    return torch.sort(-values, stable=True).indices


def _rank_ascending(values: torch.Tensor) -> torch.Tensor:
    """Indices ordering ``values`` from lowest to highest, equal values by lowest index first."""
    return torch.sort(values, stable=True).indices


def _pairwise_distances(updates: torch.Tensor) -> torch.Tensor:
    """Exact (n, n) Euclidean distances (no matrix-multiplication shortcut, so ties compare equal)."""
    return torch.cdist(updates, updates, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")


def _nearest_sum(distances: torch.Tensor, count: int) -> torch.Tensor:
    """Sum over each row of the ``count`` smallest off-diagonal entries."""
    n = distances.shape[0]
    off_diagonal = distances.masked_fill(torch.eye(n, dtype=torch.bool, device=distances.device), float("inf"))
    return torch.sort(off_diagonal, dim=1).values[:, :count].sum(dim=1)


def _closeness_scores(updates: torch.Tensor, aggregate: torch.Tensor) -> torch.Tensor:
    return -torch.linalg.vector_norm(updates - aggregate, dim=1)


@AGGREGATORS.register("fedavg")
def fedavg(
    updates: torch.Tensor, weights: torch.Tensor | None = None, context: AggregationContext | None = None
) -> AggregationResult:
    """Weighted mean of the updates (FedAvg); equal weights when ``weights`` is None.

    Args:
        updates: Stack of updates, shape ``(n, P)``.
        weights: Non-negative weights with a positive sum, shape ``(n,)`` (e.g. sample counts), or None.
        context: Unused.

    Returns:
        The weighted mean; ``scores`` are the normalised weights; ``selected`` the nodes with positive weight.
    """
    n, _ = _check_updates(updates)
    _context(context)
    w = (
        torch.ones(n, dtype=updates.dtype, device=updates.device)
        if weights is None
        else _check_weights("weights", weights, n, updates)
    )
    normalised = w / w.sum()
    return AggregationResult(normalised @ updates, normalised, _index_tensor(torch.nonzero(w > 0).flatten()))


@AGGREGATORS.register("fidelity-weighted")
def fidelity_weighted(
    updates: torch.Tensor, weights: torch.Tensor | None = None, context: AggregationContext | None = None
) -> AggregationResult:
    """Fidelity-weighted mean (CEAS eq. 4-5): ``alpha_i = phi_i / sum_j phi_j``, aggregate ``sum_i alpha_i d_i``.

    Args:
        updates: Stack of updates, shape ``(n, P)``.
        weights: The fidelity stamps phi_i >= 0 (probability-like, dimensionless), shape ``(n,)``. Required.
        context: Unused.

    Returns:
        The fidelity-weighted mean; ``scores`` are the normalised weights alpha_i.

    Raises:
        ConfigError: If ``weights`` is None, has a negative entry or sums to zero.
    """
    if weights is None:
        raise ConfigError("weights: the fidelity-weighted rule needs the fidelity stamps (shape (n,)), got None")
    return fedavg(updates, weights, context)


@AGGREGATORS.register("median")
def median(
    updates: torch.Tensor, weights: torch.Tensor | None = None, context: AggregationContext | None = None
) -> AggregationResult:
    """Coordinate-wise median; for an even number of updates the mean of the two middle values.

    Args:
        updates: Stack of updates, shape ``(n, P)``.
        weights: Ignored (the median is unweighted).
        context: Unused.

    Returns:
        The median; ``scores`` are ``-||d_i - median||_2``; ``selected`` is every node.
    """
    n, _ = _check_updates(updates)
    _context(context)
    ordered = torch.sort(updates, dim=0).values
    middle = ordered[(n - 1) // 2 : n // 2 + 1]
    result = middle.mean(dim=0)
    return AggregationResult(result, _closeness_scores(updates, result), torch.arange(n, device=updates.device))


@AGGREGATORS.register("trimmed-mean")
def trimmed_mean(
    updates: torch.Tensor, weights: torch.Tensor | None = None, context: AggregationContext | None = None
) -> AggregationResult:
    """Coordinate-wise trimmed mean: drop the f largest and f smallest values per coordinate, average the rest.

    Args:
        updates: Stack of updates, shape ``(n, P)``.
        weights: Ignored.
        context: ``num_faulty`` is f; needs ``2f < n``.

    Returns:
        The trimmed mean; ``scores`` are ``-||d_i - aggregate||_2``; ``selected`` is every node.

    Raises:
        ConfigError: If ``2f >= n``.
    """
    n, _ = _check_updates(updates)
    f = _context(context).num_faulty
    if 2 * f >= n:
        raise ConfigError(
            f"AggregationContext.num_faulty = {f} is too large for trimmed-mean with n = {n} updates; allowed: 2f < n"
        )
    ordered = torch.sort(updates, dim=0).values
    result = ordered[f : n - f].mean(dim=0)
    return AggregationResult(result, _closeness_scores(updates, result), torch.arange(n, device=updates.device))


def krum_scores(updates: torch.Tensor, num_faulty: int) -> torch.Tensor:
    """Krum scores: sum of squared L2 distances to the ``n - f - 2`` nearest other updates (lower is better).

    Args:
        updates: Stack of updates, shape ``(n, P)``.
        num_faulty: f, the assumed number of Byzantine updates.

    Returns:
        Scores, shape ``(n,)`` (squared parameter units).

    Raises:
        ConfigError: If ``n - f - 2 < 1`` (that is ``n <= f + 2``).
    """
    n, _ = _check_updates(updates)
    check_int("AggregationContext.num_faulty", num_faulty, 0)
    neighbours = n - num_faulty - 2
    if neighbours < 1:
        raise ConfigError(
            f"AggregationContext.num_faulty = {num_faulty} is too large for Krum with n = {n} updates; "
            "allowed: n - f - 2 >= 1, i.e. f <= n - 3"
        )
    return _nearest_sum(_pairwise_distances(updates) ** 2, neighbours)


@AGGREGATORS.register("krum")
def krum(
    updates: torch.Tensor, weights: torch.Tensor | None = None, context: AggregationContext | None = None
) -> AggregationResult:
    """Krum (Blanchard et al. 2017): the single update with the lowest Krum score (ties: lowest index).

    Args:
        updates: Stack of updates, shape ``(n, P)``.
        weights: Ignored.
        context: ``num_faulty`` is f; needs ``n - f - 2 >= 1``.

    Returns:
        The chosen update; ``scores`` are the Krum scores (lower is better); ``selected`` holds one index.
    """
    scores = krum_scores(updates, _context(context).num_faulty)
    best = _rank_ascending(scores)[:1]
    return AggregationResult(updates[best[0]].clone(), scores, _index_tensor(best))


@AGGREGATORS.register("multi-krum")
def multi_krum(
    updates: torch.Tensor, weights: torch.Tensor | None = None, context: AggregationContext | None = None
) -> AggregationResult:
    """Multi-Krum: the plain mean of the m updates with the lowest Krum scores (ties: lowest index).

    Args:
        updates: Stack of updates, shape ``(n, P)``.
        weights: Ignored.
        context: ``num_faulty`` is f; ``num_selected`` is m (default ``n - f``, at most n).

    Returns:
        The mean of the m best; ``scores`` are the Krum scores (lower is better).

    Raises:
        ConfigError: If ``n - f - 2 < 1`` or ``m > n``.
    """
    ctx = _context(context)
    scores = krum_scores(updates, ctx.num_faulty)
    n = updates.shape[0]
    m = n - ctx.num_faulty if ctx.num_selected is None else ctx.num_selected
    if m > n:
        raise ConfigError(f"AggregationContext.num_selected = {m} exceeds the number of updates; allowed: 1..{n}")
    chosen = _index_tensor(_rank_ascending(scores)[:m])
    return AggregationResult(updates[chosen].mean(dim=0), scores, chosen)


def _z_score(values: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` with the population std; all zeros when the spread is (numerically) zero."""
    centred = values - values.mean()
    spread = torch.sqrt((centred**2).mean())
    scale = 1.0 + float(values.abs().max())
    if float(spread) <= ZERO_SPREAD_RTOL * scale:
        return torch.zeros_like(values)
    return centred / spread


def _cosine_to(updates: torch.Tensor, direction: torch.Tensor | None) -> torch.Tensor:
    """Cosine of each update with ``direction``; 0 where either vector is zero or the direction is absent."""
    n, p = updates.shape
    if direction is None:
        return torch.zeros(n, dtype=updates.dtype, device=updates.device)
    direction = torch.as_tensor(direction, dtype=updates.dtype, device=updates.device)
    if direction.shape != (p,):
        raise ConfigError(f"AggregationContext.previous_direction: expected shape ({p},), got {tuple(direction.shape)}")
    if not bool(torch.isfinite(direction).all()):
        raise ConfigError("AggregationContext.previous_direction: contains NaN or infinite values")
    norms = torch.linalg.vector_norm(updates, dim=1) * torch.linalg.vector_norm(direction)
    dots = updates @ direction
    return torch.where(norms > 0, dots / torch.where(norms > 0, norms, torch.ones_like(norms)), torch.zeros_like(dots))


@AGGREGATORS.register("score")
def score_rule(
    updates: torch.Tensor, weights: torch.Tensor | None = None, context: AggregationContext | None = None
) -> AggregationResult:
    """Score-based rule of the second paper (Alg. 2, eq. 7-10): z(cosine to previous) - z(neighbour distance).

    Args:
        updates: Stack of updates d_i^t, shape ``(n, P)``.
        weights: Fallback stakes when ``context.stakes`` is None (non-negative, shape ``(n,)``), or None.
        context: ``num_faulty`` is f (needs ``n - f - 2 >= 1``), ``previous_direction`` the previous global
            update (or None), ``stakes`` the stakes s(i).

    Returns:
        The stake-weighted mean of the ``n - f - 2`` best-scoring updates (eq. 10); ``scores`` are v(i) (eq. 9,
        higher is better); ``selected`` the kept set S.

    Raises:
        ConfigError: If ``n - f - 2 < 1``, a stake is negative, or the kept nodes' stakes are all zero.
    """
    n, _ = _check_updates(updates)
    ctx = _context(context)
    f = ctx.num_faulty
    keep = n - f - 2
    if keep < 1:
        raise ConfigError(
            f"AggregationContext.num_faulty = {f} is too large for the score rule with n = {n} updates; "
            "allowed: n - f - 2 >= 1, i.e. f <= n - 3"
        )
    if ctx.stakes is not None:
        stakes = _check_weights("AggregationContext.stakes", ctx.stakes, n, updates)
    elif weights is not None:
        stakes = _check_weights("weights", weights, n, updates)
    else:
        stakes = torch.ones(n, dtype=updates.dtype, device=updates.device)
    alignment = _cosine_to(updates, ctx.previous_direction)  # eq. 7
    spread = _nearest_sum(_pairwise_distances(updates), n - f - 1)  # eq. 8
    scores = _z_score(alignment) - _z_score(spread)  # eq. 9
    chosen = _index_tensor(_rank_descending(scores)[:keep])  # Alg. 2 line 6
    kept_stakes = stakes[chosen]
    if not bool((kept_stakes > 0).any()):
        raise ConfigError(
            "AggregationContext.stakes: every selected update has zero stake, so eq. 10 is undefined; "
            "allowed: at least one selected node with a positive stake"
        )
    return AggregationResult(_weighted_mean(updates[chosen], kept_stakes), scores, chosen)  # eq. 10


def aggregate(
    name: str,
    updates: torch.Tensor,
    weights: torch.Tensor | None = None,
    context: AggregationContext | None = None,
) -> AggregationResult:
    """Run the aggregator registered under ``name``.

    Args:
        name: A key of :data:`AGGREGATORS` (for example ``"krum"``).
        updates: Stack of updates, shape ``(n, P)``.
        weights: Optional per-node weights, shape ``(n,)``.
        context: Optional :class:`AggregationContext`.

    Returns:
        The rule's :class:`AggregationResult`.
    """
    return AGGREGATORS.get(name)(updates, weights, context)
