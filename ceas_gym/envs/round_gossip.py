"""The ``ceas`` protocol's consensus phase batched over E copies: gossip, consensus, trust and BFT checkpoints.

The same steps as :class:`~ceas_gym.consensus.ceas_protocol.CEASProtocol.run_round` (whose module docstring gives
the equations), for E copies at once:

* gossip runs over the union of the copies' graphs (its mixing and pair requests are per link and per node, so the
  copies do not mix), the transport noise of each mixing step drawn copy after copy;
* each copy's consensus model is the phi-weighted mean of its active nodes (one batched matmul);
* the divergences of every node and copy come from one batched probe prediction, and one
  :class:`~ceas_gym.consensus.bft.BatchedBFTMonitor` keeps every copy's rolling window, quorum and quarantine.

``tests/test_batched_env.py`` holds this phase against ``CEASProtocol.run_round``, an independent implementation.
"""

from __future__ import annotations

import numpy as np
import torch

from ceas_gym.consensus.bft import BatchedBFTMonitor, bernoulli_kl, is_checkpoint_round
from ceas_gym.consensus.ceas_protocol import CEASProtocol
from ceas_gym.consensus.gossip import gossip_round
from ceas_gym.consensus.protocol import weighted_consensus
from ceas_gym.consensus.trust import update_trust
from ceas_gym.envs.batched_rows import mean_per_copy
from ceas_gym.envs.round_consensus import ConsensusOutcome, RoundInputs, UnionLayout


class GossipCheckpointConsensus(UnionLayout):
    """``ceas`` over E copies (see the module docstring).

    Args:
        protocol: A :class:`CEASProtocol` (its configuration and mixing steps; its own state is not used).
        union_edges: The links of the E copies' union, copy after copy. ``(E x L, 2)``.
        copies: Number of copies E.
    """

    def __init__(self, protocol: CEASProtocol, union_edges: np.ndarray, copies: int) -> None:
        super().__init__(protocol.num_nodes, union_edges, copies)
        self.config = protocol.config
        self.mixing_steps = protocol.mixing_steps
        self.monitor = BatchedBFTMonitor(self.config.bft, self.num_nodes, copies)
        self.trust = np.full((copies, self.num_nodes), self.config.trust.initial)

    @property
    def active(self) -> np.ndarray:
        """Active (not quarantined) nodes per copy. ``(E, N)`` bool."""
        return self.monitor.active.copy()

    def reset(self, copies: np.ndarray) -> None:
        """All nodes of the listed copies active, trust at its initial value, empty windows."""
        self.trust[copies] = self.config.trust.initial
        self.monitor.reset(np.asarray(copies, dtype=np.intp))

    def demand(self, round_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``mixing_steps x pairs_per_exchange`` on every link between two active nodes, due this round."""
        del round_index
        active = self.monitor.active
        both = active[:, self.edges[:, 0]] & active[:, self.edges[:, 1]]
        pairs = np.where(both, float(self.mixing_steps * self.config.pairs_per_exchange), 0.0)
        return pairs, np.ones(pairs.shape, dtype=np.int64)

    def max_demand(self) -> float:
        """The demand of a link whose endpoints are both active."""
        return float(self.mixing_steps * self.config.pairs_per_exchange) if self.num_links else 0.0

    def checkpoint_next(self, round_index: np.ndarray) -> np.ndarray:
        """Every ``checkpoint_every``-th round ends with a checkpoint."""
        return np.asarray(is_checkpoint_round(round_index, self.config.bft.checkpoint_every), dtype=bool)

    def run(self, inputs: RoundInputs) -> ConsensusOutcome:
        """Gossip, consensus, divergence, trust and checkpoint of every copy."""
        e, n, links = self.copies, self.num_nodes, self.num_links
        submitted = inputs.submitted
        phi = inputs.stamps.to(device=submitted.device, dtype=submitted.dtype)  # as CEASProtocol sees them
        active_before = self.monitor.active.copy()
        transport = inputs.transport

        def perturb_for_step(granted_ids: np.ndarray):
            copy_of_message = np.concatenate([self.copy_of_link[granted_ids], self.copy_of_link[granted_ids]])
            return transport(copy_of_message)

        gossip = gossip_round(
            self.union_edges,
            submitted,
            phi,
            active_before.ravel(),
            inputs.provider,
            mixing_steps=self.mixing_steps,
            pairs_per_exchange=self.config.pairs_per_exchange,
            perturb_for_step=perturb_for_step if transport is not None else None,
        )
        consensus = weighted_consensus(gossip.params.reshape(e, n, -1), phi.reshape(e, n), active_before)
        params, checkpoint, committed, unitary = self._checkpoint(inputs, gossip, consensus, phi)
        granted = gossip.granted_per_edge.reshape(e, links).sum(1)
        fidelity_sum = gossip.fidelity_sum_per_edge.reshape(e, links).sum(1)
        return ConsensusOutcome(
            params=params,
            consensus=consensus,
            received_fidelity=np.asarray(gossip.received_fidelity, dtype=np.float64),
            pairs_per_edge=(gossip.granted_per_edge * self.config.pairs_per_exchange).astype(np.int64),
            attempted=gossip.attempted_per_edge.reshape(e, links).sum(1),
            granted=granted,
            mean_delivered_fidelity=mean_per_copy(fidelity_sum, granted),
            checkpoint=np.asarray(checkpoint, dtype=bool),
            committed=committed,
            consensus_unitary=unitary,
        )

    def _checkpoint(
        self, inputs: RoundInputs, gossip, consensus: torch.Tensor, phi: torch.Tensor
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray, torch.Tensor]:
        """Divergence, trust and each copy's BFT checkpoint (readmitted nodes keep the parameters they hold)."""
        e, n = self.copies, self.num_nodes
        config = self.config
        rows = torch.cat([inputs.submitted.reshape(e, n, -1), consensus[:, None, :]], dim=1)  # (E, N + 1, P)
        probabilities, stacked = inputs.probes.rows(rows.reshape(e * (n + 1), -1), n + 1)
        unitary = stacked.unflatten(0, (e, n + 1))[:, n]  # the test evaluation reuses it
        probabilities = probabilities.reshape(e, n + 1, -1).to(torch.float64)
        divergence = bernoulli_kl(probabilities[:, n], probabilities[:, :n], config.bft.probability_clip)
        divergence = divergence.cpu().numpy()
        fidelity = phi.detach().cpu().numpy().astype(np.float64).reshape(e, n)
        received = gossip.messages_received.reshape(e, n)
        monitor = self.monitor
        monitor.record(divergence)
        allowance = monitor.threshold(fidelity) / np.maximum(1, monitor.window_fill)[:, None]
        self.trust = update_trust(self.trust, divergence <= allowance, config.trust.alpha)
        checkpoint = is_checkpoint_round(inputs.round_index, config.bft.checkpoint_every)
        votes = received > 0 if config.votes_need_exchange else None
        outcome = monitor.checkpoint(fidelity, votes=votes, trust=self.trust, networks=checkpoint)
        return gossip.params, checkpoint, outcome.committed, unitary
