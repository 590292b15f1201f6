"""Settings of the committee + QBA protocol (:mod:`ceas_gym.consensus.qba_protocol`), checked when built."""

from __future__ import annotations

from dataclasses import dataclass

from ceas_gym.config import ConfigError, check_choice, check_int, check_range
from ceas_gym.consensus.qba import FAULT_STRATEGIES

__all__ = ["QBAConfig"]


@dataclass(frozen=True)
class QBAConfig:
    """Settings of the committee + QBA protocol.

    Attributes:
        committee_size: N_c, committee members per round (Alg. 1), >= 2.
        committee_faulty: f_c, faulty members the QBA tolerates (multicast rounds, eq. A1), ``0 <= f_c < N_c / 2``.
        update_faulty: f of the score rule (Alg. 2: keep ``n - f - 2`` updates), >= 0; capped at ``n - 3``.
        initial_stake: Every node's stake at the start of an episode (stake units), > 0.
        stake_reward: Stake gained per aggregated update of a committed block (Alg. 3: 1), >= 0.
        stake_penalty: Stake lost per committee member of a failed round, and per detected attacker (Alg. 3: 1).
        exclusion_penalty: Stake lost by nodes the score rule excluded in a committed round (not in Alg. 3), >= 0.
        minimum_stake: Stake floor after every update (stake units), > 0 so a committee can always be elected.
        hash_bits: n, the QDS hash length (bits), >= 2; one QDS operation uses ``6 n`` key bits.
        key_bits_per_pair: Secret key bits one scheduled pair unit yields (bits per pair), > 0.
        pairs_per_exchange: Pairs one hop of one update upload consumes (pairs), >= 1.
        byzantine_members: Node ids that act Byzantine when elected (QBA behaviour below; never sign).
        byzantine_strategy: Their QBA behaviour, one of :data:`~ceas_gym.consensus.qba.FAULT_STRATEGIES`.
        probability_clip: eps of the reported divergence (probabilities clipped to ``[eps, 1 - eps]``).
    """

    committee_size: int = 4
    committee_faulty: int = 1
    update_faulty: int = 3
    initial_stake: float = 10.0
    stake_reward: float = 1.0
    stake_penalty: float = 1.0
    exclusion_penalty: float = 0.0
    minimum_stake: float = 1.0
    hash_bits: int = 64
    key_bits_per_pair: float = 1024.0
    pairs_per_exchange: int = 1
    byzantine_members: tuple[int, ...] = ()
    byzantine_strategy: str = "conflicting"
    probability_clip: float = 1e-6

    def __post_init__(self) -> None:
        check_int("QBAConfig.committee_size", self.committee_size, 2)
        check_int("QBAConfig.committee_faulty", self.committee_faulty, 0)
        if 2 * self.committee_faulty >= self.committee_size:
            raise ConfigError(
                f"QBAConfig.committee_faulty = {self.committee_faulty} is out of range for committee_size = "
                f"{self.committee_size}; allowed: [0, {(self.committee_size - 1) // 2}] (f_c < N_c / 2)"
            )
        check_int("QBAConfig.update_faulty", self.update_faulty, 0)
        check_range("QBAConfig.initial_stake", self.initial_stake, 0.0, low_inclusive=False, finite=True)
        check_range("QBAConfig.stake_reward", self.stake_reward, 0.0, finite=True)
        check_range("QBAConfig.stake_penalty", self.stake_penalty, 0.0, finite=True)
        check_range("QBAConfig.exclusion_penalty", self.exclusion_penalty, 0.0, finite=True)
        check_range("QBAConfig.minimum_stake", self.minimum_stake, 0.0, self.initial_stake, low_inclusive=False)
        check_int("QBAConfig.hash_bits", self.hash_bits, 2)
        check_range("QBAConfig.key_bits_per_pair", self.key_bits_per_pair, 0.0, low_inclusive=False, finite=True)
        check_int("QBAConfig.pairs_per_exchange", self.pairs_per_exchange, 1)
        members = tuple(self.byzantine_members)
        for index, member in enumerate(members):
            check_int(f"QBAConfig.byzantine_members[{index}]", member, 0)
        repeated = sorted({member for member in members if members.count(member) > 1})
        if repeated:
            raise ConfigError(
                f"QBAConfig.byzantine_members = {members!r}: node(s) {repeated} listed more than once; allowed: "
                "distinct node ids"
            )
        object.__setattr__(self, "byzantine_members", members)
        check_choice("QBAConfig.byzantine_strategy", self.byzantine_strategy, FAULT_STRATEGIES)
        check_range(
            "QBAConfig.probability_clip", self.probability_clip, 0.0, 0.5, low_inclusive=False, high_inclusive=False
        )
