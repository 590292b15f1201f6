"""Statistics against published tables and hand computation (not against the library they call)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from evaluation.statistics import mean_ci95, paired_comparison, t_quantile_975

# Two-sided 95 % critical values of Student's t (NIST/SEMATECH e-Handbook, table 1.3.6.7.2), 3 decimals.
PUBLISHED = {1: 12.706, 2: 4.303, 5: 2.571, 10: 2.228, 21: 2.080, 25: 2.060, 29: 2.045, 50: 2.009, 100: 1.984}


@pytest.mark.parametrize(("dof", "value"), sorted(PUBLISHED.items()))
def test_t_quantiles_match_the_published_table(dof, value):
    assert t_quantile_975(dof) == pytest.approx(value, abs=5e-4)


def test_the_quantile_falls_towards_the_normal_and_is_undefined_below_one_dof():
    values = [t_quantile_975(dof) for dof in (1, 2, 5, 21, 22, 100, 10_000)]
    assert all(a > b for a, b in itertools.pairwise(values))  # strictly between table rows too
    assert t_quantile_975(10**7) == pytest.approx(1.959964, abs=1e-5)
    assert math.isnan(t_quantile_975(0))


def test_mean_interval_by_hand():
    values = np.array([1.0, 2.0, 3.0, 4.0])  # mean 2.5, sd sqrt(5/3)
    mean, half = mean_ci95(values)
    assert mean == 2.5
    assert half == pytest.approx(3.182446 * math.sqrt(5 / 3) / 2, rel=1e-6)
    assert math.isnan(mean_ci95(np.array([1.0]))[1])


def test_paired_comparison_by_hand():
    a = np.array([10.0, 12.0, 9.0, 11.0, 13.0])
    b = np.array([9.0, 11.5, 8.0, 10.0, 11.5])  # differences 1, 0.5, 1, 1, 1.5: mean 1, sd sqrt(0.125)
    result = paired_comparison(a, b)
    sd = math.sqrt(0.125)
    assert result.pairs == 5 and result.mean == pytest.approx(1.0)
    assert result.t_statistic == pytest.approx(1.0 / (sd / math.sqrt(5)))
    assert result.half_width == pytest.approx(2.776445 * sd / math.sqrt(5), rel=1e-6)
    assert 0.0 < result.p_value < 0.01 and result.significant


def test_paired_comparison_edge_cases():
    same = paired_comparison(np.ones(4), np.ones(4))
    assert same.mean == 0.0 and math.isnan(same.p_value) and not same.significant
    with pytest.raises(ValueError, match="same length"):
        paired_comparison(np.ones(3), np.ones(4))
