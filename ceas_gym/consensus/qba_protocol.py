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
   sign as they signed the block (:func:`member_signatures`). ``theta_bar`` reaches a node only over pairs: the
   committee members and every node whose update arrived (the upload route carries both directions, as a gossip
   exchange does) adopt it; the other nodes keep their own parameters. Without a commit every node keeps its own
   parameters and the reported consensus model is the last committed one (the plain mean of the submitted
   parameters before any, a diagnostic no node holds).

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
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ceas_gym.config import ConfigError, check_int
from ceas_gym.consensus.committee import Committee, select_committee, update_stakes
from ceas_gym.consensus.committee_routing import ROUTE_CACHE_SIZE, CommitteeRouting
from ceas_gym.consensus.committee_transport import KeyGrant, Upload, request_keys_many, upload_updates_many
from ceas_gym.consensus.gossip import Perturb, check_edges
from ceas_gym.consensus.ledger import Ledger
from ceas_gym.consensus.pairs import PairProvider
from ceas_gym.consensus.protocol import (
    ConsensusRoundResult,
    Predict,
    check_round_inputs,
    load_config,
)
from ceas_gym.consensus.qba import run_qba
from ceas_gym.consensus.qba_config import QBAConfig
from ceas_gym.consensus.qba_keys import (
    PairBackedKeySource,
    member_signatures,
    model_hash,
    qds_key_bits_per_member_pair,
)
from ceas_gym.consensus.qba_outcome import Agreement, QBARoundDetails, round_result
from ceas_gym.learning.aggregators import AggregationContext, AggregationResult, score_rule

