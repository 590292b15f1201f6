import dataclasses
import hashlib
import json

import pytest

from ceas_gym.config import ConfigError
from ceas_gym.consensus.ledger import GENESIS_PREVIOUS_HASH, Block, Ledger, LedgerHead, head_message


def build(n_blocks=5):
    ledger = Ledger()
    for k in range(n_blocks):
        ledger.append(
            round_index=2 * k + 1,
            model_hash=hashlib.sha256(f"model-{k}".encode()).hexdigest(),
            participants=[k, k + 2, k + 5],
            signatures=[f"{k:02x}ab", f"{k:02x}cd"],
            timestamp_round=2 * k + 1,
            stake_snapshot=[1.0 + k, 2.0, 3.5],
        )
    return ledger


def tampered_value(field, value):
    if field == "index":
        return value + 1
    if field in ("round_index", "timestamp_round"):
        return value + 1
    if field in ("previous_hash", "model_hash", "block_hash"):
        return ("f" if value[0] != "f" else "e") + value[1:]
    if field == "participants":
        return (*value[:-1], value[-1] + 1)
    if field == "signatures":
        return (*value[:-1], "ff" + value[-1])
    if field == "stake_snapshot":
        return (value[0] + 0.5, *value[1:])
    raise AssertionError(field)


def test_untouched_ledger_verifies_and_links():
    ledger = build()
    assert ledger.verify().ok
    assert ledger.verify(expected_head=ledger.head_hash).ok
    assert ledger.blocks[0].previous_hash == GENESIS_PREVIOUS_HASH
    for before, after in zip(ledger.blocks, ledger.blocks[1:], strict=False):
        assert after.previous_hash == before.block_hash


def test_hash_is_sha256_of_sorted_json():
    block = build(1).blocks[0]
    content = {
        "index": 0,
        "previous_hash": GENESIS_PREVIOUS_HASH,
        "round_index": block.round_index,
        "model_hash": block.model_hash,
        "participants": list(block.participants),
        "signatures": list(block.signatures),
        "timestamp_round": block.timestamp_round,
        "stake_snapshot": list(block.stake_snapshot),
    }
    expected = hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert block.block_hash == expected


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Block)])
@pytest.mark.parametrize("position", range(5))
def test_single_field_tampering_is_detected(field, position):
    ledger = build()
    blocks = list(ledger.blocks)
    blocks[position] = dataclasses.replace(
        blocks[position], **{field: tampered_value(field, getattr(blocks[position], field))}
    )
    result = Ledger(blocks).verify()
    assert not result.ok
    assert result.first_bad_index == position
    assert result.reason


def test_reordering_is_detected():
    blocks = list(build().blocks)
    blocks[1], blocks[3] = blocks[3], blocks[1]
    result = Ledger(blocks).verify()
    assert not result.ok and result.first_bad_index == 1


@pytest.mark.parametrize("dropped", range(5))
def test_dropped_block_is_detected(dropped):
    original = build()
    blocks = list(original.blocks)
    del blocks[dropped]
    result = Ledger(blocks, original.head).verify()
    if dropped == 4:  # dropping the newest block leaves a valid shorter chain; the committed head reveals it
        assert not result.ok and result.first_bad_index == 3 and "height 5" in result.reason
        assert not Ledger(blocks).verify().ok  # a chain handed over without its head cannot verify at all
    else:
        assert not result.ok and result.first_bad_index == dropped


@pytest.mark.parametrize("position", range(6))
def test_inserted_block_is_detected(position):
    original = build()
    forged = dataclasses.replace(original.blocks[2], model_hash="ab" * 32).sealed()
    blocks = list(original.blocks)
    blocks.insert(position, forged)
    result = Ledger(blocks).verify()
    assert not result.ok
    # A forged copy of block 2 fits at position 2 (same index and predecessor); the chain breaks just after it.
    assert result.first_bad_index == (position + 1 if position == 2 else position)


def test_resealed_suffix_is_caught_by_the_committed_head_and_a_forged_head_only_by_expected_head():
    original = build()
    blocks = list(original.blocks)
    blocks[4] = dataclasses.replace(blocks[4], model_hash="cd" * 32).sealed()
    result = Ledger(blocks, original.head).verify()
    assert not result.ok and result.first_bad_index == 4 and "committed head" in result.reason
    rewritten = Ledger(blocks, LedgerHead(5, blocks[4].block_hash))  # the attacker rewrites the head too
    assert rewritten.verify().ok
    result = rewritten.verify(expected_head=original.head_hash)  # a head held elsewhere still catches it
    assert not result.ok and result.first_bad_index == 4


