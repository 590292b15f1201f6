"""Quantum Byzantine agreement over three-party QDS (second paper, Appendix A.2, eq. A1).

A committee of N members (position 0 is the leader, 1..N-1 the other members) agrees on the leader's value
while up to f < N/2 members (the leader included) are faulty.

Schedule (broadcasting phase, exactly eq. A1)
---------------------------------------------
Round m = 0..f-1. For every *primary path* ``sigma = (0, p_1, .., p_m)`` of distinct members (primary
``p_m``; the leader for m = 0), every *forwarder* i not on sigma and every *verifier* j not on sigma and not
i, one three-party QDS operation runs: the primary signs its document, sends it to i (Bob), and i forwards it
to j (Charlie). There are ``A(N-1, m)`` paths, ``N-1-m`` forwarders and ``N-2-m`` verifiers per path, so
``A(N-1, m+2)`` operations in round m and

    N_QDS = sum_{m=0}^{f-1} A(N-1, 2+m),   A(n, k) = n! / (n-k)!          (eq. A1)

Reading of eq. A1: the paper defines ``A_a^b = a!/(a-b)!`` (b-permutations of a) and writes ``A_{N-1}^{2+m}``,
so a = N - 1 (the members other than the leader) and b = 2 + m; N is the committee size (Appendix A calls it
"N clients"; in Sec. 4.5 the committee has N_c members and f_c faulty ones). For f < N/2 every term has
b <= N - 1, so no term is zero. The per-round term matches the text: round 0 has ``A(N-1, 2)`` operations,
one per ordered (forwarder, verifier) pair.

Every scheduled operation consumes its one-time keys (they are distributed before the round and discarded
after it) whether or not its signer speaks, so the count is eq. A1 independently of faults. With a
:class:`~ceas_gym.consensus.qds.KeySource`, each operation draws its ``6 n`` key bits, which books the Bell
pairs. f = 0 needs no signature: the leader's value is delivered directly and N_QDS = 0.

Message semantics (the modelling decisions)
-------------------------------------------
- A document is a set of leader values with a *signature chain* (the members it passed through). QDS makes a
  document transferable and unforgeable (Appendix A.1; the tests of :mod:`ceas_gym.consensus.qds` show a forged
  or altered tag is rejected): a faulty member can drop a document, forward a subset of what it holds, or send
  a forgery, which every receiver rejects (and thereby identifies the sender). Only the leader can originate
  values, and it can give different forwarders different values (equivocation) or none.
- The primary commits to one document per (path, forwarder); the ``N-2-m`` operations with the different
  verifiers each transfer that document to one verifier.
- Member r *holds* values per chain. In round m, the primary of sigma sends what it holds on ``sigma[:-1]``
  (the leader: its value); forwarder i adds what it receives to its holding on sigma and, honest, forwards
  everything it holds on sigma (this round's receipt and what it received as verifier one round earlier) to
  each verifier j, who adds it to its holding on ``sigma + (i,)``.

Decision (gathering phase)
--------------------------
Each honest member decides by the choice function of the signed-messages algorithm SM(f) (Lamport, Shostak, Pease
1982; Dolev-Strong 1983): if the validly signed leader values it holds (over all chains) are exactly one value, it
decides that value; otherwise (none, or several: an equivocating leader) it decides ``None`` and the leader is
detected as faulty. The paper's gathering phase uses a recursive majority over per-path lists (eq. A2-A3) but leaves
ties and missing messages open; the choice function comes with the standard proof of agreement under transferable
signatures, sketched below, and the tests check it for every faulty set of size f and randomised behaviours for
every N up to 7. The one-document-per-(path, forwarder) convention matters for it: if a primary could sign different
values in the operations with one forwarder, then for N = 4, f = 1 a leader that signs another value only in the
operation (forwarder 2, verifier 3) leaves member 1 holding one value and members 2, 3 holding two. With the choice
function the schedule above guarantees, for any f < N/2 and at most f faulty members:

- **Agreement**: all honest members decide the same. A value an honest member holds on a chain either passed
  through an honest member, who forwarded it to everyone off the chain in time, or through faulty members
  only; such a chain has at most f members, so the honest holder received it no later than the round before
  last (as verifier) or in the current round (as forwarder) and still forwards it to everyone.
- **Validity**: with an honest leader every honest member decides the leader's value (no one can forge
  another value, and the leader's document reaches every forwarder in round 0).

Small N (<= ~10) keeps the schedule small (eq. A1 grows like (N-1)!); correctness comes first, the loops run
over the schedule.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ceas_gym.config import ConfigError, check_choice, check_int
from ceas_gym.consensus.qds import KeySource

__all__ = ["FAULT_STRATEGIES", "QBAResult", "qds_operation_count", "run_qba"]

FaultStrategy = Literal["conflicting", "silent", "forge", "random"]
FAULT_STRATEGIES: tuple[str, ...] = ("conflicting", "silent", "forge", "random")
"""Faulty behaviours: ``conflicting`` (leader: its value to even forwarders, an alternative to odd ones;
relay: forwards to even members only), ``silent`` (sends nothing), ``forge`` (leader: forged documents to odd
forwarders; relay: a forged document to everyone), ``random`` (per document, a random choice among all of
these, driven by the run's generator)."""

_Chain = tuple[int, ...]


@dataclass(frozen=True)
class _Document:
    values: frozenset[Hashable]
    valid: bool = True


@dataclass(frozen=True)
class QBAResult:
    """Outcome of one agreement.

    Attributes:
        decisions: Decision of every honest non-leader member (member id -> value, or None for "leader faulty").
        leader_faulty_detected: Whether the honest members decided None (they agree, so any one tells).
        qds_operations: Three-party QDS operations run (eq. A1).
        pairs_consumed: Bell pairs booked by the key source for them (0 without a key source) (pairs).
        detected_forgers: Members that sent a forged document to an honest member.
        rounds: Multicast rounds (f).
    """

    decisions: dict[int, Hashable | None]
    leader_faulty_detected: bool
    qds_operations: int
    pairs_consumed: int
    detected_forgers: frozenset[int] = field(default_factory=frozenset)
    rounds: int = 0


def qds_operation_count(num_members: int, num_faulty: int) -> int:
    """Eq. A1: ``sum_{m=0}^{f-1} A(N-1, 2+m)`` with ``A(n, k) = n!/(n-k)!`` (0 when k > n).

    Args:
        num_members: N, the committee size including the leader.
        num_faulty: f, the tolerated number of faulty members.
    """
    check_int("num_members", num_members, 1)
    check_int("num_faulty", num_faulty, 0)
    return sum(math.perm(num_members - 1, 2 + m) for m in range(num_faulty))


class _Adversary:
    """Decides what each faulty member sends; all randomness from the run's generator."""

    def __init__(
        self,
        strategies: Mapping[int, str],
        alternatives: tuple[Hashable, Hashable],
        rng: np.random.Generator,
    ) -> None:
        self.strategies = strategies
        self.alternatives = alternatives
        self.rng = rng

    def _forged(self) -> _Document:
        return _Document(frozenset({self.alternatives[0]}), valid=False)

    def leader_document(self, value: Hashable, forwarder: int) -> _Document | None:
        strategy = self.strategies[0]
        if strategy == "silent":
            return None
        if strategy == "conflicting":
            return _Document(frozenset({value if forwarder % 2 == 0 else self.alternatives[0]}))
        if strategy == "forge":
            return _Document(frozenset({value})) if forwarder % 2 == 0 else self._forged()
        choice = int(self.rng.integers(0, 5))
        options: list[_Document | None] = [
            _Document(frozenset({value})),
            _Document(frozenset({self.alternatives[0]})),
            _Document(frozenset({self.alternatives[1]})),
            None,
            self._forged(),
        ]
        return options[choice]

    def relay_document(self, member: int, holding: frozenset[Hashable], recipient: int) -> _Document | None:
        strategy = self.strategies[member]
        if strategy == "silent":
            return None
        if strategy == "conflicting":
            return _Document(holding) if recipient % 2 == 0 and holding else None
        if strategy == "forge":
            return self._forged()
        choice = int(self.rng.integers(0, 4))
        if choice == 0:
            return _Document(holding) if holding else None
        if choice == 1:
            ordered = sorted(holding, key=repr)
            subset = frozenset(v for v in ordered if self.rng.random() < 0.5)
            return _Document(subset) if subset else None
        if choice == 2:
            return None
        return self._forged()


def _validate(
    num_members: int,
    num_faulty: int,
    faulty: Iterable[int],
    strategy: str | Mapping[int, str],
    allow_excess_faulty: bool = False,
) -> tuple[frozenset[int], dict[int, str]]:
    check_int("num_members", num_members, 2)
    check_int("num_faulty", num_faulty, 0)
    if 2 * num_faulty >= num_members:
        raise ConfigError(
            f"num_faulty = {num_faulty} is not allowed for num_members = {num_members}; "
            f"allowed: f < N/2, i.e. f <= {(num_members - 1) // 2}"
        )
    faulty_set = frozenset(int(member) for member in faulty)
    for member in faulty_set:
        check_int("faulty member", member, 0, num_members - 1)
    if len(faulty_set) > num_faulty and not allow_excess_faulty:
        raise ConfigError(
            f"faulty = {sorted(faulty_set)}: {len(faulty_set)} faulty members, more than num_faulty = {num_faulty}, "
            "the protocol tolerates; allowed: at most num_faulty, or allow_excess_faulty=True to inject that fault "
            "deliberately (agreement is then not guaranteed)"
        )
    if isinstance(strategy, str):
        check_choice("strategy", strategy, FAULT_STRATEGIES)
        strategies = dict.fromkeys(faulty_set, strategy)
    else:
        strategies = {}
        for member in faulty_set:
            if member not in strategy:
                raise ConfigError(f"strategy: faulty member {member} has no strategy; allowed: {FAULT_STRATEGIES}")
            check_choice(f"strategy[{member}]", strategy[member], FAULT_STRATEGIES)
            strategies[member] = strategy[member]
    return faulty_set, strategies


def run_qba(
    num_members: int,
    num_faulty: int,
    leader_value: Hashable,
    *,
    faulty: Iterable[int] = (),
    strategy: FaultStrategy | Mapping[int, FaultStrategy] = "random",
    rng: np.random.Generator | None = None,
    key_source: KeySource | None = None,
    hash_bits: int = 64,
    alternatives: tuple[Hashable, Hashable] = ("alternative-0", "alternative-1"),
    allow_excess_faulty: bool = False,
) -> QBAResult:
    """Run one quantum Byzantine agreement on ``leader_value``.

    Args:
        num_members: N >= 2, the committee size including the leader (member 0).
        num_faulty: f, the number of faulty members the protocol tolerates (rounds); needs ``f < N/2``.
        leader_value: The honest leader's value (any hashable, e.g. a block hash); None is reserved.
        faulty: Ids of the faulty members (0 = the leader). Guarantees hold when there are at most f.
        strategy: One faulty behaviour for all (see :data:`FAULT_STRATEGIES`) or a mapping member -> behaviour.
        rng: Generator for the ``random`` behaviour (required when it is used).
        key_source: Where each operation's ``6 * hash_bits`` key bits come from, or None (no booking).
        hash_bits: n, the QDS hash length (bits) used for key booking.
        alternatives: Two values, different from ``leader_value``, that faulty members push.
        allow_excess_faulty: Accept more faulty members than ``num_faulty``: a deliberate fault injection (the
            committee protocol uses it, since an election can seat more Byzantine members than f). Agreement is
            then not guaranteed, and the result shows what the adversary achieved.

    Returns:
        Every honest member's decision, leader detection, the QDS operation count (eq. A1) and pairs booked.

    Raises:
        ConfigError: On ``f >= N/2``, more faulty members than ``f`` (unless ``allow_excess_faulty``), an unknown
            strategy, a faulty id out of range, or a missing generator.
    """
    faulty_set, strategies = _validate(num_members, num_faulty, faulty, strategy, allow_excess_faulty)
    if leader_value is None or leader_value in alternatives:
        raise ConfigError("leader_value: None and the two alternatives are reserved; allowed: any other hashable")
    if "random" in strategies.values() and rng is None:
        raise ConfigError("rng: the 'random' strategy needs a np.random.Generator; got None")
    check_int("hash_bits", hash_bits, 2)
    adversary = _Adversary(strategies, alternatives, rng if rng is not None else np.random.default_rng(0))
    members = range(1, num_members)
    honest = [member for member in members if member not in faulty_set]
    pairs_before = key_source.pairs_consumed if key_source is not None else 0

    if num_faulty == 0:  # no signatures: the leader tells every member directly
        decisions: dict[int, Hashable | None] = {}
        for member in honest:
            if 0 not in faulty_set:
                decisions[member] = leader_value
                continue
            document = adversary.leader_document(leader_value, member)
            decisions[member] = next(iter(document.values)) if document and document.valid else None
        return QBAResult(decisions, any(d is None for d in decisions.values()), 0, 0, frozenset(), 0)

    holdings: defaultdict[tuple[int, _Chain], set[Hashable]] = defaultdict(set)
    forgers: set[int] = set()
    operations = 0

    def receive(receiver: int, chain: _Chain, sender: int, document: _Document | None) -> None:
        if document is None:
            return
        if not document.valid:
            if receiver not in faulty_set:
                forgers.add(sender)
            return
        holdings[(receiver, chain)].update(document.values)

    for round_index in range(num_faulty):
        for middle in itertools.permutations(members, round_index):
            path: _Chain = (0, *middle)
            primary = path[-1]
            outside = [member for member in members if member not in path]
            for forwarder in outside:
                if primary == 0:
                    document = (
                        adversary.leader_document(leader_value, forwarder)
                        if 0 in faulty_set
                        else _Document(frozenset({leader_value}))
                    )
                else:
                    held = frozenset(holdings.get((primary, path[:-1]), ()))
                    if primary in faulty_set:
                        document = adversary.relay_document(primary, held, forwarder)
                    else:
                        document = _Document(held) if held else None
                receive(forwarder, path, primary, document)
                forwarded_holding = frozenset(holdings.get((forwarder, path), ()))
                for verifier in outside:
                    if verifier == forwarder:
                        continue
                    operations += 1
                    if key_source is not None:
                        key_source.draw(6 * hash_bits)
                    if forwarder in faulty_set:
                        relayed = adversary.relay_document(forwarder, forwarded_holding, verifier)
                    else:
                        relayed = _Document(forwarded_holding) if forwarded_holding else None
                    receive(verifier, (*path, forwarder), forwarder, relayed)

    decisions = {}
    for member in honest:
        values: set[Hashable] = set()
        for (receiver, _), held in holdings.items():
            if receiver == member:
                values |= held
        decisions[member] = next(iter(values)) if len(values) == 1 else None
    pairs = (key_source.pairs_consumed - pairs_before) if key_source is not None else 0
    detected = any(decision is None for decision in decisions.values())
    return QBAResult(decisions, detected, operations, pairs, frozenset(forgers), num_faulty)
