import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceas_gym.config import ConfigError
from ceas_gym.consensus.committee import update_stakes
from ceas_gym.consensus.committee_attacks import commit_vote, consensus_message, run_committee_vote
from ceas_gym.consensus.ledger import Ledger
from ceas_gym.consensus.qds import RandomKeySource

MODEL_HASH = "ab" * 32
PARTICIPANTS = (0, 3, 4, 7)
MESSAGE = consensus_message(MODEL_HASH, PARTICIPANTS)


def _vote(behaviours, seed=0, **kwargs):
    source = RandomKeySource(np.random.default_rng(seed))
    return run_committee_vote(MESSAGE, behaviours, source, np.random.default_rng(seed + 1000), **kwargs), source


def test_consensus_message_layout():
    assert consensus_message("0f", [5, 1, 3]) == b"0f|1,3,5"


def test_all_honest_accepts_with_every_signature_and_books_pairs():
    vote, source = _vote(["honest"] * 5, hash_bits=16)
    assert vote.pairs_consumed == source.pairs_consumed
    assert vote.accepted
    assert vote.valid_signers == (0, 1, 2, 3, 4)
    assert vote.detected_forgers == () and vote.withheld == ()
    assert len(set(vote.signatures)) == 5
    # 5 signatures x 6n key bits at 1/2 bit per pair
    assert vote.pairs_consumed == math.ceil(5 * 6 * 16 / 0.5)


def test_vote_against_minority_is_outvoted():
    vote, _ = _vote(["honest", "vote-against", "honest", "vote-against", "honest"])
    assert vote.accepted
    assert vote.valid_signers == (0, 2, 4)
    assert vote.withheld == (1, 3)


def test_vote_against_majority_blocks_and_half_is_not_enough():
    blocked, _ = _vote(["honest", "vote-against", "vote-against", "vote-against", "honest"])
    assert not blocked.accepted
    tie, _ = _vote(["honest", "honest", "vote-against", "vote-against"])
    assert not tie.accepted  # 2 of 4 is not more than N_c / 2


def test_forging_members_are_detected_and_do_not_count():
    vote, _ = _vote(["honest", "forge", "honest", "forge", "honest"], hash_bits=32)
    assert vote.accepted
    assert vote.detected_forgers == (1, 3)
    assert vote.valid_signers == (0, 2, 4)
    stakes = update_stakes(
        [5.0] * 5,
        block_accepted=True,
        contributors=[0, 2],
        committee=range(5),
        detected_malicious=[1, 3],
    )
    assert stakes.tolist() == [6.0, 4.0, 6.0, 4.0, 5.0]


def test_forging_leader_is_rejected_by_honest_members():
    vote, _ = _vote(["forge", "honest", "honest", "vote-against", "honest"])
    assert vote.proposed != MESSAGE
    assert not vote.accepted
    assert vote.valid_signers == (0,)  # only the leader signs its own forgery
    ledger = Ledger()
    assert (
        commit_vote(
            ledger, vote, round_index=0, model_hash=MODEL_HASH, participants=PARTICIPANTS, stake_snapshot=[1.0] * 8
        )
        is None
    )
    assert len(ledger) == 0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_forged_tags_fail_verification(seed):
    vote, _ = _vote(["honest", "forge", "forge"], seed=seed, hash_bits=24)
    assert vote.detected_forgers == (1, 2)
    assert not vote.accepted  # 1 valid of 3


def test_accepted_vote_commits_a_verifiable_block_and_tampering_is_caught():
    vote, _ = _vote(["honest", "vote-against", "honest"])
    ledger = Ledger()
    block = commit_vote(
        ledger, vote, round_index=3, model_hash=MODEL_HASH, participants=PARTICIPANTS, stake_snapshot=[1.0] * 8
    )
    assert block is not None and block.signatures == vote.signatures
    assert ledger.verify().ok
    with pytest.raises(ConfigError, match="model_hash"):
        commit_vote(
            ledger, vote, round_index=4, model_hash="cd" * 32, participants=PARTICIPANTS, stake_snapshot=[1.0] * 8
        )

    forged = dataclasses.replace(ledger.blocks[0], model_hash="cd" * 32)
    assert not Ledger([forged]).verify().ok


def test_same_seed_same_vote():
    a, _ = _vote(["honest", "forge", "honest"], seed=7)
    b, _ = _vote(["honest", "forge", "honest"], seed=7)
    assert a == b


def test_bad_input_names_field():
    with pytest.raises(ConfigError, match="behaviours"):
        _vote(["honest", "lazy"])
    with pytest.raises(ConfigError, match="behaviours"):
        _vote(["honest"])
    with pytest.raises(ConfigError, match="forged_message"):
        _vote(["honest", "honest"], forged_message=MESSAGE)
