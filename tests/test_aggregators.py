import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ceas_gym.config import ConfigError
from ceas_gym.learning.aggregators import (
    AGGREGATORS,
    AggregationContext,
    aggregate,
    krum_scores,
)

ALL_RULES = ["fedavg", "fidelity-weighted", "median", "trimmed-mean", "krum", "multi-krum", "score"]


def t(rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_registry_holds_every_rule():
    assert set(ALL_RULES) <= set(AGGREGATORS.names())


def test_fedavg_hand_computed():
    result = aggregate("fedavg", t([[1, 2], [3, 4], [5, 0]]), torch.tensor([1.0, 1.0, 2.0]))
    assert torch.allclose(result.aggregate, t([3.5, 1.5]))
    assert torch.allclose(result.scores, t([0.25, 0.25, 0.5]))
    assert result.selected.tolist() == [0, 1, 2]


def test_fedavg_defaults_to_equal_weights_and_zero_weight_is_not_selected():
    assert torch.allclose(aggregate("fedavg", t([[1.0], [2.0], [6.0]])).aggregate, t([3.0]))
    result = aggregate("fedavg", t([[1.0], [2.0], [6.0]]), torch.tensor([1.0, 0.0, 1.0]))
    assert torch.allclose(result.aggregate, t([3.5]))
    assert result.selected.tolist() == [0, 2]


def test_fidelity_weighted_is_eq5_normalised_stamps():
    stamps = torch.tensor([0.9, 0.3, 0.6])
    result = aggregate("fidelity-weighted", t([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]), stamps)
    # alpha = (0.5, 1/6, 1/3): aggregate = 0.5*(1,0) + (1/6)*(0,1) + (1/3)*(2,2)
    assert torch.allclose(result.aggregate, t([0.5 + 2 / 3, 1 / 6 + 2 / 3]))
    assert math.isclose(float(result.scores.sum()), 1.0)


@pytest.mark.parametrize(
    ("weights", "message"),
    [(None, "needs the fidelity stamps"), ([0.5, -0.1, 0.2], "negative"), ([0.0, 0.0, 0.0], "all entries are zero")],
)
def test_fidelity_weighted_rejects_bad_stamps(weights, message):
    w = None if weights is None else torch.tensor(weights)
    with pytest.raises(ConfigError, match=message):
        aggregate("fidelity-weighted", t([[1.0], [2.0], [3.0]]), w)


def test_weights_of_wrong_shape_are_rejected():
    with pytest.raises(ConfigError, match=r"expected shape \(3,\)"):
        aggregate("fedavg", t([[1.0], [2.0], [3.0]]), torch.ones(2))


def test_non_finite_updates_are_rejected():
    with pytest.raises(ConfigError, match="NaN or infinite"):
        aggregate("median", t([[1.0], [float("nan")]]))


def test_median_odd_and_even():
    assert torch.allclose(aggregate("median", t([[1.0, 9.0], [5.0, 7.0], [3.0, 8.0]])).aggregate, t([3.0, 8.0]))
    assert torch.allclose(aggregate("median", t([[1.0], [2.0], [10.0], [4.0]])).aggregate, t([3.0]))


def test_trimmed_mean_hand_computed():
    ctx = AggregationContext(num_faulty=1)
    result = aggregate("trimmed-mean", t([[1.0, -50.0], [2.0, 0.0], [3.0, 1.0], [100.0, 2.0]]), context=ctx)
    assert torch.allclose(result.aggregate, t([2.5, 0.5]))


def test_trimmed_mean_needs_2f_below_n():
    with pytest.raises(ConfigError, match="2f < n"):
        aggregate("trimmed-mean", t([[1.0], [2.0], [3.0], [4.0]]), context=AggregationContext(num_faulty=2))


def test_krum_scores_hand_computed():
    points = t([[0.0], [1.0], [2.0], [10.0], [11.0]])
    # f = 1: sum of squared distances to the 2 nearest others.
    assert torch.allclose(krum_scores(points, 1), t([5.0, 2.0, 5.0, 65.0, 82.0]))
    result = aggregate("krum", points, context=AggregationContext(num_faulty=1))
    assert result.selected.tolist() == [1]
    assert torch.allclose(result.aggregate, t([1.0]))


def test_multi_krum_default_m_and_tie_breaking():
    points = t([[0.0], [1.0], [2.0], [10.0], [11.0]])
    default = aggregate("multi-krum", points, context=AggregationContext(num_faulty=1))
    assert default.selected.tolist() == [0, 1, 2, 3]  # m = n - f = 4
    assert torch.allclose(default.aggregate, t([3.25]))
    # Indices 0 and 2 tie at score 5; with m = 2 the lower index (0) wins.
    two = aggregate("multi-krum", points, context=AggregationContext(num_faulty=1, num_selected=2))
    assert two.selected.tolist() == [0, 1]
    assert torch.allclose(two.aggregate, t([0.5]))


def test_krum_tie_goes_to_lowest_index():
    # f = 1, n = 4: one nearest neighbour; 0 and 1 both score 1.
    result = aggregate("krum", t([[5.0], [9.0], [0.0], [1.0]]), context=AggregationContext(num_faulty=1))
    assert result.scores.tolist() == [16.0, 16.0, 1.0, 1.0]
    assert result.selected.tolist() == [2]


@pytest.mark.parametrize("rule", ["krum", "multi-krum", "score"])
def test_too_many_faulty_for_distance_rules(rule):
    with pytest.raises(ConfigError, match="n - f - 2 >= 1"):
        aggregate(rule, t([[1.0], [2.0], [3.0], [4.0]]), context=AggregationContext(num_faulty=2))


def test_context_rejects_negative_faulty():
    with pytest.raises(ConfigError, match="num_faulty"):
        AggregationContext(num_faulty=-1)


def test_score_rule_hand_computed_without_previous_direction():
    points = t([[0.0], [1.0], [2.0], [10.0], [11.0]])
    # f = 1: v2 = distance sums to the 3 closest others = (13, 11, 11, 18, 20); v1 is dropped (no direction).
    v2 = [13.0, 11.0, 11.0, 18.0, 20.0]
    mean = sum(v2) / 5
    std = math.sqrt(sum((x - mean) ** 2 for x in v2) / 5)
    expected = t([-(x - mean) / std for x in v2])
    result = aggregate("score", points, context=AggregationContext(num_faulty=1))
    assert torch.allclose(result.scores, expected)
    assert result.selected.tolist() == [1, 2]  # keep n - f - 2 = 2
    assert torch.allclose(result.aggregate, t([1.5]))
    staked = aggregate("score", points, context=AggregationContext(num_faulty=1, stakes=torch.tensor([1, 3, 1, 1, 1])))
    assert torch.allclose(staked.aggregate, t([(3 * 1 + 1 * 2) / 4]))  # eq. 10


def reference_score(updates, prev, f, stakes):
    """Independent loop implementation of Alg. 2 / eq. 7-10 on Python lists."""
    n = len(updates)
    norm = lambda v: math.sqrt(sum(x * x for x in v))  # noqa: E731
    v1 = []
    for u in updates:
        denominator = norm(u) * norm(prev) if prev is not None else 0.0
        v1.append(sum(a * b for a, b in zip(u, prev, strict=True)) / denominator if denominator > 0 else 0.0)
    v2 = []
    for i in range(n):
        dists = sorted(math.dist(updates[i], updates[k]) for k in range(n) if k != i)
        v2.append(sum(dists[: n - f - 1]))

    def z(values):
        mean = sum(values) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in values) / n)
        return [0.0] * n if std <= 1e-12 * (1 + max(abs(x) for x in values)) else [(x - mean) / std for x in values]

    score = [a - b for a, b in zip(z(v1), z(v2), strict=True)]
    order = sorted(range(n), key=lambda i: (-score[i], i))[: n - f - 2]
    total = sum(stakes[i] for i in order)
    agg = [sum(stakes[i] * updates[i][j] for i in order) / total for j in range(len(updates[0]))]
    return score, sorted(order), agg


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(
        st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=3, max_size=3), min_size=5, max_size=9
    ),
    prev=st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=3, max_size=3),
    f=st.integers(0, 2),
    stakes_seed=st.integers(0, 1000),
)
def test_score_rule_matches_reference_implementation(data, prev, f, stakes_seed):
    n = len(data)
    stakes = [1.0 + ((stakes_seed * (i + 7)) % 5) for i in range(n)]
    ref_scores, ref_selected, ref_agg = reference_score(data, prev, f, stakes)
    result = aggregate(
        "score",
        t(data),
        context=AggregationContext(num_faulty=f, previous_direction=t(prev), stakes=torch.tensor(stakes)),
    )
    assert torch.allclose(result.scores, t(ref_scores), atol=1e-7)
    # Near-ties can order differently under rounding; compare the selection only where scores are well separated.
    ordered = sorted(ref_scores, reverse=True)
    keep = n - f - 2
    if keep == n or ordered[keep - 1] - ordered[keep] > 1e-6:
        assert result.selected.tolist() == ref_selected
        assert torch.allclose(result.aggregate, t(ref_agg), atol=1e-6)


