"""What a CEAS round reports: its info dict and its reward, computed once for E copies (E = 1 for one environment).

The single environment (:mod:`ceas_gym.envs.ceas`) and the batched one (:mod:`ceas_gym.envs.batched_ceas`) both
call :func:`round_infos` and :func:`round_reward`; the single one reads row 0 as Python scalars
(:func:`info_row`). The formulas live here only.

Info keys (per copy): ``round``; ``accuracy`` and ``loss``: the mean test accuracy and loss (nats) of the models
the honest nodes hold (every honest node, quarantined or not: a falsely quarantined node's model is part of the
outcome), ``accuracy_worst`` (the worst of them) and ``consensus_distance`` (their mean L2 distance to their
phi-weighted mean); ``accuracy_ideal_aggregate`` (the exact phi-weighted mean of the active nodes' parameters, CEAS
eq. 5, on the full test set: a diagnostic no node holds, never fed back); ``utilisation`` (pairs consumed /
generated, episode so far, 0 before any was generated); ``isolation_rate`` (Byzantine nodes quarantined /
Byzantine nodes) and ``false_quarantine_rate`` (honest nodes quarantined / honest nodes); ``active_nodes``;
``exchanges_granted_fraction`` (granted / attempted exchanges of this round, 0 if none was attempted);
``requests_missed`` (attempted - granted); ``pairs_expired``; ``wasted`` (expired + overflow pairs); ``attempts``,
``generated``, ``consumed`` (pairs, this round); ``mean_delivered_fidelity`` (0 where nothing was delivered);
``checkpoint`` and ``committed``.

Reward (per copy), with the :class:`~ceas_gym.envs.ceas_config.CEASRewardConfig` weights ``w`` (default: accuracy
level and gain weight 1, the shaping terms 0), ``accuracy`` being the honest nodes' mean::

    w_accuracy * accuracy + w_gain * (accuracy - previous accuracy) + w_exchanges * exchanges_granted_fraction
    - w_wasted * wasted - w_attempt * attempts / max(budget, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["INFO_METRICS", "NODE_METRICS", "RoundStats", "info_row", "node_metrics", "round_infos", "round_reward"]

NODE_METRICS = ("accuracy", "loss", "accuracy_worst", "consensus_distance")
"""Info keys computed from the models the honest nodes hold (:func:`node_metrics`)."""

INFO_METRICS = (
    *NODE_METRICS,
    "accuracy_ideal_aggregate",
    "utilisation",
    "isolation_rate",
    "false_quarantine_rate",
    "active_nodes",
    "exchanges_granted_fraction",
    "requests_missed",
    "pairs_expired",
    "wasted",
)
"""Scalar info keys every CEAS environment reports each step (also logged by the training tools)."""


@dataclass(frozen=True)
class RoundStats:
    """Counts of one round, per copy. Every field is ``(E,)``.

    Attributes:
        attempts: Generation attempts spent (attempts).
        generated: Pairs generated (pairs).
        expired: Pairs that expired while stored (pairs).
        overflow: Generated pairs that found no free memory slot (pairs).
        attempted: Consensus exchanges attempted.
        granted: Exchanges that found their pairs.
        consumed: Pairs the consensus consumed (pairs).
        mean_delivered_fidelity: Mean Werner fidelity of the delivered pairs (NaN where none).
        checkpoint: Whether the round ended with a checkpoint (bool).
        committed: Whether that checkpoint, or the block, committed (bool).
    """

    attempts: np.ndarray
    generated: np.ndarray
    expired: np.ndarray
    overflow: np.ndarray
    attempted: np.ndarray
    granted: np.ndarray
    consumed: np.ndarray
    mean_delivered_fidelity: np.ndarray
    checkpoint: np.ndarray
    committed: np.ndarray

    @classmethod
    def empty(cls, copies: int) -> RoundStats:
        """The counts reported at a reset, before any round ran."""
        zeros = np.zeros(copies, dtype=np.int64)
        no = np.zeros(copies, dtype=bool)
        return cls(zeros, zeros, zeros, zeros, zeros, zeros, zeros, np.zeros(copies), no, no)


def node_metrics(
    node_accuracy: np.ndarray, node_loss: np.ndarray, params: np.ndarray, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """The metrics of the models the honest nodes of E copies hold (:data:`NODE_METRICS`).

    Args:
        node_accuracy: Test accuracy of each honest node's model. ``(E, H)``, ``H >= 1``.
        node_loss: Its test loss (nats). ``(E, H)``.
        params: Their parameters. ``(E, H, P)``.
        weights: Their fidelity stamps phi (the weights of their mean). ``(E, H)`` >= 0, not all 0 in a copy.

    Returns:
        ``accuracy`` (mean), ``loss`` (mean), ``accuracy_worst`` (min) and ``consensus_distance`` (mean L2 distance of
        the parameters to their phi-weighted mean), each ``(E,)``.
    """
    centre = (weights[..., None] * params).sum(1) / weights.sum(1, keepdims=True)  # (E, P)
    distance = np.linalg.norm(params - centre[:, None, :], axis=-1)  # (E, H)
    return {
        "accuracy": node_accuracy.mean(1),
        "loss": node_loss.mean(1),
        "accuracy_worst": node_accuracy.min(1),
        "consensus_distance": distance.mean(1),
    }


def round_infos(
    stats: RoundStats,
    *,
    round_index: np.ndarray,
    node: dict[str, np.ndarray],
    ideal_accuracy: np.ndarray,
    generated_total: np.ndarray,
    consumed_total: np.ndarray,
    active: np.ndarray,
    byzantine: np.ndarray,
) -> dict[str, np.ndarray]:
    """The info dict of E copies, each key an ``(E,)`` array (see the module docstring for the keys).

    Args:
        stats: This round's counts.
        round_index: Rounds played so far. ``(E,)`` int.
        node: The :func:`node_metrics` of the honest nodes' models, each ``(E,)``.
        ideal_accuracy: Test accuracy of the exact phi-weighted mean (the diagnostic). ``(E,)``.
        generated_total: Pairs generated this episode. ``(E,)`` int.
        consumed_total: Pairs consumed this episode. ``(E,)`` int.
        active: Nodes not quarantined. ``(E, N)`` bool.
        byzantine: Byzantine nodes (the same in every copy). ``(N,)`` bool.
    """
    copies = active.shape[0]
    honest = ~byzantine
    quarantined = ~active
    with np.errstate(invalid="ignore", divide="ignore"):
        utilisation = np.where(generated_total > 0, consumed_total / np.maximum(generated_total, 1), 0.0)
        granted_fraction = np.where(stats.attempted > 0, stats.granted / np.maximum(stats.attempted, 1), 0.0)
    return {
        "round": np.asarray(round_index, dtype=np.int64).copy(),
        **{key: np.asarray(node[key], dtype=np.float64).copy() for key in NODE_METRICS},
        "accuracy_ideal_aggregate": np.asarray(ideal_accuracy, dtype=np.float64).copy(),
        "utilisation": utilisation,
        "isolation_rate": quarantined[:, byzantine].mean(1) if byzantine.any() else np.zeros(copies),
        "false_quarantine_rate": quarantined[:, honest].mean(1) if honest.any() else np.zeros(copies),
        "active_nodes": active.sum(1),
        "exchanges_granted_fraction": granted_fraction,
        "requests_missed": stats.attempted - stats.granted,
        "pairs_expired": stats.expired,
        "wasted": stats.expired + stats.overflow,
        "attempts": stats.attempts,
        "generated": stats.generated,
        "consumed": stats.consumed,
        "mean_delivered_fidelity": np.nan_to_num(stats.mean_delivered_fidelity, nan=0.0),
        "checkpoint": stats.checkpoint,
        "committed": stats.committed,
    }


def round_reward(
    weights: Any, accuracy: np.ndarray, previous_accuracy: np.ndarray, infos: dict[str, np.ndarray], budget: int
) -> np.ndarray:
    """The reward of E copies, ``(E,)`` float64 (the formula of the module docstring).

    Args:
        weights: A :class:`~ceas_gym.envs.ceas_config.CEASRewardConfig`.
        accuracy: This round's accuracy (the honest nodes' mean). ``(E,)``.
        previous_accuracy: The accuracy before the round. ``(E,)``.
        infos: This round's :func:`round_infos`.
        budget: Generation attempts per round (the attempt term's scale).
    """
    reward = (
        weights.accuracy * accuracy
        + weights.accuracy_gain * (accuracy - previous_accuracy)
        + weights.exchanges * infos["exchanges_granted_fraction"]
        - weights.wasted * infos["wasted"]
        - weights.attempt * infos["attempts"] / max(budget, 1)
    )
    return np.asarray(reward, dtype=np.float64)


def info_row(infos: dict[str, np.ndarray], copy: int = 0) -> dict[str, Any]:
    """One copy's info as Python scalars (``int``, ``float``, ``bool``), as a single environment returns it."""
    return {key: value[copy].item() for key, value in infos.items()}
