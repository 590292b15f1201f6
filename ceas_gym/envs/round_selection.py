"""The ``random-selection`` baseline's consensus phase batched over E copies.

The steps of :meth:`~ceas_gym.consensus.random_selection.RandomSelectionProtocol.run_round` (its module docstring gives
them) for E copies at once: each copy draws its participants from its own stream (one ``choice`` per copy, the
draw a single copy makes), then the pair requests of all copies go to the union's inventory in one call, and the
arrived updates, their transport noise and each copy's plain mean are computed as one tensor operation.
``tests/test_batched_env.py`` holds it against ``RandomSelectionProtocol.run_round``, an independent implementation.
"""

from __future__ import annotations

import numpy as np
import torch

from ceas_gym.consensus.random_selection import RandomSelectionProtocol
from ceas_gym.envs.batched_rows import mean_per_copy
from ceas_gym.envs.round_consensus import ConsensusOutcome, RoundInputs, UnionLayout


class RandomSelectionConsensus(UnionLayout):
    """``random-selection`` over E copies (see the module docstring).

    Args:
        protocol: A :class:`RandomSelectionProtocol` (its configuration and participant count; its state is not used).
        union_edges: The links of the E copies' union, copy after copy. ``(E x L, 2)``.
        copies: Number of copies E.
    """

    def __init__(self, protocol: RandomSelectionProtocol, union_edges: np.ndarray, copies: int) -> None:
        super().__init__(protocol.num_nodes, union_edges, copies)
        self.template = protocol
        self.config = protocol.config
        self.participants_per_round = protocol.participants_per_round
        self.active = np.ones((copies, self.num_nodes), dtype=bool)  # no quarantine
        self.trust = np.ones((copies, self.num_nodes))
        self.committed_params: torch.Tensor | None = None  # (E, P) once allocated
        self.has_committed = np.zeros(copies, dtype=bool)

    def reset(self, copies: np.ndarray) -> None:
        """Nothing committed in the listed copies."""
        self.has_committed[copies] = False

    def demand(self, round_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The expected pairs per link (the same every round and copy), due within 1 round."""
        pairs, deadline = self.template.expected_demand(self.edges, 0)
        del round_index
        return np.tile(pairs, (self.copies, 1)), np.tile(deadline, (self.copies, 1))

    def max_demand(self) -> float:
        """The expected demand of a link (it does not move)."""
        return float(np.max(self.template.expected_demand(self.edges, 0)[0], initial=0.0))

    def checkpoint_next(self, round_index: np.ndarray) -> np.ndarray:
        """The baseline never checkpoints."""
        return np.zeros(np.shape(round_index), dtype=bool)

    def run(self, inputs: RoundInputs) -> ConsensusOutcome:
        """Draw, request, deliver and average every copy's participants' updates."""
        e, n, links = self.copies, self.num_nodes, self.num_links
        submitted = inputs.submitted.detach()
        chosen = np.zeros((e, n), dtype=bool)
        for copy in range(e):  # one draw per copy, from the stream that copy alone would use
            rng = inputs.streams.np_random(copy)
            chosen[copy, rng.choice(n, size=self.participants_per_round, replace=False)] = True
        chosen = chosen.ravel()
        edges = self.union_edges
        pairs_per_exchange = self.config.pairs_per_exchange
        requested_ids = np.flatnonzero(chosen[edges[:, 0]] | chosen[edges[:, 1]])
        granted_ids = np.zeros(0, dtype=np.int64)
        granted_fidelity = np.zeros(0)
        if requested_ids.size:
            granted, mean_fidelity = inputs.provider.request(requested_ids, pairs_per_exchange)
            granted = np.asarray(granted, dtype=bool)
            granted_ids = requested_ids[granted]
            granted_fidelity = np.asarray(mean_fidelity, dtype=np.float64)[granted]
        endpoints = edges[granted_ids].ravel()
        exchanges_per_node = np.bincount(endpoints, minlength=e * n)
        fidelity_sum_per_node = np.bincount(endpoints, np.repeat(granted_fidelity, 2), minlength=e * n)
        with np.errstate(invalid="ignore", divide="ignore"):
            received_fidelity = np.where(exchanges_per_node > 0, fidelity_sum_per_node / exchanges_per_node, np.nan)

        arrived = chosen & (exchanges_per_node > 0)
        arrived_rows = np.flatnonzero(arrived)  # copy after copy, each copy's in node order
        copy_of_update = arrived_rows // n
        updates = submitted[torch.as_tensor(arrived_rows, device=submitted.device)]
        if inputs.transport is not None and arrived_rows.size:
            fidelity = torch.as_tensor(received_fidelity[arrived], dtype=submitted.dtype, device=submitted.device)
            updates = inputs.transport(copy_of_update)(updates, fidelity)
        counts = np.bincount(copy_of_update, minlength=e)
        sums = torch.zeros(e, submitted.shape[1], dtype=submitted.dtype, device=submitted.device)
        sums.index_add_(0, torch.as_tensor(copy_of_update, device=submitted.device), updates)
        committed = counts > 0
        mean = sums / torch.as_tensor(np.maximum(counts, 1), dtype=submitted.dtype, device=submitted.device)[:, None]
        if self.committed_params is None:
            self.committed_params = torch.zeros_like(mean)
        fallback = torch.where(
            torch.as_tensor(self.has_committed, device=mean.device)[:, None],
            self.committed_params,
            submitted.reshape(e, n, -1).mean(dim=1),
        )
        committed_rows = torch.as_tensor(committed, device=mean.device)[:, None]
        consensus = torch.where(committed_rows, mean, fallback)
        self.committed_params = torch.where(committed_rows, mean, self.committed_params)
        self.has_committed |= committed
        broadcast = consensus.repeat_interleave(n, dim=0)
        reached = np.repeat(committed, n) & (exchanges_per_node > 0)  # the mean travels only over granted exchanges
        params = torch.where(torch.as_tensor(reached, device=mean.device)[:, None], broadcast, submitted)

        pairs_per_edge = np.zeros(e * links, dtype=np.int64)
        pairs_per_edge[granted_ids] = pairs_per_exchange
        granted_per_copy = np.bincount(self.copy_of_link[granted_ids], minlength=e)
        fidelity_per_copy = np.bincount(self.copy_of_link[granted_ids], granted_fidelity, minlength=e)
        return ConsensusOutcome(
            params=params,
            consensus=consensus,
            received_fidelity=received_fidelity,
            pairs_per_edge=pairs_per_edge,
            attempted=np.bincount(self.copy_of_link[requested_ids], minlength=e),
            granted=granted_per_copy,
            mean_delivered_fidelity=mean_per_copy(fidelity_per_copy, granted_per_copy),
            checkpoint=np.zeros(e, dtype=bool),
            committed=committed,
        )