def test_score_rule_uses_alignment_with_previous_direction():
    # Equidistant-ish cloud where only the direction differs: (1,0),(0,1),(-1,0),(0,-1),(0,0) with f = 1.
    points = t([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [0.0, 0.0]])
    result = aggregate("score", points, context=AggregationContext(num_faulty=1, previous_direction=t([1.0, 0.0])))
    # v1 = (1, 0, -1, 0, 0); v2 = (1 + 2 sqrt2, same, same, same, 3) -> the origin is most central, and
    # among the four unit points the one aligned with (1, 0) wins.
    assert result.selected.tolist() == [0, 4]
    assert float(result.scores[0]) > float(result.scores[1]) > float(result.scores[2])


def test_score_rule_all_equal_updates_zero_std():
    points = t([[2.0, -1.0]] * 6)
    result = aggregate("score", points, context=AggregationContext(num_faulty=1, previous_direction=t([1.0, 1.0])))
    assert torch.equal(result.scores, torch.zeros(6, dtype=torch.float64))
    assert result.selected.tolist() == [0, 1, 2]  # ties -> lowest indices
    assert torch.allclose(result.aggregate, t([2.0, -1.0]))


def test_score_rule_zero_previous_direction_equals_none():
    points = t([[0.0, 1.0], [1.0, 2.0], [2.0, 0.5], [10.0, 3.0], [4.0, 4.0], [1.0, 1.0]])
    with_zero = aggregate("score", points, context=AggregationContext(num_faulty=1, previous_direction=t([0.0, 0.0])))
    without = aggregate("score", points, context=AggregationContext(num_faulty=1))
    assert torch.equal(with_zero.scores, without.scores)
    assert torch.equal(with_zero.selected, without.selected)


