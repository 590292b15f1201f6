"""A hash-chained ledger of committed consensus rounds (second paper, Sec. 4 and Alg. 3).

Each committed round becomes a :class:`Block` holding its position, the hash of its predecessor, the round it
commits, the hash of the aggregated model, the participants whose updates were aggregated, the committee
signatures, the round at which it was sealed, and a snapshot of every client's stake.

Conventions
-----------
- **Canonical serialisation**: the content fields (every field except ``block_hash``) as a JSON object with
  sorted keys, no whitespace (``separators=(",", ":")``), ASCII only; tuples become JSON arrays, stakes are
  JSON numbers (Python's shortest round-trip float repr). The encoding is UTF-8.
- **Hash**: SHA-256 of those bytes, as 64 lowercase hex digits. The paper uses BLAKE3; SHA-256 is in the
  standard library and plays the same role here (a collision-resistant hash).
- **Chain**: ``block[0].previous_hash`` is :data:`GENESIS_PREVIOUS_HASH` (64 zeros); ``block[k].previous_hash``
  equals ``block[k-1].block_hash``; ``block[k].index == k``; ``round_index`` strictly increases; each block's
  stored ``block_hash`` equals the hash of its own content.
- :meth:`Ledger.verify` walks the chain from the start and reports the **first** bad index and why. A single
  changed field, a reordering, a dropped block and an inserted block each break one of the rules above. An
  attacker who rewrites a block *and re-seals every later block* is detectable only against a head hash held
  elsewhere; pass it as ``expected_head``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ceas_gym.config import ConfigError, check_int

__all__ = ["GENESIS_PREVIOUS_HASH", "Block", "Ledger", "VerificationResult", "canonical_bytes", "sha256_hex"]

GENESIS_PREVIOUS_HASH = "0" * 64
_HEX = frozenset("0123456789abcdef")


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


def canonical_bytes(content: dict[str, Any]) -> bytes:
    """Canonical serialisation: sorted-key, whitespace-free, ASCII JSON, UTF-8 encoded."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _is_hex(value: object, length: int | None = None) -> bool:
    return (
        isinstance(value, str)
        and bool(value)
        and set(value) <= _HEX
        and (length is None or len(value) == length)
        and len(value) % 2 == 0
    )


