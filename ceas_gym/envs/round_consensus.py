"""The consensus phase of the batched CEAS round: its inputs, its outcome, and how a protocol is batched.

The round (:mod:`ceas_gym.envs.ceas_round`) hands the consensus phase the submissions of E copies at once and
gets back each copy's parameters, consensus model and pair accounting. A protocol batches in one of two ways:

* a **batched phase** registered in :data:`~ceas_gym.envs.round_phases.BATCHED_CONSENSUS` under the protocol's
  name runs all copies as one computation: ``ceas``
  (:class:`~ceas_gym.envs.round_gossip.GossipCheckpointConsensus`, gossip over the union of the copies and one
  BFT monitor for all), ``random-selection``
  (:class:`~ceas_gym.envs.round_selection.RandomSelectionConsensus`) and ``qba``
  (:class:`~ceas_gym.envs.round_committee.CommitteeConsensus`: uploads, key links and the score rule over all
  copies, the QBA messages and ledger per copy);
* any other registered protocol (every plug-in) runs through :class:`PerCopyConsensus`: one protocol
  object per copy, each called through the common ``run_round`` interface of :mod:`ceas_gym.consensus.protocol`
  on its copy's rows (a loop over copies; the learning around it stays batched). A protocol whose class sets
  ``predict_reports_only = True`` gets no predictor: it would only fill the result's ``divergence``,
  which the round does not read. A plug-in needs nothing more,
  and can register a batched phase here when the loop costs too much.

Every phase draws only from the copies' streams (:class:`~ceas_gym.envs.round_streams.CopyStreams`), copy after
copy in each copy's own order, so copy ``i`` of a batch is a batch of one seeded like it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from ceas_gym.config import ConfigError
from ceas_gym.consensus.pairs import PairProvider
from ceas_gym.consensus.protocol import Predict
from ceas_gym.envs.batched_rows import predict_rows
from ceas_gym.envs.round_streams import CopyStreams

__all__ = [
    "ConsensusOutcome",
    "PerCopyConsensus",
    "Probes",
    "RoundConsensus",
    "RoundInputs",
    "ShiftedPairs",
    "UnionLayout",
]


class Probes:
    """The probe set of each copy and the model that scores parameter rows on it (for divergence and BFT).

    Args:
        model: The classifier (:class:`~ceas_gym.learning.classifier.QuantumClassifier`).
        features: Probe features per copy. ``(E, S, F)``.
    """

    def __init__(self, model: Any, features: torch.Tensor) -> None:
        self.model = model
        self.features = features
        self._repeated: dict[int, torch.Tensor] = {}

    def rows(self, rows: torch.Tensor, per_copy: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``P(class 1)`` of ``rows`` ``(E x per_copy, P)``, row block ``c`` on copy ``c``'s probes, and unitaries.

        The repeated probe tensor is kept for the episode, so the circuit's encoding cache serves it every round.
        """
        if per_copy not in self._repeated:
            self._repeated[per_copy] = self.features.repeat_interleave(per_copy, dim=0)
        return predict_rows(self.model, rows, self._repeated[per_copy])

    def for_copy(self, copy: int) -> Predict:
        """A protocol's ``predict(rows (K, P)) -> (K, S)`` on copy ``copy``'s probes."""
        features = self.features[copy][None]  # (1, S, F): encoded once and broadcast over the rows

        def predict(rows: torch.Tensor) -> torch.Tensor:
            return predict_rows(self.model, rows, features)[0]

        return predict


@dataclass(frozen=True)
class RoundInputs:
    """What the consensus phase of one round receives.

    Attributes:
        submitted: Submitted parameters of every node of every copy, copy after copy. ``(E x N, P)``.
        stamps: Fidelity stamps phi_k. ``(E x N,)`` float64 tensor.
        provider: Serves exchanges from the union's pair inventory (link ids of the union, ``E x L``).
        round_index: Each copy's round (0-based). ``(E,)`` int.
        streams: The copies' random streams.
        probes: The copies' probe sets and the model.
        transport: ``transport(copy_of_message (M,)) -> perturb`` hook factory, or None without transport noise.
    """

    submitted: torch.Tensor
    stamps: torch.Tensor
    provider: PairProvider
    round_index: np.ndarray
    streams: CopyStreams
    probes: Probes
    transport: Callable[[np.ndarray], Any] | None


