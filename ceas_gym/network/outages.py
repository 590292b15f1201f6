"""Link outages over time: each link is up or down, and a down link generates no pairs.

Every link follows its own two-state Markov chain (a Gilbert-Elliott channel), one transition per round: an up
link goes down with probability ``rate``, a down link comes back with probability ``1 / mean_rounds``, so an
outage lasts ``mean_rounds`` rounds on average (geometrically distributed) and, in the long run, a link is down
a fraction ``rate / (rate + 1 / mean_rounds)`` of the rounds. Stored pairs survive an outage (it models a failed
source or detector, not a lost memory); only the generation attempts of a down link fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ceas_gym.config import check_range


@dataclass(frozen=True)
class OutageConfig:
    """Link outages (see the module docstring).

    Attributes:
        rate: Probability per round that an up link goes down, in [0, 1]. 0 (default): no outages, and no random
            numbers are drawn for them (trajectories are those of a network without this option).
        mean_rounds: Mean length of an outage in rounds, >= 1 (a down link comes back with probability
            ``1 / mean_rounds`` per round).
    """

    rate: float = 0.0
    mean_rounds: float = 5.0

    def __post_init__(self) -> None:
        check_range("OutageConfig.rate", self.rate, 0.0, 1.0)
        check_range("OutageConfig.mean_rounds", self.mean_rounds, 1.0, finite=True)

    @property
    def enabled(self) -> bool:
        """Whether links ever go down."""
        return self.rate > 0.0

    @property
    def down_fraction(self) -> float:
        """Long-run fraction of rounds a link is down, ``rate / (rate + 1 / mean_rounds)``."""
        if not self.enabled:
            return 0.0
        return self.rate / (self.rate + 1.0 / self.mean_rounds)


def next_outages(down: np.ndarray, uniforms: np.ndarray, config: OutageConfig) -> np.ndarray:
    """One round of every link's chain.

    Args:
        down: Which links are down now. Any shape, bool.
        uniforms: One uniform draw in [0, 1) per link, the same shape.
        config: The outage model.

    Returns:
        Which links are down in the next round, the same shape, bool.
    """
    return np.where(down, uniforms >= 1.0 / config.mean_rounds, uniforms < config.rate)
