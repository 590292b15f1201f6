"""What one round of the committee protocol produced: the agreement phase's outcome and the round's details."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ceas_gym.consensus.bft import bernoulli_kl
from ceas_gym.consensus.committee import Committee
from ceas_gym.consensus.committee_transport import Upload
from ceas_gym.consensus.protocol import ConsensusRoundResult, Predict, probe_predictions
from ceas_gym.consensus.qba import QBAResult
from ceas_gym.consensus.qba_config import QBAConfig
from ceas_gym.learning.aggregators import AggregationResult

__all__ = ["Agreement", "QBARoundDetails", "round_result"]


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
class Agreement:
    """Steps 4-5's outcome: the QBA, the signers, whether the block commits, and what the keys cost."""

    qba: QBAResult | None
    committed: bool
    signers: tuple[int, ...]
    detected: tuple[int, ...]  # detected forgers and a detected faulty leader (node ids)
    starved_members: tuple[int, ...]
    key_pairs_per_edge: np.ndarray  # (E,) int
    key_fidelity_sum: float  # sum of the delivered fidelities of the granted key links
    attempted: int
    granted: int

    @classmethod
    def none(cls, num_links: int) -> Agreement:
        """No agreement ran (fewer than 3 updates arrived): nothing committed, no key requested."""
        return cls(None, False, (), (), (), np.zeros(num_links, dtype=np.int64), 0.0, 0, 0)


def round_result(
    submitted: torch.Tensor,
    consensus: torch.Tensor,
    predict: Predict | None,
    upload: Upload,
    agreement: Agreement,
    selected: np.ndarray,
    active: np.ndarray,
    trust: np.ndarray,
    config: QBAConfig,
) -> ConsensusRoundResult:
    """What the environment reads of one committee round: new parameters, exchange and pair counts, fidelities.

    Args:
        submitted: Submitted parameters per node. ``(N, P)``.
        consensus: The round's consensus model (the committed aggregate, else the last committed one). ``(P,)``.
        predict: Optional probe-set predictor, used only for the ``divergence`` report.
        upload: The uploads' outcome.
        agreement: The agreement's outcome.
        selected: Nodes the score rule kept. ``(N,)`` bool.
        active: Active nodes. ``(N,)`` bool.
        trust: Trust per node. ``(N,)``.
        config: The protocol's configuration.
    """
    n = submitted.shape[0]
    committed = agreement.committed
    reached = torch.as_tensor(upload.arrived, device=submitted.device)[:, None]  # members arrive without transport
    new_params = torch.where(reached, consensus.unsqueeze(0), submitted) if committed else submitted.clone()
    received_fidelity = np.full(n, math.nan)
    receiver = upload.receiver
    travelled_nodes = receiver >= 0
    if travelled_nodes.any():
        fidelity = upload.arrival_fidelity[travelled_nodes]
        sums = np.bincount(receiver[travelled_nodes], fidelity, minlength=n)
        counts = np.bincount(receiver[travelled_nodes], minlength=n)
        received_fidelity = np.where(counts > 0, sums / np.maximum(counts, 1), math.nan)
    divergence = np.full(n, math.nan)
    if predict is not None:
        predictions = probe_predictions(predict, torch.cat([submitted, consensus.unsqueeze(0)]))
        divergence = bernoulli_kl(predictions[n], predictions[:n], config.probability_clip).cpu().numpy()
    delivered = upload.granted + agreement.granted
    fidelity_sum = upload.fidelity_sum + agreement.key_fidelity_sum
    pairs_per_edge = upload.pairs_per_edge + agreement.key_pairs_per_edge
    return ConsensusRoundResult(
        params=new_params,
        consensus_params=consensus,
        active=active.copy(),
        quarantined=(upload.arrived & ~selected) if committed else np.zeros(n, dtype=bool),
        readmitted=np.zeros(n, dtype=bool),
        participants=selected,
        checkpoint=True,
        committed=committed,
        exchanges_attempted=upload.attempted + agreement.attempted,
        exchanges_granted=upload.granted + agreement.granted,
        pairs_consumed=int(pairs_per_edge.sum()),
        pairs_per_edge=pairs_per_edge,
        mean_delivered_fidelity=fidelity_sum / delivered if delivered else math.nan,
        received_fidelity=received_fidelity,
        divergence=divergence,
        trust=trust.copy(),
    )
