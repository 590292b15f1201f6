"""The CEAS consensus protocol: fidelity-weighted gossip, BFT checkpoints with quarantine, and trust.

The ``ceas`` protocol (CEAS Sec. III-B, III-D, IV), per round ``t``:

1. Fidelity-weighted gossip (:func:`~ceas_gym.consensus.gossip.gossip_round`, eq. 6) among the active nodes,
   each mixing step gated by the pairs the provider grants.
2. Consensus model: ``theta_bar = sum_{k active} phi_k theta'_k / sum_{k active} phi_k`` over the mixed parameters
   ``theta'`` (eq. 4-5; without transport noise it equals the fidelity-weighted mean of the inputs, because gossip
   conserves the phi-weighted mass).
3. Divergence ``D_k = D_KL(predict(theta_bar) || predict(theta_k))`` of every node's *submitted* parameters
   (before mixing, so an attacker's own update is judged, not its mixed-in neighbourhood), recorded by the
   :class:`~ceas_gym.consensus.bft.BFTMonitor`.
4. Trust (CEAS Sec. III-D): ``v_k = 1`` if ``D_k <= Theta(phi_k) / W`` (the per-round share of the threshold) and
   the node's authentication succeeded (if the environment passes outcomes), else 0;
   ``tau_k <- alpha tau_k + (1 - alpha) v_k``.
5. At a checkpoint round (every ``checkpoint_every``-th) the monitor runs quorum, quarantine and readmission with
   ``F_k = phi_k``. With ``votes_need_exchange`` a node votes only if it received at least one message this round.
   A committed checkpoint stores ``theta_bar`` as the committed model (a diagnostic: no node receives it, since no
   pairs carry it); quarantined nodes keep their own parameters and take no part until readmitted, and a readmitted
   node rejoins the gossip with the parameters it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ceas_gym.config import ConfigError, check_int
from ceas_gym.consensus.bft import BFTConfig, BFTMonitor, bernoulli_kl, is_checkpoint_round
from ceas_gym.consensus.gossip import Perturb, check_edges, check_stamps, default_mixing_steps, gossip_round
from ceas_gym.consensus.pairs import PairProvider
from ceas_gym.consensus.protocol import (
    ConsensusRoundResult,
    Predict,
    check_round_inputs,
    load_config,
    probe_predictions,
    weighted_consensus,
)
from ceas_gym.consensus.trust import TrustConfig, update_trust

__all__ = ["CEASConfig", "CEASProtocol"]


@dataclass(frozen=True)
class CEASConfig:
    """Settings of the CEAS protocol.

    Attributes:
        mixing_steps: Gossip mixing steps per round (None: ``max(1, ceil(log2 N))``, CEAS Sec. IV), >= 0.
        pairs_per_exchange: Bell pairs one gossip exchange consumes (payload size after compression), >= 1.
        votes_need_exchange: A node's checkpoint vote counts only if it received a message this round.
        bft: Checkpoint, threshold and readmission settings.
        trust: Trust-score settings.
    """

    mixing_steps: int | None = None
    pairs_per_exchange: int = 1
    votes_need_exchange: bool = True
    bft: BFTConfig = field(default_factory=BFTConfig)
    trust: TrustConfig = field(default_factory=TrustConfig)

    def __post_init__(self) -> None:
        if self.mixing_steps is not None:
            check_int("CEASConfig.mixing_steps", self.mixing_steps, 0)
        check_int("CEASConfig.pairs_per_exchange", self.pairs_per_exchange, 1)
        if not isinstance(self.votes_need_exchange, bool):
            raise ConfigError(
                f"CEASConfig.votes_need_exchange: expected true or false, got {self.votes_need_exchange!r}"
            )
        if not isinstance(self.bft, BFTConfig) or not isinstance(self.trust, TrustConfig):
            raise ConfigError("CEASConfig.bft and CEASConfig.trust: expected BFTConfig and TrustConfig")


class CEASProtocol:
    """Fidelity-weighted gossip with BFT checkpoints, quarantine and trust (CEAS Sec. III-B, III-D, IV).

    Args:
        num_nodes: Number of nodes N, >= 1.
        edges: Link endpoints, ``u < v``. ``(E, 2)`` int; pair requests use its row indices.
        config: A :class:`CEASConfig`, a mapping of its fields, or None for the defaults.
    """

    name = "ceas"
    config_class = CEASConfig

    def __init__(self, num_nodes: int, edges: np.ndarray, config: CEASConfig | Mapping[str, Any] | None = None):
        check_int("num_nodes", num_nodes, 1)
        self.num_nodes = num_nodes
        self.edges = check_edges(edges, num_nodes)
        self.config: CEASConfig = load_config(CEASConfig, config)
        self.mixing_steps = (
            default_mixing_steps(num_nodes) if self.config.mixing_steps is None else self.config.mixing_steps
        )
        self.monitor = BFTMonitor(self.config.bft, num_nodes)
        self.reset()

    def reset(self) -> None:
        """Start a new episode: all nodes active, trust at its initial value, no divergence history."""
        self.monitor.reset()
        self.trust = np.full(self.num_nodes, self.config.trust.initial)
        self.committed_params: torch.Tensor | None = None

    @property
    def active(self) -> np.ndarray:
        """Active (not quarantined) nodes. ``(N,)`` bool."""
        return self.monitor.active

    def checkpoint_due(self, round_index: int) -> bool:
        """Whether round ``round_index`` (0-based) ends with a BFT checkpoint, where votes need a received message."""
        return is_checkpoint_round(round_index, self.config.bft.checkpoint_every)

    def expected_demand(self, edges: np.ndarray, round_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Pairs per link for the next round: ``mixing_steps * pairs_per_exchange`` on links between active nodes.

        Args:
            edges: The protocol's links, ``(E, 2)`` (must match the edges it was built with).
            round_index: The coming round (0-based); the demand does not depend on it.

        Returns:
            ``(pairs, deadline)``: ``(E,)`` float pairs and ``(E,)`` int deadline, 1 round (the gossip of the
            coming round consumes them).
        """
        edges = check_edges(edges, self.num_nodes)
        if not np.array_equal(edges, self.edges):
            raise ConfigError("edges: must be the edges the protocol was built with")
        check_int("round_index", round_index, 0)
        both_active = self.active[edges[:, 0]] & self.active[edges[:, 1]]
        pairs = np.where(both_active, float(self.mixing_steps * self.config.pairs_per_exchange), 0.0)
        return pairs, np.ones(edges.shape[0], dtype=np.int64)

    def run_round(
        self,
        params: torch.Tensor,
        stamps: np.ndarray | torch.Tensor,
        predict: Predict | None,
        pair_provider: PairProvider,
        round_index: int,
        rng: np.random.Generator | None = None,
        *,
        perturb: Perturb | None = None,
        authenticated: np.ndarray | None = None,
    ) -> ConsensusRoundResult:
        """Run one CEAS round (see the module docstring for the steps).

        Args:
            params: Submitted parameters per node (after local training and any attack). ``(N, P)`` float tensor.
            stamps: Fidelity stamps phi per node, in (0, 1]. ``(N,)``.
            predict: Probe-set predictor ``(K, P) -> (K, S)`` probabilities of class 1 (required).
            pair_provider: Serves the gossip exchanges.
            round_index: This round (0-based); checkpoints run when ``(round_index + 1) % checkpoint_every == 0``.
            rng: Unused (the protocol is deterministic); accepted for the common interface.
            perturb: Optional transport-noise hook for gossip messages.
            authenticated: Optional authentication outcomes per node, ``(N,)`` bool, ANDed into the trust input v.

        Returns:
            The :class:`ConsensusRoundResult`.
        """
        n = self.num_nodes
        check_round_inputs(params, n, round_index, rng, uses_rng=False)
        del rng
        if predict is None:
            raise ConfigError("predict: the ceas protocol needs a probe-set predictor")
        submitted = params.detach()
        phi = check_stamps(stamps, n, submitted)
        config = self.config
        active_before = self.active.copy()

        gossip = gossip_round(
            self.edges,
            submitted,
            phi,
            active_before,
            pair_provider,
            mixing_steps=self.mixing_steps,
            pairs_per_exchange=config.pairs_per_exchange,
            perturb=perturb,
        )
        consensus = weighted_consensus(gossip.params, phi, active_before)

        predictions = probe_predictions(predict, torch.cat([submitted, consensus.unsqueeze(0)]))
        divergence = bernoulli_kl(predictions[n], predictions[:n], config.bft.probability_clip).cpu().numpy()
        self.monitor.record(divergence)

        fidelity = phi.detach().cpu().numpy().astype(np.float64)
        per_round_allowance = self.monitor.threshold(fidelity) / max(1, self.monitor.window_fill)
        verified = divergence <= per_round_allowance
        if authenticated is not None:
            authentic = np.asarray(authenticated)
            if authentic.shape != (n,) or authentic.dtype != bool:
                raise ConfigError(f"authenticated: expected a bool array of shape ({n},)")
            verified &= authentic
        self.trust = update_trust(self.trust, verified, config.trust.alpha)

        new_params = gossip.params
        quarantined = np.zeros(n, dtype=bool)
        readmitted = np.zeros(n, dtype=bool)
        checkpoint = is_checkpoint_round(round_index, config.bft.checkpoint_every)
        committed = False
        if checkpoint:
            votes = gossip.messages_received > 0 if config.votes_need_exchange else None
            outcome = self.monitor.checkpoint(fidelity, votes=votes, trust=self.trust)
            committed = outcome.committed
            quarantined, readmitted = outcome.quarantined, outcome.readmitted
            if committed:
                self.committed_params = consensus.clone()

        pairs_per_edge = gossip.granted_per_edge * config.pairs_per_exchange
        return ConsensusRoundResult(
            params=new_params,
            consensus_params=consensus,
            active=self.active.copy(),
            quarantined=quarantined,
            readmitted=readmitted,
            participants=active_before,
            checkpoint=checkpoint,
            committed=committed,
            exchanges_attempted=gossip.attempted,
            exchanges_granted=gossip.granted,
            pairs_consumed=gossip.pairs_consumed,
            pairs_per_edge=pairs_per_edge,
            mean_delivered_fidelity=gossip.mean_delivered_fidelity,
            received_fidelity=gossip.received_fidelity,
            divergence=divergence,
            trust=self.trust.copy(),
        )
