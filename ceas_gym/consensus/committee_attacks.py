"""Malicious committee members in the consensus-and-block step (second paper, Alg. 3 and Sec. 5.1).

Sec. 5.1: malicious clients "may target the consensus phase of model aggregation by casting opposing votes or
generating incorrect aggregation results if they are selected as committee members or leaders". This module
runs the vote of Alg. 3 with such members and shows how the QDS and ledger pieces catch them.

Model
-----
- The committee has N_c members; position 0 is the leader. Every member has a behaviour from
  :data:`BEHAVIOURS`:

  * ``honest``: recomputes the aggregation (Alg. 3 line 10; every member sees the same updates, so it obtains
    the valid consensus message) and signs the leader's message iff it equals its own (line 11-13).
  * ``vote-against``: casts an opposing vote, that is, withholds its signature whatever the leader proposes
    (a signature on anything other than the proposed message would not count either).
  * ``forge``: as leader, proposes a forged consensus message (a wrong model hash) instead of the valid one; as
    member, submits a signature it did not produce with its own keys (a forged QDS tag, drawn at random) on a
    forged message, trying to inflate the approval count.

- **Signatures** are three-party QDS signatures (:mod:`ceas_gym.consensus.qds`): the member signs (Alice), the
  leader receives (Bob) and the next member in committee order verifies (Charlie). Each attempt draws one
  signature's ``6 n`` key bits from the key source, which books the Bell pairs it costs. A signature counts only
  if both Bob and Charlie accept it on the **proposed** message. A forged tag fails verification except with
  probability about ``2^-n`` per attempt (one-time universal hashing), so the forger is *detected*: it
  appears in :attr:`CommitteeVote.detected_forgers` and can be penalised through
  :func:`~ceas_gym.consensus.committee.update_stakes` (``detected_malicious``).
- **Acceptance** (Alg. 3 line 4): the block is accepted iff the number of valid signatures exceeds ``N_c / 2``.
  Hence vote-against members cannot block a valid result while honest members are a strict majority, and a
  forging leader's result is never accepted while honest members are at least half of the committee (honest
  members do not sign it; with an honest majority the forged message can gather at most ``N_c - honest``
  valid signatures).
- :func:`commit_vote` appends an accepted round to the :class:`~ceas_gym.consensus.ledger.Ledger` with the
  valid signatures (hex) and refuses a rejected one; any later change of that block is caught by
  :meth:`~ceas_gym.consensus.ledger.Ledger.verify`.
- The consensus message is ``model_hash`` (hex) ``|`` the ascending participant ids, UTF-8 encoded
  (:func:`consensus_message`), as in Sec. 4.5 (hash of the aggregated update plus the selected client ids).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ceas_gym.config import ConfigError, check_choice, check_int
from ceas_gym.consensus.ledger import Block, Ledger
from ceas_gym.consensus.qds import KeySource, distribute_keys, sign, verify

__all__ = ["BEHAVIOURS", "CommitteeVote", "commit_vote", "consensus_message", "run_committee_vote"]

BEHAVIOURS = ("honest", "vote-against", "forge")


@dataclass(frozen=True)
class CommitteeVote:
    """Outcome of one committee vote.

    Attributes:
        proposed: The message the leader put to the vote (bytes).
        accepted: Whether more than ``N_c / 2`` valid signatures were collected.
        valid_signers: Committee positions whose signature verified on the proposed message, ascending.
        withheld: Positions that did not sign (opposing votes, or honest members refusing a forged proposal).
        detected_forgers: Positions whose submitted signature failed QDS verification.
        signatures: The valid signatures as lowercase hex strings, in the order of ``valid_signers``.
        pairs_consumed: Bell pairs the signatures' keys cost (pairs).
    """

    proposed: bytes
    accepted: bool
    valid_signers: tuple[int, ...]
    withheld: tuple[int, ...]
    detected_forgers: tuple[int, ...]
    signatures: tuple[str, ...]
    pairs_consumed: int


def consensus_message(model_hash: str, participants: Sequence[int]) -> bytes:
    """The consensus message ``"<model_hash>|<id,id,..>"`` (UTF-8), participants ascending."""
    ids = ",".join(str(int(p)) for p in sorted(participants))
    return f"{model_hash}|{ids}".encode()


def _hex(bits: np.ndarray) -> str:
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def run_committee_vote(
    valid_message: bytes,
    behaviours: Sequence[str],
    source: KeySource,
    rng: np.random.Generator,
    *,
    forged_message: bytes | None = None,
    hash_bits: int = 32,
) -> CommitteeVote:
    """Run the signature collection of Alg. 3 with honest, vote-against and forging members.

    Args:
        valid_message: The consensus message every honest member recomputes (bytes).
        behaviours: One behaviour per committee position (position 0 is the leader), from :data:`BEHAVIOURS`.
        source: Key source for the QDS keys (books the Bell pairs).
        rng: Randomness of the signers (irreducible polynomials) and of forged tags.
        forged_message: What forgers propose or submit; defaults to ``valid_message`` with its first byte changed.
        hash_bits: QDS hash length n (bits, >= 2); a forged tag passes with probability about ``2^-n``.

    Returns:
        The vote's outcome.

    Raises:
        ConfigError: On an unknown behaviour, a committee smaller than 2, or a forged message equal to the valid one.
    """
    members = len(behaviours)
    if members < 2:
        raise ConfigError(f"behaviours: expected at least 2 committee members, got {members}")
    for position, behaviour in enumerate(behaviours):
        check_choice(f"behaviours[{position}]", behaviour, BEHAVIOURS)
    check_int("hash_bits", hash_bits, 2)
    if not valid_message:
        raise ConfigError("valid_message: expected a non-empty byte string")
    if forged_message is None:
        forged_message = bytes([valid_message[0] ^ 0xFF]) + valid_message[1:]
    if forged_message == valid_message:
        raise ConfigError("forged_message: must differ from valid_message")
    proposed = forged_message if behaviours[0] == "forge" else valid_message
    before = source.pairs_consumed
    signers: list[int] = []
    signatures: list[str] = []
    withheld: list[int] = []
    forgers: list[int] = []
    for position, behaviour in enumerate(behaviours):  # one QDS operation per member (committee, not hot path)
        if behaviour == "vote-against" or (behaviour == "honest" and proposed != valid_message):
            withheld.append(position)
            continue
        keys = distribute_keys(source, hash_bits)
        x_key, y_key = keys.x_b ^ keys.x_c, keys.y_b ^ keys.y_c
        if behaviour == "forge" and position != 0:
            document = forged_message
            tag = rng.integers(0, 2, size=2 * hash_bits, dtype=np.uint8)  # not made with the signer's keys
        else:
            document = proposed  # an honest member, or the forging leader signing its own proposal
            tag = sign(document, keys, rng)
        bob = verify(document, tag, x_key, y_key)
        charlie = bob and verify(document, tag, x_key, y_key)  # Charlie re-checks what Bob forwarded
        if not charlie:
            forgers.append(position)
        elif document == proposed:
            signers.append(position)
            signatures.append(_hex(tag))
        else:
            withheld.append(position)  # a genuine signature on another message does not count
    return CommitteeVote(
        proposed=proposed,
        accepted=2 * len(signers) > members,
        valid_signers=tuple(signers),
        withheld=tuple(withheld),
        detected_forgers=tuple(forgers),
        signatures=tuple(signatures),
        pairs_consumed=source.pairs_consumed - before,
    )


def commit_vote(
    ledger: Ledger,
    vote: CommitteeVote,
    *,
    round_index: int,
    model_hash: str,
    participants: Sequence[int],
    stake_snapshot: Sequence[float],
) -> Block | None:
    """Append the round to ``ledger`` if the vote was accepted; return the block, or None when rejected.

    Args:
        ledger: The ledger.
        vote: The outcome of :func:`run_committee_vote`.
        round_index: The committed round (rounds).
        model_hash: The aggregated model's hash (hex); must match the message that was voted on.
        participants: The aggregated clients.
        stake_snapshot: Stakes after the round.

    Raises:
        ConfigError: If the block's content does not match the message that was voted on.
    """
    if not vote.accepted:
        return None
    if consensus_message(model_hash, participants) != vote.proposed:
        raise ConfigError("model_hash/participants: do not match the consensus message the committee signed")

    def sign_head(text: str) -> list[str]:  # each signer binds its signature on the round to the new head
        return [hashlib.sha256(f"{signature}|{text}".encode()).hexdigest() for signature in vote.signatures]

    return ledger.append(
        round_index, model_hash, participants, vote.signatures, round_index, stake_snapshot, head_signer=sign_head
    )
