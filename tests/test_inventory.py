"""The pair inventory and request queue: conservation, decay closed form, serving order, expiry."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceas_gym.network.demand import Arrivals, RequestQueue, StochasticDemand, StochasticDemandConfig
from ceas_gym.network.inventory import PairInventory


def make_inventory(num_links=3, capacity=4, cutoff=5, coherence=10.0, fidelity0=0.95, floor=0.26):
    return PairInventory(
        capacity=np.full(num_links, capacity),
        cutoff=np.full(num_links, cutoff),
        coherence_rounds=np.full(num_links, coherence),
        fidelity0=np.full(num_links, fidelity0),
        fidelity_floor=floor,
    )


def test_fresh_pairs_have_fidelity0_and_decay_as_werner_closed_form():
    inventory = make_inventory(num_links=1, capacity=1, cutoff=100, coherence=7.0, fidelity0=0.9)
    inventory.add(np.array([1]))
    for age in range(6):
        expected = 0.25 + (0.9 - 0.25) * math.exp(-age / 7.0)
        assert inventory.fidelity()[0, 0] == pytest.approx(expected, rel=1e-12)
        inventory.age_one_round()


def test_pairs_expire_exactly_at_cutoff():
    inventory = make_inventory(num_links=1, capacity=2, cutoff=3, coherence=math.inf)
    inventory.add(np.array([2]))
    expired = [int(inventory.age_one_round()[0]) for _ in range(4)]
    # Usable at ages 0, 1, 2; discarded when age reaches 3.
    assert expired == [0, 0, 2, 0]
    assert inventory.held[0] == 0


def test_pairs_below_fidelity_floor_are_discarded():
    # F(a) = 0.25 + 0.75 exp(-a/2) drops below 0.5 once exp(-a/2) < 1/3, i.e. a > 2 ln 3 = 2.197 -> at age 3.
    inventory = make_inventory(num_links=1, capacity=1, cutoff=100, coherence=2.0, fidelity0=1.0, floor=0.5)
    inventory.add(np.array([1]))
    expired = [int(inventory.age_one_round()[0]) for _ in range(4)]
    assert expired == [0, 0, 1, 0]


def test_overflow_when_memory_is_full():
    inventory = make_inventory(num_links=2, capacity=3)
    stored, overflow = inventory.add(np.array([5, 2]))
    assert stored.tolist() == [3, 2]
    assert overflow.tolist() == [2, 0]
    inventory.check_conservation()


def test_per_link_capacities_are_respected():
    inventory = PairInventory(
        capacity=np.array([1, 3]),
        cutoff=np.array([4, 4]),
        coherence_rounds=np.array([5.0, 5.0]),
        fidelity0=np.array([0.9, 0.9]),
    )
    stored, overflow = inventory.add(np.array([3, 3]))
    assert stored.tolist() == [1, 3]
    assert overflow.tolist() == [2, 0]


def test_serving_order_oldest_versus_freshest():
    inventory = make_inventory(num_links=2, capacity=3, cutoff=10, coherence=4.0)
    for _ in range(3):  # ages end up 2, 1, 0 on both links
        inventory.add(np.array([1, 1]))
        inventory.age_one_round()
    inventory.add(np.array([0, 0]))
    ages_before = np.sort(inventory.age, axis=1)
    assert ages_before.tolist() == [[1, 2, 3], [1, 2, 3]]
    result = inventory.consume(np.array([1, 1]), freshest_first=np.array([False, True]))
    assert result.fidelity_in_order[0, 0] == pytest.approx(0.25 + 0.7 * math.exp(-3 / 4.0))  # oldest on link 0
    assert result.fidelity_in_order[1, 0] == pytest.approx(0.25 + 0.7 * math.exp(-1 / 4.0))  # freshest on link 1
    assert sorted(inventory.age[0].tolist()) == [-1, 1, 2]
    assert sorted(inventory.age[1].tolist()) == [-1, 2, 3]


def test_consume_more_than_held_raises():
    inventory = make_inventory(num_links=1)
    inventory.add(np.array([1]))
    with pytest.raises(ValueError, match="at most the pairs held"):
        inventory.consume(np.array([2]), np.array([False]))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    num_links=st.integers(1, 6),
    capacity=st.integers(1, 6),
    cutoff=st.integers(1, 6),
    rounds=st.integers(1, 25),
)
def test_conservation_holds_every_round_for_random_traffic(seed, num_links, capacity, cutoff, rounds):
    rng = np.random.default_rng(seed)
    inventory = make_inventory(num_links=num_links, capacity=capacity, cutoff=cutoff, coherence=3.0, floor=0.3)
    for _ in range(rounds):
        inventory.add(rng.integers(0, capacity + 3, size=num_links))
        take = rng.integers(0, inventory.held + 1)
        inventory.consume(take, rng.random(num_links) < 0.5)
        inventory.age_one_round()
        inventory.check_conservation()
        assert np.all(inventory.held <= capacity)
        assert np.all(inventory.remaining_lifetime()[inventory.occupied] >= 1)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cutoff=st.integers(1, 8), coherence=st.floats(0.5, 50.0))
def test_fidelities_match_closed_form_for_every_stored_pair(seed, cutoff, coherence):
    rng = np.random.default_rng(seed)
    inventory = make_inventory(num_links=2, capacity=5, cutoff=cutoff, coherence=coherence, floor=0.25)
    for _ in range(10):
        inventory.add(rng.integers(0, 3, size=2))
        inventory.age_one_round()
    ages = inventory.age[inventory.occupied]
    expected = 0.25 + (0.95 - 0.25) * np.exp(-ages / coherence)
    np.testing.assert_allclose(inventory.fidelity()[inventory.occupied], expected, rtol=1e-12)


def test_lifetime_histogram_counts_remaining_rounds():
    inventory = make_inventory(num_links=1, capacity=4, cutoff=4, coherence=math.inf)
    inventory.add(np.array([2]))
    inventory.age_one_round()
    inventory.add(np.array([1]))
    hist = inventory.lifetime_histogram(num_bins=4)
    # Two pairs of age 1 (3 rounds left) and one of age 0 (4 rounds left).
    assert hist.tolist() == [[0, 0, 2, 1]]


def test_lifetime_histogram_of_many_links_equals_a_count_per_slot():
    """Links counted apart, empty slots left out, longer lifetimes in the last bin: against a per-slot count."""
    inventory = make_inventory(num_links=3, capacity=6, cutoff=7, coherence=math.inf)
    rng = np.random.default_rng(5)
    for _ in range(4):
        inventory.add(rng.integers(0, 3, size=3))
        inventory.age_one_round()
    inventory.add(np.array([2, 0, 1]))
    num_bins = 4
    expected = np.zeros((3, num_bins))
    for link, slot in zip(*np.nonzero(inventory.occupied), strict=True):
        remaining = inventory.remaining_lifetime()[link, slot]
        expected[link, min(remaining, num_bins) - 1] += 1
    histogram = inventory.lifetime_histogram(num_bins)
    assert histogram.dtype == np.float32 and expected[:, -1].sum() > 0  # the last bin collects longer lifetimes
    np.testing.assert_array_equal(histogram, expected)
    assert histogram.sum() == inventory.held.sum()


def test_queue_serves_earliest_deadline_first_without_overtaking():
    inventory = make_inventory(num_links=1, capacity=4, cutoff=10, coherence=math.inf, fidelity0=0.9)
    queue = RequestQueue(num_links=1, queue_capacity=4)
    queue.push(Arrivals(link=np.array([0, 0, 0]), pairs=np.array([2, 3, 1]), deadline=np.array([3, 1, 2])))
    inventory.add(np.array([4]))
    result = queue.serve(inventory, np.array([False]))
    # Deadline order: 3 pairs (d=1) served, then 1 pair (d=2) served, then 2 pairs (d=3) blocked (0 left).
    assert result.served.tolist() == [2]
    assert result.pairs_consumed.tolist() == [4]
    assert result.fidelity_served[0] == pytest.approx(2 * 0.9)
    assert result.missed.tolist() == [0]
    assert queue.pending_pairs().tolist() == [2]
    assert queue.earliest_deadline(none_value=99).tolist() == [2]


def test_queue_blocks_later_requests_when_first_does_not_fit():
    inventory = make_inventory(num_links=1, capacity=4, cutoff=10)
    queue = RequestQueue(num_links=1, queue_capacity=4)
    queue.push(Arrivals(link=np.array([0, 0]), pairs=np.array([3, 1]), deadline=np.array([1, 2])))
    inventory.add(np.array([2]))
    result = queue.serve(inventory, np.array([False]))
    assert result.served.tolist() == [0]
    assert result.missed.tolist() == [1]  # the 3-pair request with deadline 1 ran out
    assert inventory.held.tolist() == [2]


def test_queue_rejects_arrivals_beyond_capacity_and_tracks_per_link():
    queue = RequestQueue(num_links=3, queue_capacity=2)
    rejected = queue.push(
        Arrivals(link=np.array([2, 0, 2, 2, 1]), pairs=np.array([1, 1, 2, 3, 1]), deadline=np.array([1, 1, 1, 1, 1]))
    )
    assert rejected.tolist() == [0, 0, 1]
    assert queue.pending_pairs().tolist() == [1, 1, 3]  # the third arrival on link 2 was rejected


def test_request_fidelity_uses_the_pairs_it_was_served_with():
    inventory = make_inventory(num_links=1, capacity=3, cutoff=10, coherence=2.0, fidelity0=1.0, floor=0.25)
    inventory.add(np.array([1]))
    inventory.age_one_round()
    inventory.add(np.array([2]))  # ages 1, 0, 0
    queue = RequestQueue(num_links=1, queue_capacity=2)
    queue.push(Arrivals(link=np.array([0, 0]), pairs=np.array([1, 2]), deadline=np.array([1, 2])))
    result = queue.serve(inventory, np.array([False]))  # oldest first: request 1 gets the age-1 pair
    f1 = 0.25 + 0.75 * math.exp(-0.5)
    assert result.fidelity_served[0] == pytest.approx(f1 + 1.0)


def test_stochastic_demand_is_reproducible_and_in_range():
    config = StochasticDemandConfig(rate=0.5, pairs_min=2, pairs_max=3, deadline_min=2, deadline_max=4)
    draws = []
    for _ in range(2):
        source = StochasticDemand(config)
        rng = np.random.default_rng(7)
        source.reset(20, rng)
        draws.append([source.sample(t, rng) for t in range(5)])
    for a, b in zip(*draws, strict=True):
        np.testing.assert_array_equal(a.link, b.link)
        np.testing.assert_array_equal(a.pairs, b.pairs)
    all_pairs = np.concatenate([a.pairs for a in draws[0]])
    all_deadlines = np.concatenate([a.deadline for a in draws[0]])
    assert all_pairs.min() >= 2 and all_pairs.max() <= 3
    assert all_deadlines.min() >= 2 and all_deadlines.max() <= 4


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), num_links=st.integers(1, 6), capacity=st.integers(1, 5))
def test_single_pair_consume_takes_first_pair_of_the_serving_order(seed, num_links, capacity):
    # Reference built from the public serving order and fidelity(): the first slot of each requested link's order.
    rng = np.random.default_rng(seed)
    inventory = make_inventory(num_links=num_links, capacity=capacity, cutoff=6, coherence=4.0)
    for _ in range(4):
        inventory.add(rng.integers(0, capacity + 1, num_links))
        inventory.age_one_round()
    inventory.add(rng.integers(0, 2, num_links))
    freshest = rng.random(num_links) < 0.5
    counts = np.minimum(rng.integers(0, 2, num_links), inventory.held)
    order = inventory.serving_order(freshest)
    fidelity_before = inventory.fidelity()
    age_before = inventory.age.copy()
    rows = np.flatnonzero(counts)
    first_slots = order[rows, 0]
    result = inventory.consume(counts, freshest)
    np.testing.assert_array_equal(result.fidelity_sum[rows], fidelity_before[rows, first_slots])
    np.testing.assert_array_equal(result.fidelity_sum[counts == 0], 0.0)
    np.testing.assert_array_equal(result.fidelity_in_order[rows, 0], fidelity_before[rows, first_slots])
    assert np.isnan(result.fidelity_in_order[:, 1:]).all() and np.isnan(result.fidelity_in_order[counts == 0]).all()
    expected_age = age_before.copy()
    expected_age[rows, first_slots] = -1
    np.testing.assert_array_equal(inventory.age, expected_age)
    inventory.check_conservation()