@dataclass(frozen=True)
class Block:
    """One committed round.

    Attributes:
        index: Position in the ledger (0 for the first block).
        previous_hash: ``block_hash`` of the previous block (64 hex digits), or the genesis value.
        round_index: The training round this block commits (rounds).
        model_hash: Hash of the aggregated model or update (hex string).
        participants: Client ids whose updates entered the aggregate, ascending.
        signatures: Committee signatures over the consensus message (hex strings).
        timestamp_round: The round at which the block was sealed (rounds).
        stake_snapshot: Every client's stake after this round, indexed by client id (stake units).
        block_hash: SHA-256 of the canonical serialisation of the fields above (see :meth:`content_hash`).
    """

    index: int
    previous_hash: str
    round_index: int
    model_hash: str
    participants: tuple[int, ...]
    signatures: tuple[str, ...]
    timestamp_round: int
    stake_snapshot: tuple[float, ...]
    block_hash: str = ""

    def content(self) -> dict[str, Any]:
        """The hashed fields as a plain dict (everything except ``block_hash``)."""
        return {
            "index": self.index,
            "previous_hash": self.previous_hash,
            "round_index": self.round_index,
            "model_hash": self.model_hash,
            "participants": list(self.participants),
            "signatures": list(self.signatures),
            "timestamp_round": self.timestamp_round,
            "stake_snapshot": list(self.stake_snapshot),
        }

    def content_hash(self) -> str:
        """SHA-256 (hex) of the canonical serialisation of :meth:`content`."""
        return sha256_hex(canonical_bytes(self.content()))

    def sealed(self) -> Block:
        """A copy whose ``block_hash`` is the hash of its content."""
        return dataclasses.replace(self, block_hash=self.content_hash())


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of :meth:`Ledger.verify`.

    Attributes:
        ok: Whether the whole ledger verifies.
        first_bad_index: Position of the first offending block, or None when ``ok``.
        reason: What is wrong with it ("" when ``ok``).
    """

    ok: bool
    first_bad_index: int | None = None
    reason: str = ""


def _validate_fields(
    round_index: int,
    model_hash: str,
    participants: Sequence[int],
    signatures: Sequence[str],
    timestamp_round: int,
    stake_snapshot: Sequence[float],
) -> None:
    check_int("Block.round_index", round_index, 0)
    check_int("Block.timestamp_round", timestamp_round, 0)
    if not _is_hex(model_hash):
        raise ConfigError(
            f"Block.model_hash = {model_hash!r} is not allowed; allowed: a non-empty lowercase hex string"
        )
    for i, participant in enumerate(participants):
        check_int(f"Block.participants[{i}]", participant, 0)
    if list(participants) != sorted(set(participants)):
        raise ConfigError(
            f"Block.participants = {tuple(participants)!r}: allowed: distinct client ids in ascending order"
        )
    for i, signature in enumerate(signatures):
        if not _is_hex(signature):
            raise ConfigError(f"Block.signatures[{i}] = {signature!r} is not allowed; allowed: lowercase hex strings")
    for i, stake in enumerate(stake_snapshot):
        if isinstance(stake, bool) or not isinstance(stake, (int, float)) or not math.isfinite(stake):
            raise ConfigError(f"Block.stake_snapshot[{i}] = {stake!r} is not allowed; allowed: finite numbers")


class Ledger:
    """An append-only, hash-chained list of :class:`Block` objects.

    Args:
        blocks: Existing blocks, taken as they are (not checked; call :meth:`verify`). Defaults to empty.
    """

    def __init__(self, blocks: Iterable[Block] = ()) -> None:
        self._blocks: list[Block] = list(blocks)

    @property
    def blocks(self) -> tuple[Block, ...]:
        """The blocks, oldest first."""
        return tuple(self._blocks)

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def head_hash(self) -> str:
        """``block_hash`` of the newest block, or the genesis value for an empty ledger."""
        return self._blocks[-1].block_hash if self._blocks else GENESIS_PREVIOUS_HASH

    def append(
        self,
        round_index: int,
        model_hash: str,
        participants: Sequence[int],
        signatures: Sequence[str],
        timestamp_round: int,
        stake_snapshot: Sequence[float],
    ) -> Block:
        """Seal a new block on top of the chain and return it.

        Args:
            round_index: The committed training round (rounds); must exceed the previous block's.
            model_hash: Hash of the aggregated model (lowercase hex).
            participants: Client ids that contributed (distinct; stored ascending).
            signatures: Committee signatures (lowercase hex strings).
            timestamp_round: Round at which the block is sealed (rounds).
            stake_snapshot: Every client's stake after the round (finite numbers).

        Returns:
            The sealed block.

        Raises:
            ConfigError: On a malformed field or a round index that does not increase.
        """
        participants = tuple(sorted(int(p) for p in participants))
        _validate_fields(round_index, model_hash, participants, tuple(signatures), timestamp_round, stake_snapshot)
        if self._blocks and round_index <= self._blocks[-1].round_index:
            raise ConfigError(
                f"Block.round_index = {round_index} is not allowed; allowed: > {self._blocks[-1].round_index}, "
                "the previous block's round"
            )
        block = Block(
            index=len(self._blocks),
            previous_hash=self.head_hash,
            round_index=round_index,
            model_hash=model_hash,
            participants=participants,
            signatures=tuple(signatures),
            timestamp_round=timestamp_round,
            stake_snapshot=tuple(float(s) for s in stake_snapshot),
        ).sealed()
        self._blocks.append(block)
        return block

    def verify(self, expected_head: str | None = None) -> VerificationResult:
        """Check the whole chain; report the first bad block and why.

        Args:
            expected_head: A head hash held elsewhere (for example by another client), or None.

        Returns:
            ``VerificationResult(ok=True)`` or the first bad index with the reason.
        """
        previous_hash = GENESIS_PREVIOUS_HASH
        previous_round = -1
        for position, block in enumerate(self._blocks):
            if block.index != position:
                return VerificationResult(False, position, f"index is {block.index}, expected {position}")
            if block.previous_hash != previous_hash:
                return VerificationResult(False, position, "previous_hash does not match the previous block's hash")
            try:
                recomputed = block.content_hash()
            except (TypeError, ValueError) as error:
                return VerificationResult(False, position, f"content cannot be serialised: {error}")
            if block.block_hash != recomputed:
                return VerificationResult(False, position, "block_hash does not match the block's content")
            if block.round_index <= previous_round:
                return VerificationResult(False, position, "round_index does not increase")
            previous_hash = block.block_hash
            previous_round = block.round_index
        if expected_head is not None and expected_head != previous_hash:
            last = len(self._blocks) - 1 if self._blocks else None
            return VerificationResult(False, last, "head hash differs from the expected head")
        return VerificationResult(True)
