"""The committee + quantum Byzantine agreement protocol of the second paper, registered as ``qba``.

One training round ``t`` (second paper, Sec. 4, Alg. 1-3, Appendix A; DESIGN.md section 5):

1. **Committee** (Alg. 1, eq. 5): ``N_c`` members drawn by :func:`~ceas_gym.consensus.committee.select_committee`
   from the ledger's head hash (64 zeros before the first block) and the current stakes; the first is the leader.
   The next round's committee is therefore known before the round starts, which makes the demand forecast exact.
2. **Upload** (documented routing): every other node sends its submitted parameters to its *nearest* committee
   member, hop count along graph edges (ties: earlier in the draw order, leader first), along the shortest path
   (scipy's BFS predecessors). Each hop is one exchange of ``pairs_per_exchange`` pairs on that link, requested
   from the :class:`~ceas_gym.consensus.pairs.PairProvider` hop step by hop step: at step ``k`` every update still
   travelling requests its ``k``-th link; when several updates need the same link in one step they are served one
   call after another in ascending source id. An update whose hop is not granted stops there and does not arrive
   (its earlier hops' pairs are spent). A committee member's own update arrives without transport. The update
   travels at the end-to-end Werner fidelity of its hops, ``F = (1 + 3 prod_h w_h) / 4`` with
   ``w_h = (4 F_h - 1) / 3`` (successive depolarising teleportations compose multiplicatively in ``w``; Werner,
   PRA 40, 4277 (1989)); the ``perturb`` hook is applied with it to updates that travelled at least one hop.
   The committee members then hold the same arrived set (they share it inside the committee; that classical
   exchange is not charged, as Alg. 3 assumes "all members of the committee receive consistent model updates").
3. **Aggregation** (Alg. 2, eq. 7-10) with :func:`~ceas_gym.learning.aggregators.score_rule` on the updates
   ``d_i = theta_i - theta_ref`` of the ``n`` arrived nodes, ``theta_ref`` the last committed model (zeros before
   the first block), previous direction = the last global update ``theta_bar^{t-1} - theta_bar^{t-2}`` (None until
   two blocks exist, so eq. 7 contributes 0), stakes ``s(i)`` as weights (eq. 10), and
   ``f = min(update_faulty, n - 3)``. With ``n < 3`` arrived updates nothing can be scored: the round commits
   nothing and runs no agreement. The consensus model is ``theta_bar = theta_ref + d_bar``; since eq. 10 is a
   weighted mean this equals the stake-weighted mean of the kept nodes' parameters.
4. **Agreement** (Appendix A.2) with :func:`~ceas_gym.consensus.qba.run_qba` on the consensus message
   ``SHA-256(model hash || participant ids)`` (the paper's message: model hash + participant IDs, Sec. 5.2),
   committee position 0 = leader, ``f_c = committee_faulty`` multicast rounds, ``N_QDS`` three-party QDS
   operations (eq. A1). Operation (primary p, forwarder i, verifier j) uses ``3 n`` key bits shared by p and i and
   ``3 n`` by p and j (Appendix A.1: ``X`` of n bits and ``Y`` of 2n bits per party, ``n = hash_bits``). Key
   material for a member pair (a, b) with ``K_ab`` bits needs ``ceil(K_ab / key_bits_per_pair)`` end-to-end pairs,
   each consuming one pair on every link of the shortest a-b path (entanglement swapping; fidelity loss of the
   key pairs is not modelled). All key links are requested before the agreement (one call per distinct count).
   A member pair whose path has a link not granted has no key: both members are *key-starved* and act silent in
   the QBA (they cannot sign or forward) and give no block signature. The
   :class:`PairBackedKeySource` hands ``run_qba`` its bits and books the pairs.
5. **Votes and block** (Alg. 3): a member signs when it is honest, not key-starved, and its QBA decision equals
   the message it recomputes (every honest member recomputes the same aggregate); the leader signs its own
   message when honest and not key-starved. More than ``N_c / 2`` signatures commit the block. Byzantine members
   (``byzantine_members``) behave per ``byzantine_strategy`` in the QBA and never sign (opposing votes, Sec. 5.1).
   A signature is recorded as ``SHA-256(member id || message)`` (a stand-in for ``Sign(msg_i, i)``).
6. **Stakes** (Alg. 3 lines 17-23): committed: +``stake_reward`` to every aggregated node; otherwise
   -``stake_penalty`` to every committee member; detected forgers and a detected faulty leader lose
   ``stake_penalty`` in any case; with ``exclusion_penalty > 0`` nodes excluded by the score rule in a committed
   round lose that much too (Alg. 3 has no such penalty; default 0). Stakes are floored at ``minimum_stake > 0``
   so that a committee can always be elected. Stakes start at ``initial_stake`` (Sec. 4.2: equal stakes).
7. **Ledger**: a committed round appends a block (round, model hash, aggregated participants, signatures, stake
   snapshot) to the hash-chained :class:`~ceas_gym.consensus.ledger.Ledger`, whose new head the signing members
   sign as they signed the block (:func:`member_signatures`), and every node adopts
   ``theta_bar``. Otherwise every node keeps its own parameters and the reported consensus model is the last
   committed one (the plain mean of the submitted parameters before any).

Reported fields: ``participants`` = nodes aggregated (kept by the score rule); ``quarantined`` = arrived nodes the
score rule excluded in a committed round (this is per round: ``active`` stays all True, nobody is barred from the
next round); ``trust`` = ``s / max(s)``; ``checkpoint`` is True in every round (each round is a block attempt);
exchanges count upload hops plus key-link requests; ``received_fidelity`` is, for committee members, the mean
end-to-end fidelity of the updates they received (NaN elsewhere); ``divergence`` is D_KL(consensus || node) of the
submitted parameters (nats) when a predictor is given.

Units: the environments' pair is a scheduling unit (a whole model update costs ``pairs_per_exchange`` of them), so
``key_bits_per_pair`` is the secret key one such unit yields; set it to 0.5 for physical pairs under BBM92
sifting (Bennett, Brassard, Mermin, PRL 68, 557 (1992)).

Expected demand of the next round (deadline 1 round): ``pairs_per_exchange`` times the number of upload routes
crossing each link, plus the key pairs on the committee's key paths. It is exactly what a round with unlimited
pairs consumes when at least 3 updates arrive (always, with ``N >= 3`` and a connected graph). It changes with
the committee, so round 0's demand does not bound later rounds; :meth:`QBAProtocol.max_demand` gives a bound.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path

from ceas_gym.config import ConfigError, check_choice, check_int, check_range
from ceas_gym.consensus.bft import bernoulli_kl
from ceas_gym.consensus.committee import Committee, select_committee, update_stakes
from ceas_gym.consensus.gossip import Perturb, check_edges
from ceas_gym.consensus.ledger import Ledger
from ceas_gym.consensus.pairs import PairProvider
from ceas_gym.consensus.protocol import (
    ConsensusRoundResult,
    Predict,
    check_params,
    load_config,
    probe_predictions,
)
from ceas_gym.consensus.qba import FAULT_STRATEGIES, QBAResult, run_qba
from ceas_gym.learning.aggregators import AggregationContext, AggregationResult, score_rule

__all__ = [
    "PairBackedKeySource",
    "QBAConfig",
    "QBAProtocol",
    "QBARoundDetails",
    "model_hash",
    "qds_key_bits_per_member_pair",
]


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


def qds_key_bits_per_member_pair(committee_size: int, committee_faulty: int, hash_bits: int) -> np.ndarray:
    """Key bits each pair of committee positions shares for one QBA (Appendix A.1-A.2), ``(N_c, N_c)`` symmetric.

    The schedule is the one of :func:`~ceas_gym.consensus.qba.run_qba`: in multicast round m, for every path
    ``(0, p_1, .., p_m)`` of distinct positions, primary ``p_m``, every forwarder i and verifier j off the path
    (``i != j``) run one operation, which uses ``3 n`` bits shared by (primary, i) and ``3 n`` by (primary, j).
    The entries sum to ``2 * 6 n * N_QDS`` (each operation's ``6 n`` bits counted in both triangles).

    Args:
        committee_size: N_c >= 2.
        committee_faulty: f_c >= 0 (multicast rounds).
        hash_bits: n (bits).
    """
    check_int("committee_size", committee_size, 2)
    check_int("committee_faulty", committee_faulty, 0)
    check_int("hash_bits", hash_bits, 2)
    operations = np.zeros((committee_size, committee_size), dtype=np.int64)
    others = range(1, committee_size)
    for round_index in range(committee_faulty):
        for middle in itertools.permutations(others, round_index):
            path = (0, *middle)
            outside = [member for member in others if member not in path]
            for forwarder, verifier in itertools.permutations(outside, 2):
                operations[path[-1], forwarder] += 1
                operations[path[-1], verifier] += 1
    symmetric = operations + operations.T
    return symmetric * 3 * hash_bits


def model_hash(params: torch.Tensor) -> str:
    """SHA-256 (hex) of a parameter vector's float64 bytes (C order)."""
    array = np.ascontiguousarray(params.detach().cpu().to(torch.float64).numpy())
    return hashlib.sha256(array.tobytes()).hexdigest()


def member_signatures(members: Sequence[int], text: str) -> list[str]:
    """The committee members' signatures on ``text`` as the ledger records them: ``sha256("<member>|<text>")``.

    The QDS exchange that authenticates the vote (Appendix A) runs before; these hex strings stand for its outcome
    in the ledger, over the consensus message for a block and over :func:`~ceas_gym.consensus.ledger.head_message`
    for the head.
    """
    return [hashlib.sha256(f"{member}|{text}".encode()).hexdigest() for member in members]


class PairBackedKeySource:
    """A :class:`~ceas_gym.consensus.qds.KeySource` whose bits were distilled from pairs already granted.

    The round requests the key pairs from the pair provider before the agreement; this source then hands the
    QBA its key bits (drawn from ``rng``) and reports the pairs booked. Bits drawn beyond the granted key
    material are counted in :attr:`bits_missing` (those operations belong to key-starved members, which act
    silent in the QBA).

    Args:
        rng: Generator of the key bits.
        bits_available: Secret key bits the granted pairs yield (bits).
        pairs_granted: Pairs the granted key material consumed (pairs); booked as consumed at the first draw.
    """

    def __init__(self, rng: np.random.Generator, bits_available: int, pairs_granted: int) -> None:
        check_int("bits_available", bits_available, 0)
        check_int("pairs_granted", pairs_granted, 0)
        self._rng = rng
        self.bits_available = bits_available
        self.pairs_granted = pairs_granted
        self.pairs_consumed = 0
        self.bits_drawn = 0

    @property
    def bits_missing(self) -> int:
        """Bits drawn beyond the granted key material (bits)."""
        return max(0, self.bits_drawn - self.bits_available)

    def draw(self, num_bits: int) -> np.ndarray:
        """Return ``num_bits`` key bits as a 0/1 ``uint8`` array."""
        check_int("num_bits", num_bits, 0)
        self.bits_drawn += num_bits
        self.pairs_consumed = self.pairs_granted  # the key was distilled from these pairs before the round
        return self._rng.integers(0, 2, size=num_bits, dtype=np.uint8)


@dataclass(frozen=True)
class QBARoundDetails:
    """What happened inside one round, for inspection and tests.

    Attributes:
        committee: The elected committee (leader first).
        arrived: Nodes whose update reached the committee. ``(N,)`` bool.
        arrival_fidelity: End-to-end Werner fidelity of each arrived update (1 for committee members, NaN for
            updates that did not arrive). ``(N,)``.
        aggregation: The score rule's result over the arrived nodes (indices into the arrived nodes), or None.
        reference: The model the updates were taken relative to. ``(P,)``.
        key_starved: Committee members without their key material (committee order).
        qba: The agreement's result, or None when no agreement ran.
        signatures: Members that signed the block (node ids).
        upload_pairs_per_edge: Pairs the uploads consumed per link. ``(E,)`` int.
        key_pairs_per_edge: Pairs the QDS key material consumed per link. ``(E,)`` int.
    """

    committee: Committee
    arrived: np.ndarray
    arrival_fidelity: np.ndarray
    aggregation: AggregationResult | None
    reference: torch.Tensor
    key_starved: tuple[int, ...]
    qba: QBAResult | None
    signatures: tuple[int, ...]
    upload_pairs_per_edge: np.ndarray
    key_pairs_per_edge: np.ndarray


@dataclass(frozen=True)
class _Served:
    """Grants of a batch of single-link exchanges, all of which were requested."""

    granted: np.ndarray
    fidelity: np.ndarray
    attempted: int


class QBAProtocol:
    """Stake-elected committee, score-rule aggregation, QBA over QDS keys from the network, hash-chained ledger.

    Args:
        num_nodes: Number of nodes N, >= 1.
        edges: Link endpoints, ``u < v``. ``(E, 2)`` int; pair requests use its row indices.
        config: A :class:`QBAConfig`, a mapping of its fields, or None for the defaults.

    Attributes:
        ledger: The hash-chained ledger of committed rounds.
        stakes: Stake per node (stake units). ``(N,)``.
        last_round: Details of the last round run, or None.
    """

    name = "qba"
    config_class = QBAConfig

    def __init__(self, num_nodes: int, edges: np.ndarray, config: QBAConfig | Mapping[str, Any] | None = None):
        check_int("num_nodes", num_nodes, 1)
        self.num_nodes = num_nodes
        self.edges = check_edges(edges, num_nodes)
        self.config: QBAConfig = load_config(QBAConfig, config)
        config = self.config
        if config.committee_size > num_nodes:
            raise ConfigError(
                f"QBAConfig.committee_size = {config.committee_size} is out of range; allowed: [2, {num_nodes}]"
            )
        for member in config.byzantine_members:
            check_int("QBAConfig.byzantine_members", member, 0, num_nodes - 1)
        self.byzantine = np.zeros(num_nodes, dtype=bool)
        self.byzantine[list(config.byzantine_members)] = True
        n, edge_count = num_nodes, self.edges.shape[0]
        self.edge_index = np.full((n, n), -1, dtype=np.int64)
        self.edge_index[self.edges[:, 0], self.edges[:, 1]] = np.arange(edge_count)
        self.edge_index[self.edges[:, 1], self.edges[:, 0]] = np.arange(edge_count)
        graph = csr_matrix((np.ones(edge_count), (self.edges[:, 0], self.edges[:, 1])), shape=(n, n))
        distance, predecessors = shortest_path(graph, directed=False, unweighted=True, return_predecessors=True)
        self.hops = distance  # (N, N) float hop counts, inf when disconnected
        self.predecessors = predecessors  # [c, i]: node before i on the path from c, i.e. i's next hop toward c
        self.key_bits = qds_key_bits_per_member_pair(config.committee_size, config.committee_faulty, config.hash_bits)
        self.reset()

    def set_byzantine(self, byzantine: np.ndarray) -> None:
        """Mark the nodes that misbehave when elected, besides the configured ``byzantine_members``.

        Args:
            byzantine: The environment's Byzantine nodes. ``(N,)`` bool.
        """
        mask = np.asarray(byzantine, dtype=bool)
        if mask.shape != (self.num_nodes,):
            raise ConfigError(f"byzantine: expected a bool array of shape ({self.num_nodes},)")
        self.byzantine = mask.copy()
        self.byzantine[list(self.config.byzantine_members)] = True

    # ----------------------------------------------------------------------------------------------- state
    def reset(self) -> None:
        """Start a new episode: equal stakes, empty ledger, nothing committed."""
        self.stakes = np.full(self.num_nodes, float(self.config.initial_stake))
        self.ledger = Ledger()
        self.active = np.ones(self.num_nodes, dtype=bool)
        self.committed_params: torch.Tensor | None = None
        self.previous_direction: torch.Tensor | None = None
        self.last_round: QBARoundDetails | None = None

    @property
    def trust(self) -> np.ndarray:
        """Stakes normalised to the largest, ``s / max(s)`` in (0, 1]. ``(N,)``."""
        return self.stakes / self.stakes.max()

    def committee(self) -> Committee:
        """The committee of the coming round (Alg. 1) from the ledger's head hash and the current stakes."""
        return select_committee(self.ledger.head_hash, self.stakes, self.config.committee_size)

    # ------------------------------------------------------------------------------------------- routing
    def upload_routes(self, members: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each non-member's route to its nearest committee member.

        Args:
            members: Committee node ids in draw order (ties in distance go to the earlier one).

        Returns:
            ``(sources (S,), targets (S,), links (S, H))``: uploading nodes (ascending id), their committee member,
            and the link ids of each route hop by hop, padded with -1 (H = the longest route, in hops). Nodes with
            no path to any member are left out.
        """
        committee = np.asarray(members, dtype=np.int64)
        is_member = np.zeros(self.num_nodes, dtype=bool)
        is_member[committee] = True
        distance = self.hops[committee]  # (C, N)
        nearest = np.argmin(distance, axis=0)  # first minimum: earlier in the draw order
        reachable = np.isfinite(distance.min(axis=0))
        sources = np.flatnonzero(~is_member & reachable)
        targets = committee[nearest[sources]]
        length = int(distance.min(axis=0)[sources].max()) if sources.size else 0
        links = np.full((sources.size, length), -1, dtype=np.int64)
        position = sources.copy()
        for hop in range(length):  # loop over hops, vectorised over the routes
            moving = position != targets
            following = self.predecessors[targets[moving], position[moving]]
            links[moving, hop] = self.edge_index[position[moving], following]
            position[moving] = following
        return sources, targets, links

    def key_paths(self, members: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Member pairs that need key material, their end-to-end pair count, and their paths' links.

        Returns:
            ``(pair_positions (K, 2), pairs_needed (K,), links (K, H))``: committee positions ``a < b`` with key
            bits, ``ceil(K_ab / key_bits_per_pair)`` end-to-end pairs, and the link ids of the shortest a-b path
            padded with -1 (a row of all -1 with ``pairs_needed > 0`` marks an unreachable pair).
        """
        committee = np.asarray(members, dtype=np.int64)
        first, second = np.nonzero(np.triu(self.key_bits, k=1))
        pair_positions = np.stack([first, second], axis=1)
        needed = np.ceil(self.key_bits[first, second] / self.config.key_bits_per_pair - 1e-9).astype(np.int64)
        a, b = committee[first], committee[second]
        distance = self.hops[a, b]
        finite = np.isfinite(distance)
        length = int(distance[finite].max()) if finite.any() else 0
        links = np.full((first.size, length), -1, dtype=np.int64)
        position = np.where(finite, a, b)
        for hop in range(length):
            moving = position != b
            following = self.predecessors[b[moving], position[moving]]
            links[moving, hop] = self.edge_index[position[moving], following]
            position[moving] = following
        return pair_positions, needed, links

    def _key_pairs_per_edge(self, needed: np.ndarray, links: np.ndarray) -> np.ndarray:
        counts = np.zeros(self.edges.shape[0], dtype=np.int64)
        valid = links >= 0
        np.add.at(counts, links[valid], np.broadcast_to(needed[:, None], links.shape)[valid])
        return counts

    # -------------------------------------------------------------------------------------------- demand
    def checkpoint_due(self, round_index: int) -> bool:
        """Every round is a block attempt (a checkpoint), whatever ``round_index``."""
        del round_index
        return True

    def expected_demand(self, edges: np.ndarray, round_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Pairs per link the coming round requests: uploads plus QDS key material, deadline 1 round.

        Args:
            edges: The protocol's links, ``(E, 2)`` (must match the edges it was built with).
            round_index: The coming round (0-based); the committee depends on the ledger and stakes, not on it.

        Returns:
            ``(pairs, deadline)``: ``(E,)`` float pairs and ``(E,)`` int deadline, 1 round.
        """
        edges = check_edges(edges, self.num_nodes)
        if not np.array_equal(edges, self.edges):
            raise ConfigError("edges: must be the edges the protocol was built with")
        check_int("round_index", round_index, 0)
        members = self.committee().members
        _, _, routes = self.upload_routes(members)
        upload = np.bincount(routes[routes >= 0], minlength=edges.shape[0]) * self.config.pairs_per_exchange
        _, needed, key_links = self.key_paths(members)
        pairs = (upload + self._key_pairs_per_edge(needed, key_links)).astype(np.float64)
        return pairs, np.ones(edges.shape[0], dtype=np.int64)

    def max_demand(self) -> float:
        """An upper bound on any round's per-link demand (pairs), for sizing observation spaces.

        Every upload route crosses a link at most once and each member pair's key path too, so no link is asked
        for more than ``(N - N_c) * pairs_per_exchange + sum_{a<b} ceil(K_ab / key_bits_per_pair)`` pairs. The
        committee (and so the exact demand) changes from round to round, which is why round 0's demand is no bound.
        """
        _, needed, _ = self.key_paths(tuple(range(self.config.committee_size)))
        uploads = (self.num_nodes - self.config.committee_size) * self.config.pairs_per_exchange
        return float(uploads + int(needed.sum()))

    # -------------------------------------------------------------------------------------------- serving
    def _serve_single(self, provider: PairProvider, links: np.ndarray, rank: np.ndarray, amount: int) -> _Served:
        """Request one exchange of ``amount`` pairs per entry, one call per rank (entries of a rank: distinct)."""
        granted = np.zeros(links.size, dtype=bool)
        fidelity = np.full(links.size, math.nan)
        for level in range(int(rank.max()) + 1 if rank.size else 0):
            entries = np.flatnonzero(rank == level)
            answer, mean_fidelity = provider.request(links[entries], amount)
            granted[entries] = np.asarray(answer, dtype=bool)
            fidelity[entries] = np.where(granted[entries], np.asarray(mean_fidelity, dtype=np.float64), math.nan)
        return _Served(granted, fidelity, int(links.size))

    @staticmethod
    def _rank_within(links: np.ndarray) -> np.ndarray:
        """Position of each entry among the earlier entries with the same link (0 for the first)."""
        order = np.argsort(links, kind="stable")
        sorted_links = links[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_links)) + 1]
        group_start = np.repeat(starts, np.diff(np.r_[starts, sorted_links.size]))
        rank = np.empty(links.size, dtype=np.int64)
        rank[order] = np.arange(links.size) - group_start
        return rank

    def _upload(
        self, provider: PairProvider, members: tuple[int, ...]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[np.ndarray], int, int]:
        """Move every update hop by hop; return arrivals, fidelity, receivers, pairs per edge and exchange stats."""
        n = self.num_nodes
        sources, targets, routes = self.upload_routes(members)
        amount = self.config.pairs_per_exchange
        alive = np.ones(sources.size, dtype=bool)
        werner = np.ones(sources.size)
        pairs_per_edge = np.zeros(self.edges.shape[0], dtype=np.int64)
        fidelities: list[np.ndarray] = []
        attempted = granted_count = 0
        for hop in range(routes.shape[1]):
            travelling = np.flatnonzero(alive & (routes[:, hop] >= 0))
            if travelling.size == 0:
                continue
            links = routes[travelling, hop]
            served = self._serve_single(provider, links, self._rank_within(links), amount)
            attempted += served.attempted
            granted_count += int(served.granted.sum())
            np.add.at(pairs_per_edge, links[served.granted], amount)
            fidelities.append(served.fidelity[served.granted])
            alive[travelling[~served.granted]] = False
            werner[travelling[served.granted]] *= (4.0 * served.fidelity[served.granted] - 1.0) / 3.0
        arrived = np.zeros(n, dtype=bool)
        arrived[list(members)] = True
        arrived[sources[alive]] = True
        arrival_fidelity = np.full(n, math.nan)
        arrival_fidelity[list(members)] = 1.0
        arrival_fidelity[sources[alive]] = (1.0 + 3.0 * werner[alive]) / 4.0
        receiver = np.full(n, -1, dtype=np.int64)
        receiver[sources[alive]] = targets[alive]
        return arrived, arrival_fidelity, receiver, pairs_per_edge, fidelities, attempted, granted_count

    def _request_keys(
        self, provider: PairProvider, members: tuple[int, ...]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int]:
        """Request the key links; return starved positions, pairs per edge, keyed bits and exchange stats."""
        positions, needed, links = self.key_paths(members)
        per_edge = self._key_pairs_per_edge(needed, links)
        wanted = np.flatnonzero(per_edge > 0)
        link_granted = np.ones(self.edges.shape[0], dtype=bool)
        fidelity = np.zeros(0)
        granted_count = 0
        for amount in np.unique(per_edge[wanted]):  # one call per distinct pair count
            ids = wanted[per_edge[wanted] == amount]
            answer, mean_fidelity = provider.request(ids, int(amount))
            answer = np.asarray(answer, dtype=bool)
            link_granted[ids] = answer
            granted_count += int(answer.sum())
            fidelity = np.r_[fidelity, np.asarray(mean_fidelity, dtype=np.float64)[answer]]
        consumed = np.where(link_granted, per_edge, 0)
        reachable = (links >= 0).any(axis=1) | (needed == 0)
        path_ok = reachable & np.all(np.where(links >= 0, link_granted[np.maximum(links, 0)], True), axis=1)
        starved = np.zeros(len(members), dtype=bool)
        starved[positions[~path_ok].ravel()] = True
        keyed_bits = int(self.key_bits[positions[path_ok, 0], positions[path_ok, 1]].sum())
        return starved, consumed, fidelity, int(wanted.size), granted_count, keyed_bits

    # ---------------------------------------------------------------------------------------------- round
    def run_round(
        self,
        params: torch.Tensor,
        stamps: np.ndarray | torch.Tensor | None,
        predict: Predict | None,
        pair_provider: PairProvider,
        round_index: int,
        rng: np.random.Generator,
        *,
        perturb: Perturb | None = None,
        authenticated: np.ndarray | None = None,
    ) -> ConsensusRoundResult:
        """Run one committee round (see the module docstring for the steps).

        Args:
            params: Submitted parameters per node. ``(N, P)`` float tensor.
            stamps: Ignored (the score rule weighs by stake); accepted for the common interface.
            predict: Optional probe-set predictor ``(K, P) -> (K, S)``, used only to report divergence.
            pair_provider: Serves the upload hops and the QDS key links.
            round_index: This round (0-based); must exceed the last committed block's round.
            rng: The round's generator (QDS key bits and the ``random`` Byzantine behaviour).
            perturb: Optional transport-noise hook applied to updates that travelled at least one hop.
            authenticated: Ignored; accepted for the common interface.

        Returns:
            The :class:`~ceas_gym.consensus.protocol.ConsensusRoundResult`.
        """
        del stamps, authenticated
        n = self.num_nodes
        config = self.config
        check_params(params, n)
        check_int("round_index", round_index, 0)
        if not isinstance(rng, np.random.Generator):
            raise ConfigError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
        submitted = params.detach()
        committee = self.committee()
        members = committee.members

        arrived, arrival_fidelity, receiver, upload_pairs, fidelities, attempted, granted = self._upload(
            pair_provider, members
        )
        reference = (
            self.committed_params.to(submitted) if self.committed_params is not None else torch.zeros_like(submitted[0])
        )
        arrived_ids = np.flatnonzero(arrived)
        key_pairs = np.zeros(self.edges.shape[0], dtype=np.int64)
        aggregation: AggregationResult | None = None
        qba_result: QBAResult | None = None
        starved_members: tuple[int, ...] = ()
        signers: tuple[int, ...] = ()
        committed = False
        selected = np.zeros(n, dtype=bool)
        consensus = submitted.mean(dim=0) if self.committed_params is None else self.committed_params.clone()
        if arrived_ids.size >= 3:
            updates = submitted[torch.as_tensor(arrived_ids)].clone()
            travelled = np.flatnonzero(~np.isin(arrived_ids, members))
            if perturb is not None and travelled.size:
                rows = torch.as_tensor(travelled)
                fidelity = torch.as_tensor(arrival_fidelity[arrived_ids[travelled]], dtype=submitted.dtype)
                updates[rows] = perturb(updates[rows], fidelity)
            context = AggregationContext(
                num_faulty=min(config.update_faulty, arrived_ids.size - 3),
                previous_direction=self.previous_direction,
                stakes=torch.as_tensor(self.stakes[arrived_ids], dtype=submitted.dtype),
            )
            aggregation = score_rule(updates - reference, None, context)
            aggregate_params = reference + aggregation.aggregate
            selected[arrived_ids[aggregation.selected.cpu().numpy()]] = True
            participants = tuple(int(i) for i in np.flatnonzero(selected))
            digest = model_hash(aggregate_params)
            message = hashlib.sha256(f"{digest}|{participants}".encode()).hexdigest()

            starved, key_pairs, key_fidelity, key_attempted, key_granted, keyed = self._request_keys(
                pair_provider, members
            )
            attempted += key_attempted
            granted += key_granted
            fidelities.append(key_fidelity)
            byzantine = self.byzantine[list(members)]
            strategies = {int(p): config.byzantine_strategy for p in np.flatnonzero(byzantine)}
            strategies.update({int(p): "silent" for p in np.flatnonzero(starved & ~byzantine)})
            source = PairBackedKeySource(rng, keyed, int(key_pairs.sum()))
            qba_result = run_qba(
                len(members),
                config.committee_faulty,
                message,
                faulty=tuple(strategies),
                strategy=strategies,
                rng=rng,
                key_source=source,
                hash_bits=config.hash_bits,
                allow_excess_faulty=True,  # an election can seat more Byzantine or starved members than f
            )
            starved_members = tuple(int(members[p]) for p in np.flatnonzero(starved))
            leader_signs = not byzantine[0] and not starved[0]
            signing = [members[p] for p, value in qba_result.decisions.items() if value == message]
            if leader_signs and not qba_result.leader_faulty_detected:
                signing.insert(0, members[0])
            signers = tuple(int(m) for m in signing)
            committed = 2 * len(signers) > len(members)
            detected = {int(members[p]) for p in qba_result.detected_forgers}
            if qba_result.leader_faulty_detected:
                detected.add(int(members[0]))
            excluded = arrived & ~selected
            self.stakes = update_stakes(
                self.stakes,
                block_accepted=committed,
                contributors=participants,
                committee=members,
                detected_malicious=sorted(detected),
                reward=config.stake_reward,
                penalty=config.stake_penalty,
                minimum_stake=config.minimum_stake,
            )
            if committed:
                if config.exclusion_penalty > 0:
                    self.stakes = np.maximum(self.stakes - config.exclusion_penalty * excluded, config.minimum_stake)
                self.ledger.append(
                    round_index,
                    digest,
                    participants,
                    member_signatures(signers, message),
                    round_index,
                    self.stakes.tolist(),
                    head_signer=lambda text: member_signatures(signers, text),
                )
                if self.committed_params is not None:
                    self.previous_direction = (aggregate_params - self.committed_params.to(submitted)).clone()
                self.committed_params = aggregate_params.clone()
                consensus = aggregate_params
        else:
            self.stakes = update_stakes(
                self.stakes,
                block_accepted=False,
                contributors=(),
                committee=members,
                reward=config.stake_reward,
                penalty=config.stake_penalty,
                minimum_stake=config.minimum_stake,
            )

        new_params = consensus.unsqueeze(0).expand(n, -1).clone() if committed else submitted.clone()
        received_fidelity = np.full(n, math.nan)
        travelled_nodes = receiver >= 0
        if travelled_nodes.any():
            sums = np.bincount(receiver[travelled_nodes], arrival_fidelity[travelled_nodes], minlength=n)
            counts = np.bincount(receiver[travelled_nodes], minlength=n)
            received_fidelity = np.where(counts > 0, sums / np.maximum(counts, 1), math.nan)
        divergence = np.full(n, math.nan)
        if predict is not None:
            predictions = probe_predictions(predict, torch.cat([submitted, consensus.unsqueeze(0)]))
            divergence = bernoulli_kl(predictions[n], predictions[:n], config.probability_clip).cpu().numpy()
        delivered = np.concatenate(fidelities) if fidelities else np.zeros(0)
        pairs_per_edge = upload_pairs + key_pairs
        self.last_round = QBARoundDetails(
            committee=committee,
            arrived=arrived,
            arrival_fidelity=arrival_fidelity,
            aggregation=aggregation,
            reference=reference,
            key_starved=starved_members,
            qba=qba_result,
            signatures=signers,
            upload_pairs_per_edge=upload_pairs,
            key_pairs_per_edge=key_pairs,
        )
        return ConsensusRoundResult(
            params=new_params,
            consensus_params=consensus,
            active=self.active.copy(),
            quarantined=(arrived & ~selected) if committed else np.zeros(n, dtype=bool),
            readmitted=np.zeros(n, dtype=bool),
            participants=selected,
            checkpoint=True,
            committed=committed,
            exchanges_attempted=attempted,
            exchanges_granted=granted,
            pairs_consumed=int(pairs_per_edge.sum()),
            pairs_per_edge=pairs_per_edge,
            mean_delivered_fidelity=float(delivered.mean()) if delivered.size else math.nan,
            received_fidelity=received_fidelity,
            divergence=divergence,
            trust=self.trust.copy(),
        )