def test_append_rejects_bad_fields():
    ledger = build(1)
    with pytest.raises(ConfigError, match="round_index"):
        ledger.append(1, "ab", [0], ["ab"], 1, [1.0])
    with pytest.raises(ConfigError, match="model_hash"):
        ledger.append(5, "not-hex", [0], ["ab"], 5, [1.0])
    with pytest.raises(ConfigError, match="signatures"):
        ledger.append(5, "ab", [0], ["XYZ"], 5, [1.0])
    with pytest.raises(ConfigError, match="stake_snapshot"):
        ledger.append(5, "ab", [0], ["ab"], 5, [float("nan")])
    with pytest.raises(ConfigError, match="participants"):
        ledger.append(5, "ab", [1, 1], ["ab"], 5, [1.0])


def test_participants_are_stored_sorted():
    ledger = Ledger()
    block = ledger.append(0, "ab", [5, 1, 3], [], 0, [])
    assert block.participants == (1, 3, 5)


@pytest.mark.parametrize("kept", range(5))
def test_truncation_by_the_last_k_blocks_is_rejected(kept):
    original = build()
    truncated = Ledger(original.blocks[:kept], original.head)
    result = truncated.verify()
    assert not result.ok and f"chain has {kept} blocks" in result.reason


def test_a_spliced_ledger_is_rejected():
    first, other = build(), Ledger()
    for k in range(5):
        other.append(2 * k + 1, "ef" * 32, [k], ["ab"], 2 * k + 1, [1.0])
    spliced = Ledger([*first.blocks[:3], *other.blocks[3:]], first.head)
    result = spliced.verify()
    assert not result.ok and result.first_bad_index == 3 and "previous_hash" in result.reason
    assert not Ledger([*first.blocks[:3], *other.blocks[3:]], other.head).verify().ok


def test_append_records_a_signed_head_that_verify_checks_by_default():
    ledger = Ledger()
    assert ledger.verify().ok and ledger.head == LedgerHead(0, GENESIS_PREVIOUS_HASH)
    seen = []

    def signer(text):
        seen.append(text)
        return [hashlib.sha256(f"7|{text}".encode()).hexdigest()]

    block = ledger.append(1, "ab", [0], ["cd"], 1, [1.0], head_signer=signer)
    assert seen == [head_message(1, block.block_hash)] == [ledger.head.message()]
    assert ledger.head.height == 1 and ledger.head.block_hash == block.block_hash and ledger.verify().ok
    with pytest.raises(ConfigError, match="head signature 0"):
        ledger.append(2, "ab", [0], ["cd"], 2, [1.0], head_signer=lambda text: ["not hex"])
    assert len(ledger) == 1 and ledger.verify().ok  # a refused append changes nothing
    forged = Ledger(ledger.blocks, LedgerHead(1, block.block_hash, ("XYZ",)))
    assert "not hex" in forged.verify().reason


STRUCTURAL = [
    ("participants", (3, 3), "participants"),
    ("participants", (5, 1), "participants"),
    ("participants", (-1,), "participants"),
    ("signatures", ("zz",), "signatures"),
    ("signatures", ("",), "signatures"),
    ("model_hash", "", "model_hash"),
    ("model_hash", "ABCD", "model_hash"),
    ("round_index", -1, "round_index"),
    ("timestamp_round", -2, "timestamp_round"),
    ("stake_snapshot", (float("inf"),), "stake_snapshot"),
    ("stake_snapshot", (True,), "stake_snapshot"),
    ("participants", [1, 2], "tuple"),
]


@pytest.mark.parametrize(("field", "value", "named"), STRUCTURAL)
def test_verify_refuses_a_correctly_hashed_block_that_append_would_never_store(field, value, named):
    first = Block(0, GENESIS_PREVIOUS_HASH, 1, "ab", (0,), ("cd",), 1, (1.0,))
    try:
        block = dataclasses.replace(first, **{field: value}).sealed()
    except (TypeError, ValueError):  # not serialisable: verify reports that instead
        block = dataclasses.replace(first, **{field: value})
    result = Ledger([block], LedgerHead(1, block.block_hash)).verify()
    assert not result.ok and result.first_bad_index == 0 and named in result.reason
