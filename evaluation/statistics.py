"""Summary statistics for evaluation tables: means with Student-t 95 % confidence intervals."""

from __future__ import annotations

import math

import numpy as np

# Two-sided 95 % Student-t quantiles t_{0.975, dof} for small samples; larger samples use the normal 1.96.
_T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
          11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
          20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}  # fmt: skip


def t_quantile_975(dof: int) -> float:
    """Return the 97.5 % quantile of Student's t with ``dof`` degrees of freedom (table, conservative between rows)."""
    if dof < 1:
        return math.nan
    for key in sorted(_T_975):
        if dof <= key:
            return _T_975[key]
    return 1.96


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    """Return ``(mean, half_width)`` of the 95 % confidence interval of the mean (NaN half-width for n < 2)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if values.size < 2:
        return mean, math.nan
    half = t_quantile_975(values.size - 1) * float(values.std(ddof=1)) / math.sqrt(values.size)
    return mean, half
