"""What one round of the committee protocol produced: the agreement phase's outcome and the round's details."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ceas_gym.consensus.committee import Committee
from ceas_gym.consensus.qba import QBAResult
from ceas_gym.learning.aggregators import AggregationResult

__all__ = ["Agreement", "QBARoundDetails"]


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
    key_fidelity: np.ndarray
    attempted: int
    granted: int

    @classmethod
    def none(cls, num_links: int) -> Agreement:
        """No agreement ran (fewer than 3 updates arrived): nothing committed, no key requested."""
        return cls(None, False, (), (), (), np.zeros(num_links, dtype=np.int64), np.zeros(0), 0, 0)