def test_score_rule_zero_update_has_zero_cosine():
    points = t([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    direction = t([0.0, 1.0])
    result = aggregate("score", points, context=AggregationContext(num_faulty=0, previous_direction=direction))
    assert torch.isfinite(result.scores).all()


def test_score_rule_rejects_all_zero_selected_stakes():
    points = t([[0.0], [1.0], [2.0], [10.0], [11.0]])
    stakes = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])
    with pytest.raises(ConfigError, match="zero stake"):
        aggregate("score", points, context=AggregationContext(num_faulty=1, stakes=stakes))


@pytest.mark.parametrize("rule", ALL_RULES)
def test_all_equal_updates_give_that_update(rule):
    points = t([[0.5, -2.0, 3.0]] * 7)
    result = aggregate(rule, points, torch.ones(7), AggregationContext(num_faulty=2))
    assert torch.allclose(result.aggregate, t([0.5, -2.0, 3.0]))


@pytest.mark.parametrize("rule", ALL_RULES)
def test_zero_vectors(rule):
    result = aggregate(rule, torch.zeros(6, 4, dtype=torch.float64), torch.ones(6), AggregationContext(num_faulty=1))
    assert torch.equal(result.aggregate, torch.zeros(4, dtype=torch.float64))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(6, 10), rule=st.sampled_from(ALL_RULES))