@dataclass(frozen=True)
class ConsensusOutcome:
    """What the consensus phase of one round returns, per copy (``E`` copies, ``N`` nodes, ``L`` links each).

    Attributes:
        params: Parameters of every node after the round. ``(E x N, P)``.
        consensus: Each copy's consensus model of the round. ``(E, P)``.
        received_fidelity: Per node mean fidelity of the pairs its received messages used, NaN if none.
            ``(E x N,)``.
        pairs_per_edge: Bell pairs consumed per link of the union. ``(E x L,)`` int.
        attempted: Exchanges requested per copy. ``(E,)`` int.
        granted: Exchanges that got their pairs per copy. ``(E,)`` int.
        mean_delivered_fidelity: Mean fidelity of the pairs of the granted exchanges per copy, NaN if none.
        checkpoint: Whether each copy ran a checkpoint. ``(E,)`` bool.
        committed: Whether each copy committed a consensus model. ``(E,)`` bool.
        consensus_unitary: The consensus rows' circuit unitaries when the phase built them, for the evaluation.
    """

    params: torch.Tensor
    consensus: torch.Tensor
    received_fidelity: np.ndarray
    pairs_per_edge: np.ndarray
    attempted: np.ndarray
    granted: np.ndarray
    mean_delivered_fidelity: np.ndarray
    checkpoint: np.ndarray
    committed: np.ndarray
    consensus_unitary: torch.Tensor | None = field(default=None)


