"""The CEAS paper's random-selection baseline (CEAS Sec. IV), registered as ``random-selection``.

"Aggregation nodes are selected uniformly at random, with no fidelity weighting, quarantine enforcement, or
entanglement-aware scheduling" (CEAS Sec. IV). Per round:

1. ``m = max(1, floor(selection_fraction * N + 0.5))`` *participants* are drawn uniformly without replacement from all N
   nodes with the round's generator ``rng``.
2. Pair requests (the documented choice of which links the baseline's traffic uses): each participant exchanges
   its update with each of its neighbours, one exchange of ``pairs_per_exchange`` pairs per link incident to a
   participant (a link between two participants carries one exchange); all of them are requested in one call,
   without regard to which links hold pairs (entanglement-oblivious).
3. A participant's update *arrives* if at least one of its exchanges was granted; it travels at the mean fidelity
   of the pairs of its granted exchanges (the optional ``perturb`` hook is applied to the arrived updates with
   that fidelity).
4. The plain, unweighted mean of the arrived updates is the round's consensus model. It reaches a node only over
   pairs: every node at an end of a granted exchange (an exchange carries both directions) continues from it, the
   others keep their parameters. If no update arrived the round commits nothing and every node keeps its
   parameters; the consensus model is then the last committed one (the plain mean of all nodes before any, a
   diagnostic no node holds).

Expected demand for the scheduler: a link is used when at least one endpoint is drawn, with probability
``1 - C(N-2, m) / C(N, m) = 1 - (N - m)(N - m - 1) / (N (N - 1))``; the expected pairs per link are that times
``pairs_per_exchange``, due within 1 round. Trust stays at 1 and every node stays active; divergence is reported
(as in CEAS, D_KL(consensus || node) of the submitted parameters, nats) only when a predictor is given, NaN
otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ceas_gym.config import ConfigError, check_int, check_range
from ceas_gym.consensus.bft import bernoulli_kl
from ceas_gym.consensus.gossip import Perturb, check_edges
from ceas_gym.consensus.pairs import PairProvider
from ceas_gym.consensus.protocol import (
    ConsensusRoundResult,
    Predict,
    check_round_inputs,
    load_config,
    probe_predictions,
)


@dataclass(frozen=True)
class RandomSelectionConfig:
    """Settings of the random-selection baseline.

    Attributes:
        selection_fraction: Fraction of nodes drawn as participants each round, in (0, 1].
        pairs_per_exchange: Bell pairs one participant-neighbour exchange consumes, >= 1.
        probability_clip: eps for the reported divergence (probabilities clipped to ``[eps, 1 - eps]``).
    """

    selection_fraction: float = 0.5
    pairs_per_exchange: int = 1
    probability_clip: float = 1e-6

    def __post_init__(self) -> None:
        check_range("RandomSelectionConfig.selection_fraction", self.selection_fraction, 0.0, 1.0, low_inclusive=False)
        check_int("RandomSelectionConfig.pairs_per_exchange", self.pairs_per_exchange, 1)
        check_range(
            "RandomSelectionConfig.probability_clip",
            self.probability_clip,
            0.0,
            0.5,
            low_inclusive=False,
            high_inclusive=False,
        )


def participant_count(num_nodes: int, fraction: float) -> int:
    """Return ``max(1, floor(fraction * N + 0.5))`` participants per round (rounded half up)."""
    return max(1, min(num_nodes, math.floor(fraction * num_nodes + 0.5)))


class RandomSelectionProtocol:
    """Random aggregation nodes, plain mean, no fidelity weights, no quarantine (CEAS Sec. IV baseline).

    Args:
        num_nodes: Number of nodes N, >= 1.
        edges: Link endpoints, ``u < v``. ``(E, 2)`` int; pair requests use its row indices.
        config: A :class:`RandomSelectionConfig`, a mapping of its fields, or None for the defaults.
    """

    name = "random-selection"
    predict_reports_only = True
    """``predict`` only fills the result's ``divergence`` report (a round that skips it runs the same)."""
    config_class = RandomSelectionConfig

    def __init__(
        self, num_nodes: int, edges: np.ndarray, config: RandomSelectionConfig | Mapping[str, Any] | None = None
    ):
        check_int("num_nodes", num_nodes, 1)
        self.num_nodes = num_nodes
        self.edges = check_edges(edges, num_nodes)
        self.config: RandomSelectionConfig = load_config(RandomSelectionConfig, config)
        self.participants_per_round = participant_count(num_nodes, self.config.selection_fraction)
        self.reset()

    def reset(self) -> None:
        """Start a new episode: every node active with trust 1, nothing committed."""
        self.active = np.ones(self.num_nodes, dtype=bool)
        self.trust = np.ones(self.num_nodes)
        self.committed_params: torch.Tensor | None = None

    def expected_demand(self, edges: np.ndarray, round_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Expected pairs per link next round, ``pairs_per_exchange * P(an endpoint is drawn)``, deadline 1 round.

        Args:
            edges: The protocol's links, ``(E, 2)`` (must match the edges it was built with).
            round_index: The coming round (0-based); the demand does not depend on it.

        Returns:
            ``(pairs, deadline)``: ``(E,)`` float expected pairs and ``(E,)`` int deadline in rounds.
        """
        edges = check_edges(edges, self.num_nodes)
        if not np.array_equal(edges, self.edges):
            raise ConfigError("edges: must be the edges the protocol was built with")
        check_int("round_index", round_index, 0)
        n, m = self.num_nodes, self.participants_per_round
        neither_drawn = (n - m) * (n - m - 1) / (n * (n - 1)) if n > 1 else 0.0
        pairs = np.full(edges.shape[0], self.config.pairs_per_exchange * (1.0 - neither_drawn))
        return pairs, np.ones(edges.shape[0], dtype=np.int64)

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
        """Run one baseline round (see the module docstring).

        Args:
            params: Submitted parameters per node. ``(N, P)`` float tensor.
            stamps: Ignored (no fidelity weighting); accepted for the common interface.
            predict: Optional probe-set predictor ``(K, P) -> (K, S)``, used only to report divergence.
            pair_provider: Serves the participants' exchanges.
            round_index: This round (0-based).
            rng: The round's generator; draws the participants.
            perturb: Optional transport-noise hook applied to the arrived updates.
            authenticated: Ignored (no trust); accepted for the common interface.

        Returns:
            The :class:`~ceas_gym.consensus.protocol.ConsensusRoundResult`.
        """
        del stamps, authenticated
        n = self.num_nodes
        check_round_inputs(params, n, round_index, rng)
        submitted = params.detach()
        edges = self.edges
        chosen = np.zeros(n, dtype=bool)
        chosen[rng.choice(n, size=self.participants_per_round, replace=False)] = True

        requested_ids = np.flatnonzero(chosen[edges[:, 0]] | chosen[edges[:, 1]])
        granted_ids = np.zeros(0, dtype=np.int64)
        granted_fidelity = np.zeros(0)
        if requested_ids.size:
            granted, mean_fidelity = pair_provider.request(requested_ids, self.config.pairs_per_exchange)
            granted = np.asarray(granted, dtype=bool)
            granted_ids = requested_ids[granted]
            granted_fidelity = np.asarray(mean_fidelity, dtype=np.float64)[granted]
        endpoints = edges[granted_ids].ravel()
        fidelity_per_endpoint = np.repeat(granted_fidelity, 2)
        exchanges_per_node = np.bincount(endpoints, minlength=n)
        fidelity_sum_per_node = np.bincount(endpoints, fidelity_per_endpoint, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            received_fidelity = np.where(exchanges_per_node > 0, fidelity_sum_per_node / exchanges_per_node, np.nan)

        arrived = chosen & (exchanges_per_node > 0)
        if arrived.any():
            arrived_index = torch.as_tensor(np.flatnonzero(arrived), device=submitted.device)
            updates = submitted[arrived_index]
            if perturb is not None:
                fidelity = torch.as_tensor(received_fidelity[arrived], dtype=submitted.dtype, device=submitted.device)
                updates = perturb(updates, fidelity)
            consensus = updates.mean(dim=0)
            reached = torch.as_tensor(exchanges_per_node > 0, device=submitted.device)[:, None]
            new_params = torch.where(reached, consensus.unsqueeze(0), submitted)
            self.committed_params = consensus.clone()
        else:
            consensus = submitted.mean(dim=0) if self.committed_params is None else self.committed_params.clone()
            new_params = submitted.clone()

        divergence = np.full(n, math.nan)
        if predict is not None:
            predictions = probe_predictions(predict, torch.cat([submitted, consensus.unsqueeze(0)]))
            divergence = bernoulli_kl(predictions[n], predictions[:n], self.config.probability_clip).cpu().numpy()

        pairs_per_edge = np.zeros(edges.shape[0], dtype=np.int64)
        pairs_per_edge[granted_ids] = self.config.pairs_per_exchange
        return ConsensusRoundResult(
            params=new_params,
            consensus_params=consensus,
            active=self.active.copy(),
            quarantined=np.zeros(n, dtype=bool),
            readmitted=np.zeros(n, dtype=bool),
            participants=arrived,
            checkpoint=False,
            committed=bool(arrived.any()),
            exchanges_attempted=int(requested_ids.size),
            exchanges_granted=int(granted_ids.size),
            pairs_consumed=int(granted_ids.size) * self.config.pairs_per_exchange,
            pairs_per_edge=pairs_per_edge,
            mean_delivered_fidelity=float(granted_fidelity.mean()) if granted_fidelity.size else math.nan,
            received_fidelity=received_fidelity,
            divergence=divergence,
            trust=self.trust.copy(),
        )