def test_permutation_equivariance(seed, n, rule):
    generator = torch.Generator().manual_seed(seed)
    updates = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    weights = torch.rand(n, generator=generator, dtype=torch.float64) + 0.1
    prev = torch.randn(4, generator=generator, dtype=torch.float64)
    perm = torch.randperm(n, generator=generator)
    ctx = AggregationContext(num_faulty=1, previous_direction=prev, stakes=weights)
    ctx_perm = AggregationContext(num_faulty=1, previous_direction=prev, stakes=weights[perm])
    base = aggregate(rule, updates, weights, ctx)
    permuted = aggregate(rule, updates[perm], weights[perm], ctx_perm)
    assert torch.allclose(base.aggregate, permuted.aggregate, atol=1e-10)
    assert torch.allclose(base.scores[perm], permuted.scores, atol=1e-10)
    assert sorted(perm[permuted.selected].tolist()) == base.selected.tolist()


@pytest.mark.parametrize("rule", ["median", "trimmed-mean", "krum", "multi-krum", "score"])
def test_huge_outliers_do_not_move_robust_rules(rule):
    generator = torch.Generator().manual_seed(3)
    honest = 0.1 * torch.randn(10, 5, generator=generator, dtype=torch.float64)
    outliers = torch.full((2, 5), 1e6, dtype=torch.float64)
    updates = torch.cat([honest, outliers])
    ctx = AggregationContext(num_faulty=2, previous_direction=honest.mean(dim=0))
    robust = aggregate(rule, updates, context=ctx)
    assert float(torch.linalg.vector_norm(robust.aggregate - honest.mean(dim=0))) < 0.5
    assert float(torch.linalg.vector_norm(aggregate("fedavg", updates).aggregate)) > 1e5


def test_unknown_rule_lists_known_names():
    with pytest.raises(KeyError, match=r"known: .*krum"):
        aggregate("krumm", t([[1.0]]))


def reference_coordinate_rules(rows, f):
    """Per-coordinate sorted lists: median and trimmed mean by plain Python."""
    n = len(rows)
    medians, trimmed = [], []
    for column in zip(*rows, strict=True):
        ordered = sorted(column)
        medians.append((ordered[(n - 1) // 2] + ordered[n // 2]) / 2)
        kept = ordered[f : n - f]
        trimmed.append(sum(kept) / len(kept))
    return medians, trimmed


def reference_krum(rows, f):
    n = len(rows)
    scores = []
    for i in range(n):
        squared = sorted(sum((a - b) ** 2 for a, b in zip(rows[i], rows[k], strict=True)) for k in range(n) if k != i)
        scores.append(sum(squared[: n - f - 2]))
    return scores


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.lists(st.floats(-100, 100, allow_nan=False, width=32), min_size=2, max_size=2), min_size=5, max_size=9
    ),
    f=st.integers(0, 2),
)
def test_coordinate_rules_and_krum_match_reference(rows, f):
    medians, trimmed = reference_coordinate_rules(rows, f)
    ctx = AggregationContext(num_faulty=f)
    assert torch.allclose(aggregate("median", t(rows)).aggregate, t(medians))
    assert torch.allclose(aggregate("trimmed-mean", t(rows), context=ctx).aggregate, t(trimmed))
    scores = reference_krum(rows, f)
    result = aggregate("krum", t(rows), context=ctx)
    assert torch.allclose(result.scores, t(scores), rtol=1e-9, atol=1e-6)
    best = min(scores)
    tolerance = 1e-6 * (1 + abs(best))
    (chosen,) = result.selected.tolist()
    assert scores[chosen] <= best + tolerance  # a minimal score...
    assert all(scores[i] > scores[chosen] - tolerance for i in range(chosen))  # ...no lower index clearly better
    computed = result.scores.tolist()
    if sum(s == min(computed) for s in computed) > 1:  # ties in the computed scores go to the lowest index
        assert chosen == computed.index(min(computed))
