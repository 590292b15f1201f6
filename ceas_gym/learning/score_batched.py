"""The score rule of :func:`~ceas_gym.learning.aggregators.score_rule` over many sets of updates at once.

Each of C sets holds the updates of the nodes marked present in an ``(C, N)`` mask (the rows of the others are
ignored); set ``c`` is scored exactly as ``score_rule`` scores its present rows with ``f = num_faulty[c]``: the
cosine to the set's previous direction (eq. 7, zero without one), the sum of distances to the ``n - f - 1``
nearest present updates (eq. 8), their z-scores over the present rows (eq. 9, zero when a metric has no spread),
the ``n - f - 2`` best kept (ties: lowest index) and their stake-weighted mean (eq. 10). The results agree with the
per-set rule to floating-point rounding (the sums run over padded rows); ``tests/test_score_batched.py`` holds
them together.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ceas_gym.config import ConfigError
from ceas_gym.learning.aggregators import ZERO_SPREAD_RTOL

__all__ = ["MaskedScores", "score_rule_masked"]


@dataclass(frozen=True, eq=False)
class MaskedScores:
    """The score rule's outcome for C sets of updates.

    Attributes:
        aggregate: Each set's stake-weighted mean of its kept updates. ``(C, P)``.
        scores: v(i) of every present update (eq. 9, higher is better), NaN for absent rows. ``(C, N)``.
        selected: The kept updates. ``(C, N)`` bool.
    """

    aggregate: torch.Tensor
    scores: torch.Tensor
    selected: torch.Tensor


def _masked_z_score(values: torch.Tensor, present: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Per set, ``(x - mean) / std`` over the present entries (population std); zero where the spread is nil."""
    zero = torch.zeros_like(values)
    mean = torch.where(present, values, zero).sum(dim=1) / count
    centred = torch.where(present, values - mean[:, None], zero)
    spread = torch.sqrt((centred**2).sum(dim=1) / count)
    scale = 1.0 + torch.where(present, values.abs(), zero).amax(dim=1)
    flat = spread <= ZERO_SPREAD_RTOL * scale
    return torch.where(flat[:, None], zero, centred / torch.where(flat, torch.ones_like(spread), spread)[:, None])


def score_rule_masked(
    updates: torch.Tensor,
    present: torch.Tensor,
    num_faulty: torch.Tensor,
    previous_direction: torch.Tensor,
    has_previous: torch.Tensor,
    stakes: torch.Tensor,
) -> MaskedScores:
    """Score C sets of updates (see the module docstring).

    Args:
        updates: Updates d_i of every row of every set. ``(C, N, P)`` float.
        present: The rows that belong to each set. ``(C, N)`` bool, at least ``f + 3`` per set.
        num_faulty: f of each set. ``(C,)`` int, ``0 <= f <= n - 3``.
        previous_direction: Each set's previous global update (any value where ``has_previous`` is False). ``(C, P)``.
        has_previous: Whether a set has a previous direction. ``(C,)`` bool.
        stakes: Stake s(i) of every row (stake units, positive on present rows). ``(C, N)``.

    Raises:
        ConfigError: If a set has fewer than ``f + 3`` present rows.
    """
    count = present.sum(dim=1)
    faulty = num_faulty.to(count)
    if bool((count - faulty - 2 < 1).any()):
        raise ConfigError("num_faulty: every set needs n - f - 2 >= 1 present updates, i.e. f <= n - 3")
    dtype = updates.dtype
    size = count.to(dtype)
    norms = torch.linalg.vector_norm(updates, dim=2) * torch.linalg.vector_norm(previous_direction, dim=1)[:, None]
    dots = torch.matmul(updates, previous_direction.unsqueeze(2)).squeeze(2)
    positive = norms > 0
    cosine = torch.where(positive, dots / torch.where(positive, norms, torch.ones_like(norms)), torch.zeros_like(dots))
    alignment = torch.where(has_previous[:, None], cosine, torch.zeros_like(cosine))  # eq. 7
    distances = torch.cdist(updates, updates, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")
    rows = updates.shape[1]
    eye = torch.eye(rows, dtype=torch.bool, device=updates.device)
    usable = present[:, None, :] & ~eye[None]
    nearest = torch.sort(torch.where(usable, distances, torch.full_like(distances, float("inf"))), dim=2).values
    within = torch.arange(rows, device=updates.device)[None, None, :] < (count - faulty - 1)[:, None, None]
    spread = torch.where(within, nearest, torch.zeros_like(nearest)).sum(dim=2)  # eq. 8
    scores = _masked_z_score(alignment, present, size) - _masked_z_score(spread, present, size)  # eq. 9
    ranked = torch.where(present, scores, torch.full_like(scores, -float("inf")))
    order = torch.sort(-ranked, dim=1, stable=True).indices  # highest first, ties by lowest index
    keep = (count - faulty - 2)[:, None]
    selected = torch.zeros_like(present)
    selected.scatter_(1, order, torch.arange(rows, device=updates.device)[None, :].expand_as(order) < keep)
    weights = torch.where(selected, stakes.to(dtype), torch.zeros_like(scores))
    aggregate = torch.matmul((weights / weights.sum(dim=1, keepdim=True)).unsqueeze(1), updates).squeeze(1)  # eq. 10
    return MaskedScores(aggregate, torch.where(present, scores, torch.full_like(scores, float("nan"))), selected)
