"""The committee protocol ``qba`` batched over E copies.

The steps of :meth:`~ceas_gym.consensus.qba_protocol.QBAProtocol.run_round` (its module docstring gives them) for E
copies at once, each copy with its own :class:`QBAProtocol` object holding its stakes, ledger and committed model:

1. every copy's committee (each object's election, kept per head hash and stakes) and its routes (one table of
   routes per network, shared by the copies);
2. the uploads of all copies hop by hop, each hop step's requests to the union's inventory in shared calls
   (:func:`~ceas_gym.consensus.committee_transport.upload_updates_many`);
3. the transport noise of every travelled update in one call, each copy's noise from its own stream, and the score
   rule over every copy with at least 3 arrived updates as one masked computation
   (:func:`~ceas_gym.learning.score_batched.score_rule_masked`);
4. the key links of those copies in shared calls
   (:func:`~ceas_gym.consensus.committee_transport.request_keys_many`);
5. per copy, the agreement (the QBA's messages, from the copy's stream), the stakes and the ledger block
   (:meth:`QBAProtocol.agree`, its stake and block steps): hashing and the QBA's message passing are per copy;
6. the new parameters, the pair accounting and the fidelities of all copies as arrays.

``tests/test_round_consensus.py`` holds it against ``QBAProtocol.run_round`` per copy.
"""

from __future__ import annotations

import copy as copying
import hashlib

import numpy as np
import torch

from ceas_gym.consensus.committee import Committee
from ceas_gym.consensus.committee_transport import (
    KeyGrant,
    KeyGrants,
    Upload,
    Uploads,
    request_keys_many,
    upload_updates_many,
)
from ceas_gym.consensus.qba_keys import model_hash
from ceas_gym.consensus.qba_outcome import Agreement, QBARoundDetails
from ceas_gym.consensus.qba_protocol import QBAProtocol
from ceas_gym.envs.round_consensus import ConsensusOutcome, RoundInputs, UnionLayout
from ceas_gym.learning.aggregators import AggregationResult
from ceas_gym.learning.score_batched import score_rule_masked

__all__ = ["CommitteeConsensus"]