class RoundConsensus(Protocol):
    """A batched consensus phase (see the module docstring); state per copy, ``(E, N)`` arrays."""

    active: np.ndarray
    trust: np.ndarray

    def reset(self, copies: np.ndarray) -> None:
        """Start a new episode in the listed copies."""
        ...

    def demand(self, round_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs the coming round requests per link ``(E, L)`` and their deadline in rounds ``(E, L)``."""
        ...

    def max_demand(self) -> float:
        """An upper bound on any link's demand (pairs), for the observation space."""
        ...

    def checkpoint_next(self, round_index: np.ndarray) -> np.ndarray:
        """Whether each copy's coming round ends with a checkpoint. ``(E,)`` bool."""
        ...

    def run(self, inputs: RoundInputs) -> ConsensusOutcome:
        """One consensus round of every copy."""
        ...


class UnionLayout:
    """How a batched phase sees the copies: E copies of N nodes and L links laid side by side in one union.

    Args:
        num_nodes: Nodes N of one copy.
        union_edges: The links of the union, copy after copy. ``(E x L, 2)``.
        copies: Number of copies E.
    """

    def __init__(self, num_nodes: int, union_edges: np.ndarray, copies: int) -> None:
        self.num_nodes = num_nodes
        self.copies = copies
        self.union_edges = union_edges
        self.edges = union_edges[: union_edges.shape[0] // copies]  # one copy's links (copy 0's node ids)
        self.num_links = self.edges.shape[0]
        self.copy_of_link = np.repeat(np.arange(copies), self.num_links)


class ShiftedPairs:
    """A pair provider for one copy: its link ids ``0..L-1`` are the union's ``offset..offset+L-1``."""

    def __init__(self, provider: PairProvider, offset: int) -> None:
        self.provider = provider
        self.offset = offset

    def request(self, edge_ids: np.ndarray, pairs_per_exchange: int) -> tuple[np.ndarray, np.ndarray]:
        """Serve the copy's request from the union's links."""
        return self.provider.request(np.asarray(edge_ids, dtype=np.int64) + self.offset, pairs_per_exchange)


PROTOCOL_MEMBERS = ("run_round", "expected_demand", "reset", "active", "trust")
"""What :class:`PerCopyConsensus` needs of a protocol object (the common interface)."""


class PerCopyConsensus:
    """Any protocol batched as one protocol object per copy, each run through ``run_round`` on its copy's rows.

    Args:
        protocols: One protocol object per copy, built alike (same class, network and configuration).
        edges: The network's links ``(L, 2)`` (one copy).
    """

    def __init__(self, protocols: list[Any], edges: np.ndarray) -> None:
        missing = [name for name in PROTOCOL_MEMBERS if not hasattr(protocols[0], name)]
        if missing:
            protocol = protocols[0]
            raise ConfigError(
                f"protocol {getattr(protocol, 'name', type(protocol).__name__)!r}: lacks {', '.join(missing)}; a "
                f"protocol runs in the CEAS round through {', '.join(PROTOCOL_MEMBERS)} "
                "(ceas_gym.consensus.protocol.ConsensusProtocol)"
            )
        self.protocols = protocols
        self.edges = edges
        self.num_nodes = int(protocols[0].active.shape[0])

    @property
    def active(self) -> np.ndarray:
        """Active nodes per copy. ``(E, N)`` bool."""
        return np.stack([np.asarray(protocol.active, dtype=bool) for protocol in self.protocols])

    @property
    def trust(self) -> np.ndarray:
        """Trust per copy. ``(E, N)`` float."""
        return np.stack([np.asarray(protocol.trust, dtype=np.float64) for protocol in self.protocols])

    def reset(self, copies: np.ndarray) -> None:
        """Reset the listed copies' protocol objects."""
        for copy in copies:
            self.protocols[copy].reset()

    def demand(self, round_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each copy's ``expected_demand`` stacked, ``(E, L)`` pairs and deadlines."""
        pairs = zip(self.protocols, round_index, strict=True)
        rows = [protocol.expected_demand(self.edges, int(r)) for protocol, r in pairs]
        return np.stack([row[0] for row in rows]), np.stack([row[1] for row in rows])

    def max_demand(self) -> float:
        """The protocol's declared bound, else its first round's largest demand."""
        protocol = self.protocols[0]
        if hasattr(protocol, "max_demand"):  # protocols whose demand moves between rounds declare a bound
            return float(protocol.max_demand())
        return float(np.max(protocol.expected_demand(self.edges, 0)[0], initial=0.0))

    def checkpoint_next(self, round_index: np.ndarray) -> np.ndarray:
        """``checkpoint_due`` of each copy's protocol (False for protocols without one)."""
        due = getattr(self.protocols[0], "checkpoint_due", None)
        if due is None:
            return np.zeros(len(self.protocols), dtype=bool)
        pairs = zip(self.protocols, round_index, strict=True)
        return np.array([protocol.checkpoint_due(int(r)) for protocol, r in pairs], dtype=bool)

    def run(self, inputs: RoundInputs) -> ConsensusOutcome:
        """``run_round`` of every copy, copy after copy, each with its copy's rows, pairs and streams."""
        n, links = self.num_nodes, self.edges.shape[0]
        # The round reads no divergence report; protocols whose predictor only fills it are spared the probes.
        needs_predict = not getattr(self.protocols[0], "predict_reports_only", False)
        results = []
        for copy, protocol in enumerate(self.protocols):
            rows = slice(copy * n, (copy + 1) * n)
            perturb = None if inputs.transport is None else _copy_perturb(inputs.transport, copy)
            results.append(
                protocol.run_round(
                    inputs.submitted[rows],
                    inputs.stamps[rows],
                    inputs.probes.for_copy(copy) if needs_predict else None,
                    ShiftedPairs(inputs.provider, copy * links),
                    int(inputs.round_index[copy]),
                    inputs.streams.np_random(copy),
                    perturb=perturb,
                )
            )
        return ConsensusOutcome(
            params=torch.cat([result.params for result in results]),
            consensus=torch.stack([result.consensus_params for result in results]),
            received_fidelity=np.concatenate([result.received_fidelity for result in results]),
            pairs_per_edge=np.concatenate([np.asarray(result.pairs_per_edge, dtype=np.int64) for result in results]),
            attempted=np.array([result.exchanges_attempted for result in results], dtype=np.int64),
            granted=np.array([result.exchanges_granted for result in results], dtype=np.int64),
            mean_delivered_fidelity=np.array([result.mean_delivered_fidelity for result in results], dtype=float),
            checkpoint=np.array([result.checkpoint for result in results], dtype=bool),
            committed=np.array([result.committed for result in results], dtype=bool),
        )


def _copy_perturb(transport: Callable[[np.ndarray], Any], copy: int) -> Any:
    """A hook for one copy's messages, whatever their number (every message belongs to ``copy``)."""

    def perturb(messages: torch.Tensor, fidelity: torch.Tensor) -> torch.Tensor:
        return transport(np.full(messages.shape[0], copy))(messages, fidelity)

    return perturb
