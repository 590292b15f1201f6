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
- **Structure**: every block obeys the rules :meth:`Ledger.append` enforces (:func:`check_block`, one function for
  both): non-negative rounds, a non-empty lowercase-hex model hash, distinct ascending participants, hex
  signatures, finite stakes, a 64-hex previous hash.
- **Head**: each append records the ledger's :class:`LedgerHead`, its height (number of blocks) and newest block
  hash, signed over :func:`head_message` by the committing committee's key material as the blocks are (the
  protocol passes a ``head_signer``). A chain read back from storage comes with the head committed with it
  (``Ledger(blocks, head)``).
- :meth:`Ledger.verify` walks the chain from the start and reports the **first** bad index and why, then checks
  the end of the chain against the recorded head by default. A single changed field, a reordering, an inserted
  block, a dropped block (the last one or the last k included: the height no longer matches) and a spliced chain
  each break one of the rules above; a ledger with blocks but no committed head is rejected, since its end cannot
  be checked. An attacker who rewrites a block *and re-seals every later block and the head* is detectable only
  against a head held elsewhere (another client's copy); pass it as ``expected_head``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ceas_gym.config import ConfigError, check_int

__all__ = [
    "GENESIS_PREVIOUS_HASH",
    "Block",
    "Ledger",
    "LedgerHead",
    "VerificationResult",
    "canonical_bytes",
    "check_block",
    "head_message",
    "sha256_hex",
]

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


def check_block(block: Block) -> None:
    """The structural rules of a block, the same for :meth:`Ledger.append` and :meth:`Ledger.verify`.

    Raises:
        ConfigError: Naming the first field that breaks a rule and what is allowed.
    """
    check_int("Block.index", block.index, 0)
    if not _is_hex(block.previous_hash, 64):
        raise ConfigError(f"Block.previous_hash = {block.previous_hash!r} is not allowed; allowed: 64 hex digits")
    for name in ("participants", "signatures", "stake_snapshot"):
        if not isinstance(getattr(block, name), tuple):
            raise ConfigError(f"Block.{name}: allowed: a tuple, got {type(getattr(block, name)).__name__}")
    _validate_fields(
        block.round_index,
        block.model_hash,
        block.participants,
        block.signatures,
        block.timestamp_round,
        block.stake_snapshot,
    )


def head_message(height: int, block_hash: str) -> str:
    """The text a committee signs to commit a ledger's head: ``ledger-head|<height>|<newest block hash>``."""
    return f"ledger-head|{height}|{block_hash}"


@dataclass(frozen=True)
class LedgerHead:
    """The committed end of a ledger.

    Attributes:
        height: Number of blocks (0 for an empty ledger).
        block_hash: ``block_hash`` of the newest block (the genesis value when empty).
        signatures: The committing committee's signatures over :func:`head_message` (hex strings).
    """

    height: int
    block_hash: str
    signatures: tuple[str, ...] = ()

    def message(self) -> str:
        """:func:`head_message` of this head."""
        return head_message(self.height, self.block_hash)


class Ledger:
    """An append-only, hash-chained list of :class:`Block` objects.

    Args:
        blocks: Existing blocks, taken as they are (not checked; call :meth:`verify`). Defaults to empty.
        head: The head committed with ``blocks`` (as recorded by :meth:`append`). Required for a non-empty chain
            to verify: without it, a chain missing its last blocks cannot be told from a whole one.
    """

    def __init__(self, blocks: Iterable[Block] = (), head: LedgerHead | None = None) -> None:
        self._blocks: list[Block] = list(blocks)
        self._head: LedgerHead | None = (
            head if head is not None or self._blocks else LedgerHead(0, GENESIS_PREVIOUS_HASH)
        )

    @property
    def head(self) -> LedgerHead | None:
        """The committed head (None for blocks handed over without one)."""
        return self._head

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
        head_signer: Callable[[str], Sequence[str]] | None = None,
    ) -> Block:
        """Seal a new block on top of the chain, record the new head, and return the block.

        Args:
            round_index: The committed training round (rounds); must exceed the previous block's.
            model_hash: Hash of the aggregated model (lowercase hex).
            participants: Client ids that contributed (distinct; stored ascending).
            signatures: Committee signatures (lowercase hex strings).
            timestamp_round: Round at which the block is sealed (rounds).
            stake_snapshot: Every client's stake after the round (finite numbers).
            head_signer: Signs the new head: called with its :func:`head_message` once the block is sealed, returns
                the committee's signatures over it (lowercase hex), made with the key material that signed the
                block. None records an unsigned head (its height and hash still fix the chain's end).

        Returns:
            The sealed block.

        Raises:
            ConfigError: On a malformed field or a round index that does not increase.
        """
        participants = tuple(sorted(int(p) for p in participants))
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
            stake_snapshot=tuple(s if isinstance(s, bool) else float(s) for s in stake_snapshot),
        )
        check_block(block)
        block = block.sealed()
        signatures = tuple(head_signer(head_message(len(self._blocks) + 1, block.block_hash))) if head_signer else ()
        for i, signature in enumerate(signatures):
            if not _is_hex(signature):
                raise ConfigError(f"head signature {i} = {signature!r} is not allowed; allowed: lowercase hex strings")
        self._blocks.append(block)
        self._head = LedgerHead(len(self._blocks), block.block_hash, signatures)
        return block

    def verify(self, expected_head: str | None = None) -> VerificationResult:
        """Check the whole chain and its end against the recorded head; report the first bad block and why.

        Args:
            expected_head: A head hash held elsewhere (for example by another client), checked as well, or None.

        Returns:
            ``VerificationResult(ok=True)`` or the first bad index with the reason (the last block's index, or
            None for an empty chain, when only the head disagrees).
        """
        previous_hash = GENESIS_PREVIOUS_HASH
        previous_round = -1
        for position, block in enumerate(self._blocks):
            if not isinstance(block, Block):
                return VerificationResult(False, position, f"not a Block: {type(block).__name__}")
            try:
                check_block(block)
            except ConfigError as error:
                return VerificationResult(False, position, f"malformed block: {error}")
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
        last = len(self._blocks) - 1 if self._blocks else None
        head = self._head
        if head is None:
            return VerificationResult(False, last, "no committed head: the chain's end cannot be checked")
        if head.height != len(self._blocks):
            return VerificationResult(
                False, last, f"the committed head is at height {head.height}, the chain has {len(self._blocks)} blocks"
            )
        if head.block_hash != previous_hash:
            return VerificationResult(False, last, "the newest block's hash differs from the committed head's")
        if not all(_is_hex(signature) for signature in head.signatures):
            return VerificationResult(False, last, "the committed head carries a signature that is not hex")
        if expected_head is not None and expected_head != previous_hash:
            return VerificationResult(False, last, "head hash differs from the expected head")
        return VerificationResult(True)