__all__ = [
    "PairBackedKeySource",
    "QBAConfig",
    "QBAProtocol",
    "QBARoundDetails",
    "member_signatures",
    "model_hash",
    "qds_key_bits_per_member_pair",
]


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
    predict_reports_only = True
    """``predict`` only fills the result's ``divergence`` report (a round that skips it runs the same)."""
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
        self.routing = CommitteeRouting(num_nodes, self.edges)
        self.key_bits = qds_key_bits_per_member_pair(config.committee_size, config.committee_faulty, config.hash_bits)
        self._elected: tuple[tuple[str, bytes], Committee] | None = None
        self._demand: dict[tuple[int, ...], np.ndarray] = {}
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
        """The committee of the coming round (Alg. 1) from the ledger's head hash and the current stakes.

        The election is a function of the head hash and the stakes, so it is computed once per pair of them (the
        demand forecast and the round both ask for it).
        """
        key = (self.ledger.head_hash, self.stakes.tobytes())
        if self._elected is None or self._elected[0] != key:
            self._elected = (key, select_committee(self.ledger.head_hash, self.stakes, self.config.committee_size))
        return self._elected[1]

    # ------------------------------------------------------------------------------------------- routing
    def upload_routes(self, members: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each non-member's route to its nearest committee member (see :meth:`CommitteeRouting.upload_routes`)."""
        return self.routing.upload_routes(members)

    def key_paths(self, members: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Member pairs that need key material, their end-to-end pair count, and their paths' links.

        Returns:
            ``(pair_positions (K, 2), pairs_needed (K,), links (K, H))``, see :meth:`CommitteeRouting.key_paths`.
        """
        return self.routing.key_paths(members, self.key_bits, self.config.key_bits_per_pair)

    def share_routes(self, other: QBAProtocol) -> None:
        """Use ``other``'s routing and its table of routes (same network and configuration: the same routes)."""
        if not (np.array_equal(other.edges, self.edges) and other.config == self.config):
            raise ConfigError("share_routes: the protocols differ in their network or configuration")
        self.routing = other.routing
        self._demand = other._demand

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
        return self.committee_demand(self.committee().members).copy(), np.ones(edges.shape[0], dtype=np.int64)

    def committee_demand(self, members: tuple[int, ...]) -> np.ndarray:
        """Pairs per link a round with committee ``members`` requests when its updates arrive. ``(E,)`` float.

        Kept per committee (read-only): the routes of a fixed network do not change.
        """
        demand = self._demand.get(members)
        if demand is None:
            _, _, routes = self.upload_routes(members)
            upload = np.bincount(routes[routes >= 0], minlength=self.edges.shape[0]) * self.config.pairs_per_exchange
            _, needed, key_links = self.key_paths(members)
            demand = (upload + self.routing.pairs_per_link(needed, key_links)).astype(np.float64)
            demand.flags.writeable = False
            if len(self._demand) >= ROUTE_CACHE_SIZE:
                self._demand.clear()
            self._demand[members] = demand
        return demand

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
    def _upload(self, provider: PairProvider, members: tuple[int, ...]) -> Upload:
        """Step 2: move every update hop by hop to its committee member (see :func:`upload_updates_many`)."""
        amount = self.config.pairs_per_exchange
        return upload_updates_many(provider, self.routing, [members], [self.upload_routes(members)], amount).copy(0)

    def _request_keys(self, provider: PairProvider, members: tuple[int, ...]) -> KeyGrant:
        """Step 4's key material: request the key links (see :func:`request_keys_many`)."""
        one = np.zeros(1, dtype=np.int64)
        return request_keys_many(provider, self.routing, [self.key_paths(members)], self.key_bits, one, 1).copy(0)

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
        check_round_inputs(params, n, round_index, rng)
        submitted = params.detach()
        committee = self.committee()
        members = committee.members
        upload = self._upload(pair_provider, members)
        reference = (
            self.committed_params.to(submitted) if self.committed_params is not None else torch.zeros_like(submitted[0])
        )
        arrived_ids = np.flatnonzero(upload.arrived)
        consensus = submitted.mean(dim=0) if self.committed_params is None else self.committed_params.clone()
        aggregation: AggregationResult | None = None
        agreement = Agreement.none(self.edges.shape[0])
        selected = np.zeros(n, dtype=bool)
        if arrived_ids.size >= 3:
            aggregation, aggregate_params = self._aggregate(submitted, reference, upload, members, perturb)
            selected[arrived_ids[aggregation.selected.cpu().numpy()]] = True
            participants = tuple(int(i) for i in np.flatnonzero(selected))
            digest = model_hash(aggregate_params)
            message = hashlib.sha256(f"{digest}|{participants}".encode()).hexdigest()
            agreement = self._agree(pair_provider, members, message, rng)
            self._settle_stakes(members, participants, agreement, excluded=upload.arrived & ~selected)
            if agreement.committed:
                self._commit_block(round_index, digest, participants, message, agreement.signers, aggregate_params)
                consensus = aggregate_params
        else:
            self._settle_stakes(members, (), agreement, excluded=np.zeros(n, dtype=bool))
        self.last_round = QBARoundDetails(
            committee=committee,
            arrived=upload.arrived,
            arrival_fidelity=upload.arrival_fidelity,
            aggregation=aggregation,
            reference=reference,
            key_starved=agreement.starved_members,
            qba=agreement.qba,
            signatures=agreement.signers,
            upload_pairs_per_edge=upload.pairs_per_edge,
            key_pairs_per_edge=agreement.key_pairs_per_edge,
        )
        return round_result(
            submitted, consensus, predict, upload, agreement, selected, self.active, self.trust, self.config
        )

    # ------------------------------------------------------------------------------------------- phases
    def _aggregate(
        self,
        submitted: torch.Tensor,
        reference: torch.Tensor,
        upload: Upload,
        members: tuple[int, ...],
        perturb: Perturb | None,
    ) -> tuple[AggregationResult, torch.Tensor]:
        """Step 3: the score rule over the arrived updates (transport noise on those that travelled)."""
        arrived_ids = np.flatnonzero(upload.arrived)
        updates = submitted[torch.as_tensor(arrived_ids)].clone()
        travelled = np.flatnonzero(~np.isin(arrived_ids, members))
        if perturb is not None and travelled.size:
            rows = torch.as_tensor(travelled)
            fidelity = torch.as_tensor(upload.arrival_fidelity[arrived_ids[travelled]], dtype=submitted.dtype)
            updates[rows] = perturb(updates[rows], fidelity)
        context = AggregationContext(
            num_faulty=min(self.config.update_faulty, arrived_ids.size - 3),
            previous_direction=self.previous_direction,
            stakes=torch.as_tensor(self.stakes[arrived_ids], dtype=submitted.dtype),
        )
        aggregation = score_rule(updates - reference, None, context)
        return aggregation, reference + aggregation.aggregate

    def _agree(
        self, pair_provider: PairProvider, members: tuple[int, ...], message: str, rng: np.random.Generator
    ) -> Agreement:
        """Steps 4-5: key material from the network, the QBA on ``message``, and the members' signatures."""
        return self.agree(self._request_keys(pair_provider, members), members, message, rng)

    def agree(self, keys: KeyGrant, members: tuple[int, ...], message: str, rng: np.random.Generator) -> Agreement:
        """Step 5 once the key material is known: the QBA on ``message`` and the members' signatures."""
        config = self.config
        starved, key_pairs = keys.starved, keys.pairs_per_edge
        byzantine = self.byzantine[list(members)]
        strategies = {int(p): config.byzantine_strategy for p in np.flatnonzero(byzantine)}
        strategies.update({int(p): "silent" for p in np.flatnonzero(starved & ~byzantine)})
        source = PairBackedKeySource(rng, keys.keyed_bits, int(key_pairs.sum()))
        result = run_qba(
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
        leader_signs = not byzantine[0] and not starved[0]
        signing = [members[p] for p, value in result.decisions.items() if value == message]
        if leader_signs and not result.leader_faulty_detected:
            signing.insert(0, members[0])
        signers = tuple(int(m) for m in signing)
        detected = {int(members[p]) for p in result.detected_forgers}
        if result.leader_faulty_detected:
            detected.add(int(members[0]))
        return Agreement(
            qba=result,
            committed=2 * len(signers) > len(members),
            signers=signers,
            detected=tuple(sorted(detected)),
            starved_members=tuple(int(members[p]) for p in np.flatnonzero(starved)),
            key_pairs_per_edge=key_pairs,
            key_fidelity_sum=keys.fidelity_sum,
            attempted=keys.attempted,
            granted=keys.granted,
        )

    def _settle_stakes(
        self, members: tuple[int, ...], participants: tuple[int, ...], agreement: Agreement, excluded: np.ndarray
    ) -> None:
        """Step 6: stake rewards and penalties of the round (Alg. 3 lines 17-23, plus the exclusion penalty)."""
        config = self.config
        self.stakes = update_stakes(
            self.stakes,
            block_accepted=agreement.committed,
            contributors=participants,
            committee=members,
            detected_malicious=agreement.detected,
            reward=config.stake_reward,
            penalty=config.stake_penalty,
            minimum_stake=config.minimum_stake,
        )
        if agreement.committed and config.exclusion_penalty > 0:
            self.stakes = np.maximum(self.stakes - config.exclusion_penalty * excluded, config.minimum_stake)

    def _commit_block(
        self,
        round_index: int,
        digest: str,
        participants: tuple[int, ...],
        message: str,
        signers: tuple[int, ...],
        aggregate_params: torch.Tensor,
    ) -> None:
        """Step 7: append the block (its head signed by the signers) and adopt the aggregate as committed."""
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
            self.previous_direction = (aggregate_params - self.committed_params.to(aggregate_params)).clone()
        self.committed_params = aggregate_params.clone()