class CommitteeConsensus(UnionLayout):
    """``qba`` over E copies (see the module docstring).

    Args:
        protocol: Copy 0's :class:`QBAProtocol`; the other copies get fresh objects built alike, sharing its routes.
        union_edges: The links of the E copies' union, copy after copy. ``(E x L, 2)``.
        copies: Number of copies E.
    """

    def __init__(self, protocol: QBAProtocol, union_edges: np.ndarray, copies: int) -> None:
        super().__init__(protocol.num_nodes, union_edges, copies)
        self.protocols = [protocol]
        for _ in range(copies - 1):
            other = copying.deepcopy(protocol)
            other.share_routes(protocol)
            other.reset()
            self.protocols.append(other)
        self.config = protocol.config
        self.routing = protocol.routing

    @property
    def active(self) -> np.ndarray:
        """Active nodes per copy (the committee protocol bars nobody). ``(E, N)`` bool."""
        return np.stack([protocol.active for protocol in self.protocols])

    @property
    def trust(self) -> np.ndarray:
        """Stakes over the largest stake, per copy. ``(E, N)``."""
        stakes = np.stack([protocol.stakes for protocol in self.protocols])
        return stakes / stakes.max(axis=1, keepdims=True)

    def reset(self, copies: np.ndarray) -> None:
        """Equal stakes, an empty ledger and nothing committed in the listed copies."""
        for index in copies:
            self.protocols[index].reset()

    def demand(self, round_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each copy's uploads plus key material of its coming committee, due within 1 round. ``(E, L)`` each."""
        del round_index  # the committee depends on the ledger and the stakes only
        rows = [protocol.committee_demand(protocol.committee().members) for protocol in self.protocols]
        return np.stack(rows), np.ones((self.copies, self.num_links), dtype=np.int64)

    def max_demand(self) -> float:
        """The protocol's bound on any round's per-link demand (pairs)."""
        return self.protocols[0].max_demand()

    def checkpoint_next(self, round_index: np.ndarray) -> np.ndarray:
        """Every round is a block attempt."""
        return np.ones(np.shape(round_index), dtype=bool)

    def run(self, inputs: RoundInputs) -> ConsensusOutcome:
        """Elect, upload, score, agree and commit in every copy (see the module docstring)."""
        e, n, num_links = self.copies, self.num_nodes, self.num_links
        config, protocols = self.config, self.protocols
        submitted = inputs.submitted.detach()
        stacked = submitted.view(e, n, -1)
        committees = [protocol.committee() for protocol in protocols]
        members = [committee.members for committee in committees]
        routes = [protocol.upload_routes(group) for protocol, group in zip(protocols, members, strict=True)]
        uploads = upload_updates_many(inputs.provider, self.routing, members, routes, config.pairs_per_exchange)
        arrived = uploads.arrived
        scoring = np.flatnonzero(arrived.sum(axis=1) >= 3)
        is_member = np.zeros((e, n), dtype=bool)
        is_member[np.repeat(np.arange(e), [len(group) for group in members]), np.concatenate(members)] = True
        reference, previous, has_previous = self._references(stacked)
        consensus = torch.stack(
            [
                stacked[index].mean(dim=0) if protocol.committed_params is None else protocol.committed_params.clone()
                for index, protocol in enumerate(protocols)
            ]
        )
        received = self._received(stacked, uploads.arrival_fidelity, arrived & ~is_member, scoring, inputs)
        paths = [protocols[index].key_paths(members[index]) for index in scoring]
        keys = request_keys_many(inputs.provider, self.routing, paths, protocols[0].key_bits, scoring, e)
        committed = np.zeros(e, dtype=bool)
        if scoring.size:
            rows = torch.as_tensor(scoring, device=submitted.device)
            present = torch.as_tensor(arrived[scoring], device=submitted.device)
            counts = present.sum(dim=1)
            faulty = torch.clamp(counts - 3, max=config.update_faulty)
            stakes = torch.as_tensor(np.stack([protocols[i].stakes for i in scoring]), dtype=submitted.dtype)
            scores = score_rule_masked(
                received[rows] - reference[rows][:, None, :],
                present,
                faulty,
                previous[rows],
                torch.as_tensor(has_previous[scoring], device=submitted.device),
                stakes.to(submitted.device),
            )
            aggregate_params = reference[rows] + scores.aggregate
            selected_rows = scores.selected.cpu().numpy()
            for position, index in enumerate(scoring):  # hashes and the QBA's messages: per copy
                agreement = self._agree_and_commit(
                    index,
                    members[index],
                    arrived[index],
                    selected_rows[position],
                    aggregate_params[position],
                    keys.copy(index),
                    inputs,
                )
                if agreement.committed:
                    committed[index] = True
                    consensus[index] = aggregate_params[position]
                protocols[index].last_round = self._details(
                    committees[index], uploads.copy(index), reference[index], agreement,
                    scores.aggregate[position], scores.scores[position], selected_rows[position],
                )  # fmt: skip
        for index in np.setdiff1d(np.arange(e), scoring):
            agreement = Agreement.none(num_links)
            protocols[index]._settle_stakes(members[index], (), agreement, excluded=np.zeros(n, dtype=bool))
            protocols[index].last_round = self._details(
                committees[index], uploads.copy(index), reference[index], agreement, None, None, None
            )
        return self._outcome(stacked, consensus, uploads, keys, committed)

    # ---------------------------------------------------------------------------------------------- steps
    def _references(self, stacked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Each copy's last committed model (zeros before the first) and previous global update. ``(E, P)`` each."""
        zeros = torch.zeros_like(stacked[:, 0])
        reference, previous = zeros.clone(), zeros.clone()
        has_previous = np.zeros(self.copies, dtype=bool)
        for index, protocol in enumerate(self.protocols):
            if protocol.committed_params is not None:
                reference[index] = protocol.committed_params.to(stacked)
            if protocol.previous_direction is not None:
                previous[index] = protocol.previous_direction.to(stacked)
                has_previous[index] = True
        return reference, previous, has_previous

    def _received(
        self,
        stacked: torch.Tensor,
        arrival_fidelity: np.ndarray,
        travelled: np.ndarray,
        scoring: np.ndarray,
        inputs: RoundInputs,
    ) -> torch.Tensor:
        """The updates as the committee holds them: transport noise on those that travelled, in scoring copies."""
        received = stacked.clone()
        eligible = np.zeros(self.copies, dtype=bool)
        eligible[scoring] = True
        rows = np.flatnonzero((travelled & eligible[:, None]).ravel())
        if inputs.transport is not None and rows.size:
            flat = received.view(-1, received.shape[-1])
            index = torch.as_tensor(rows, device=flat.device)
            fidelity = torch.as_tensor(arrival_fidelity.ravel()[rows], dtype=flat.dtype, device=flat.device)
            flat[index] = inputs.transport(rows // self.num_nodes)(flat[index], fidelity)
        return received

    def _agree_and_commit(
        self,
        index: int,
        members: tuple[int, ...],
        arrived: np.ndarray,
        selected: np.ndarray,
        aggregate_params: torch.Tensor,
        keys: KeyGrant,
        inputs: RoundInputs,
    ) -> Agreement:
        """Copy ``index``'s steps 4-7 once its aggregate is known: the QBA, the stakes and the block."""
        protocol = self.protocols[index]
        participants = tuple(int(i) for i in np.flatnonzero(selected))
        digest = model_hash(aggregate_params)
        message = hashlib.sha256(f"{digest}|{participants}".encode()).hexdigest()
        agreement = protocol.agree(keys, members, message, inputs.streams.np_random(index))
        protocol._settle_stakes(members, participants, agreement, excluded=arrived & ~selected)
        if agreement.committed:
            round_index = int(inputs.round_index[index])
            protocol._commit_block(round_index, digest, participants, message, agreement.signers, aggregate_params)
        return agreement

    @staticmethod
    def _details(
        committee: Committee,
        upload: Upload,
        reference: torch.Tensor,
        agreement: Agreement,
        aggregate: torch.Tensor | None,
        scores: torch.Tensor | None,
        selected: np.ndarray | None,
    ) -> QBARoundDetails:
        """What :attr:`QBAProtocol.last_round` reports for one copy (the aggregation indexes the arrived nodes)."""
        aggregation = None
        if aggregate is not None and scores is not None and selected is not None:
            arrived_ids = np.flatnonzero(upload.arrived)
            kept = torch.as_tensor(np.flatnonzero(selected[arrived_ids]), dtype=torch.int64)
            aggregation = AggregationResult(aggregate, scores[torch.as_tensor(arrived_ids)], kept)
        return QBARoundDetails(
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

    def _outcome(
        self, stacked: torch.Tensor, consensus: torch.Tensor, uploads: Uploads, keys: KeyGrants, committed: np.ndarray
    ) -> ConsensusOutcome:
        """New parameters (the committed model reaches the arrived nodes), pair accounting and fidelities."""
        e, n = self.copies, self.num_nodes
        reached = torch.as_tensor(uploads.arrived & committed[:, None], device=stacked.device)[:, :, None]
        params = torch.where(reached, consensus[:, None, :], stacked).reshape(e * n, -1)
        receiver = uploads.receiver
        travelled = receiver >= 0
        copy_of = np.broadcast_to(np.arange(e)[:, None], (e, n))
        slot = (copy_of * n + receiver)[travelled]
        sums = np.bincount(slot, uploads.arrival_fidelity[travelled], minlength=e * n)
        counts = np.bincount(slot, minlength=e * n)
        with np.errstate(invalid="ignore", divide="ignore"):
            received_fidelity = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        granted = uploads.granted + keys.granted
        fidelity_sum = uploads.fidelity_sum + keys.fidelity_sum
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_fidelity = np.where(granted > 0, fidelity_sum / np.maximum(granted, 1), np.nan)
        return ConsensusOutcome(
            params=params,
            consensus=consensus,
            received_fidelity=received_fidelity,
            pairs_per_edge=(uploads.pairs_per_edge + keys.pairs_per_edge).ravel(),
            attempted=uploads.attempted + keys.attempted,
            granted=granted,
            mean_delivered_fidelity=mean_fidelity,
            checkpoint=np.ones(e, dtype=bool),
            committed=committed,
        )
