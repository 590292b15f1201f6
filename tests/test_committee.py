import hashlib
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceas_gym.config import ConfigError
from ceas_gym.consensus.committee import eligible_candidates, hash_to_unit, select_committee, update_stakes

GENESIS = hashlib.sha256(b"genesis").digest()


def test_hash_to_unit_interval_ends():
    assert hash_to_unit(b"\x00" * 32) == 2.0**-256
    assert hash_to_unit(b"\xff" * 32) == 1.0


def test_first_draw_matches_hand_computed_interval():
    stakes = [1.0, 1.0, 2.0]  # w = (1/4, 1/2, 1)
    for k in range(50):
        block = hashlib.sha256(f"block-{k}".encode()).digest()
        v = Fraction(int.from_bytes(hashlib.sha256(block).digest(), "big") + 1, 2**256)
        expected = 0 if v <= Fraction(1, 4) else (1 if v <= Fraction(1, 2) else 2)
        assert select_committee(block, stakes, 1).leader == expected


def test_same_hash_same_committee_and_hex_equals_bytes():
    stakes = np.arange(1.0, 11.0)
    first = select_committee(GENESIS, stakes, 4)
    assert select_committee(GENESIS, stakes, 4) == first
    assert select_committee(GENESIS.hex(), stakes, 4).members == first.members
    assert len(set(first.members)) == 4 and first.leader == first.members[0]
    others = {select_committee(hashlib.sha256(bytes([k])).digest(), stakes, 4).members for k in range(20)}
    assert len(others) > 1


def test_eligibility_top_2nc_with_ties():
    stakes = [5.0, 4.0, 3.0, 3.0, 3.0, 1.0]
    assert eligible_candidates(stakes, 1).tolist() == [0, 1]
    assert eligible_candidates(stakes, 2).tolist() == [0, 1, 2, 3, 4]  # the tie at 3 admits all three
    committee = select_committee(GENESIS, stakes, 1)
    assert committee.leader in (0, 1) and committee.candidates == (0, 1)


def test_zero_stake_is_never_drawn():
    stakes = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    for k in range(100):
        committee = select_committee(hashlib.sha256(str(k).encode()).digest(), stakes, 3)
        assert set(committee.members) == {1, 3, 4}


def test_too_few_positive_stakes_is_an_error():
    with pytest.raises(ConfigError, match="committee_size"):
        select_committee(GENESIS, [0.0, 1.0, 0.0], 2)


def test_negative_stakes_are_rejected():
    with pytest.raises(ConfigError, match="stakes"):
        select_committee(GENESIS, [1.0, -1.0, 2.0], 1)


def test_leader_frequency_is_proportional_to_stake():
    stakes = np.array([1.0, 2.0, 3.0, 4.0])
    trials = 4000
    counts = np.zeros(4)
    for k in range(trials):
        # N_c = 2 makes all four clients eligible (top 2 N_c).
        counts[select_committee(hashlib.sha256(f"round-{k}".encode()).digest(), stakes, 2).leader] += 1
    expected = trials * stakes / stakes.sum()
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    assert chi_square < 16.27  # chi-square, 3 degrees of freedom, p = 0.001


@settings(max_examples=25, deadline=None)
@given(
    stakes=st.lists(st.integers(1, 20), min_size=3, max_size=12),
    size=st.integers(1, 3),
    seed=st.binary(min_size=1, max_size=8),
)
def test_committee_is_distinct_and_drawn_from_candidates(stakes, size, seed):
    committee = select_committee(seed, stakes, size)
    assert len(committee.members) == size == len(set(committee.members))
    assert set(committee.members) <= set(committee.candidates)
    assert committee.draws >= size


def test_update_stakes_accepted_block_rewards_contributors():
    new = update_stakes(
        [3.0, 3.0, 3.0, 3.0], block_accepted=True, contributors=[0, 2], committee=[1, 3], detected_malicious=[3]
    )
    assert new.tolist() == [4.0, 3.0, 4.0, 2.0]


def test_update_stakes_rejected_block_penalises_committee_with_floor():
    new = update_stakes([0.5, 3.0, 3.0], block_accepted=False, contributors=[2], committee=[0, 1])
    assert new.tolist() == [0.0, 2.0, 3.0]


def test_update_stakes_bad_ids():
    with pytest.raises(ConfigError, match="contributors"):
        update_stakes([1.0, 1.0], block_accepted=True, contributors=[2], committee=[])
