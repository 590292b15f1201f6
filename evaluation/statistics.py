"""Summary statistics for evaluation tables: means with Student-t 95 % intervals, and paired comparisons.

Quantiles and tests come from :mod:`scipy.stats` (``t.ppf``, ``ttest_rel``), not from a table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["PairedComparison", "mean_ci95", "paired_comparison", "t_quantile_975"]


def t_quantile_975(dof: int | float) -> float:
    """The 97.5 % quantile of Student's t with ``dof`` degrees of freedom (NaN for ``dof < 1``)."""
    if not dof >= 1:
        return math.nan
    return float(stats.t.ppf(0.975, dof))


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    """Return ``(mean, half_width)`` of the 95 % confidence interval of the mean (NaN half-width for n < 2)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if values.size < 2:
        return mean, math.nan
    half = t_quantile_975(values.size - 1) * float(values.std(ddof=1)) / math.sqrt(values.size)
    return mean, half


@dataclass(frozen=True)
class PairedComparison:
    """``a - b`` over paired samples (the same seeds).

    Attributes:
        pairs: Number of pairs n.
        mean: Mean difference.
        half_width: Half-width of its 95 % Student-t interval (NaN for n < 2).
        t_statistic: Paired t statistic ``mean / (sd / sqrt(n))`` (NaN for n < 2 or zero spread).
        p_value: Two-sided p-value of the paired t-test (NaN where the statistic is).
    """

    pairs: int
    mean: float
    half_width: float
    t_statistic: float
    p_value: float

    @property
    def significant(self) -> bool:
        """Whether the 95 % interval excludes 0."""
        return bool(self.pairs >= 2 and abs(self.mean) > self.half_width)


def paired_comparison(a: np.ndarray, b: np.ndarray) -> PairedComparison:
    """Paired difference ``a - b`` (same seeds in the same order): mean, 95 % interval and paired t-test.

    Raises:
        ValueError: If ``a`` and ``b`` differ in length.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_comparison: expected two 1-D arrays of the same length, got {a.shape} and {b.shape}")
    mean, half = mean_ci95(a - b)
    if a.size < 2 or float(np.std(a - b)) == 0.0:
        return PairedComparison(int(a.size), mean, half, math.nan, math.nan)
    result = stats.ttest_rel(a, b)
    return PairedComparison(int(a.size), mean, half, float(result.statistic), float(result.pvalue))
