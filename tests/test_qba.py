import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceas_gym.config import ConfigError
from ceas_gym.consensus.qba import FAULT_STRATEGIES, qds_operation_count, run_qba
from ceas_gym.consensus.qds import RandomKeySource

VALUE = "block-7f3a"


def test_eq_a1_hand_values():
    assert qds_operation_count(4, 1) == 6  # A(3, 2) = 3 * 2
    assert qds_operation_count(5, 2) == 12 + 24  # A(4, 2) + A(4, 3)
    assert qds_operation_count(7, 3) == 30 + 120 + 360  # A(6, 2) + A(6, 3) + A(6, 4)
    assert qds_operation_count(9, 0) == 0


@pytest.mark.parametrize(("n", "f"), [(n, f) for n in range(2, 8) for f in range((n + 1) // 2)])
def test_honest_run_counts_eq_a1_and_agrees_on_leader_value(n, f):
    result = run_qba(n, f, VALUE)
    expected = sum(math.factorial(n - 1) // math.factorial(n - 1 - (2 + m)) for m in range(f))
    assert result.qds_operations == expected
    assert result.decisions == dict.fromkeys(range(1, n), VALUE)
    assert not result.leader_faulty_detected


def check_agreement(result, n, faulty):
    honest = [m for m in range(1, n) if m not in faulty]
    assert sorted(result.decisions) == honest
    decided = set(result.decisions.values())
    assert len(decided) <= 1, result.decisions
    if 0 not in faulty:
        assert decided <= {VALUE}
        assert all(result.decisions[m] == VALUE for m in honest)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_agreement_and_validity_for_random_faulty_sets(data):
    n = data.draw(st.integers(2, 7), label="N")
    f = data.draw(st.integers(0, (n - 1) // 2), label="f")
    faulty = data.draw(st.sets(st.integers(0, n - 1), max_size=f), label="faulty")
    strategies = {m: data.draw(st.sampled_from(FAULT_STRATEGIES), label=f"strategy[{m}]") for m in sorted(faulty)}
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    result = run_qba(n, f, VALUE, faulty=faulty, strategy=strategies, rng=np.random.default_rng(seed))
    check_agreement(result, n, faulty)
    assert result.qds_operations == qds_operation_count(n, f)


@pytest.mark.parametrize("strategy", FAULT_STRATEGIES)
def test_exhaustive_faulty_sets_of_size_f(strategy):
    for n in range(3, 8):
        f = (n - 1) // 2
        for faulty in itertools.combinations(range(n), f):
            for seed in range(3 if strategy == "random" else 1):
                result = run_qba(n, f, VALUE, faulty=faulty, strategy=strategy, rng=np.random.default_rng(seed))
                check_agreement(result, n, set(faulty))


def test_too_many_faulty_members_can_split_the_honest_ones():
    # Negative control: with f + 1 faulty members the guarantee is void, and the random adversary finds a split.
    splits = 0
    for seed in range(300):
        result = run_qba(
            4, 1, VALUE, faulty={0, 1}, strategy="random", rng=np.random.default_rng(seed), allow_excess_faulty=True
        )
        splits += len(set(result.decisions.values())) > 1
    assert splits > 0


def test_more_faulty_members_than_f_are_refused_unless_injected_deliberately():
    with pytest.raises(ConfigError, match=r"2 faulty members, more than num_faulty = 1.*allow_excess_faulty"):
        run_qba(4, 1, VALUE, faulty={0, 1}, strategy="silent")
    assert run_qba(4, 1, VALUE, faulty={0, 1}, strategy="silent", allow_excess_faulty=True).decisions


def test_conflicting_leader_is_detected_by_everyone():
    result = run_qba(5, 2, VALUE, faulty={0}, strategy="conflicting")
    assert result.leader_faulty_detected
    assert set(result.decisions.values()) == {None}


def test_silent_leader_is_detected():
    result = run_qba(5, 2, VALUE, faulty={0, 3}, strategy="silent")
    assert result.leader_faulty_detected and set(result.decisions.values()) == {None}


def test_forging_members_are_identified_and_ignored():
    result = run_qba(7, 3, VALUE, faulty={2, 4, 6}, strategy="forge")
    assert result.detected_forgers == frozenset({2, 4, 6})
    assert result.decisions == {1: VALUE, 3: VALUE, 5: VALUE}


def test_key_source_books_pairs_per_operation():
    source = RandomKeySource(np.random.default_rng(0), bits_per_pair=0.5)
    result = run_qba(5, 2, VALUE, key_source=source, hash_bits=16)
    assert result.pairs_consumed == 36 * 6 * 16 * 2
    assert source.pairs_consumed == result.pairs_consumed


def test_same_seed_same_result():
    first = run_qba(7, 3, VALUE, faulty={0, 1, 5}, rng=np.random.default_rng(42))
    assert run_qba(7, 3, VALUE, faulty={0, 1, 5}, rng=np.random.default_rng(42)) == first


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_members": 4, "num_faulty": 2}, "f < N/2"),
        ({"num_members": 5, "num_faulty": 1, "faulty": {7}}, "faulty member"),
        ({"num_members": 5, "num_faulty": 1, "faulty": {1}, "strategy": "lie"}, "strategy"),
        ({"num_members": 5, "num_faulty": 1, "faulty": {1}, "strategy": "random"}, "rng"),
    ],
)
def test_bad_configuration_is_rejected(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        run_qba(leader_value=VALUE, **kwargs)


def test_documentation_example_runs():
    text = (Path(__file__).resolve().parents[1] / "docs" / "agreement.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/agreement.md", "exec"), {})
