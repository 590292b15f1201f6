"""Observation pieces every scheduling environment shares: the per-link physical state.

Both the learning-free and the learning environments observe the same five per-link arrays; they differ in how
demand and node state are described, which each environment adds itself.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ceas_gym.envs.instance import SchedulingInstance
from ceas_gym.network.inventory import PairInventory


def box(low: float, high: float, shape: tuple[int, ...]) -> spaces.Box:
    """A float32 Box with scalar bounds."""
    return spaces.Box(low, high, shape=shape, dtype=np.float32)


def link_state_spaces(instance: SchedulingInstance, lifetime_bins: int) -> dict[str, spaces.Box]:
    """Spaces of :func:`link_state`: inventory histogram, stored fidelity, decay rate, success probability, cutoff."""
    links = instance.num_links
    return {
        "inventory": box(0.0, float(instance.capacity.max()), (links, lifetime_bins)),
        "mean_fidelity": box(0.0, 1.0, (links,)),
        "decay_rate": box(0.0, float(max(1.0, np.max(instance.decay_rate))), (links,)),
        "success_probability": box(0.0, 1.0, (links,)),
        "cutoff": box(0.0, float(max(lifetime_bins, instance.cutoff.max())), (links,)),
    }


def link_state(instance: SchedulingInstance, inventory: PairInventory, lifetime_bins: int) -> dict[str, np.ndarray]:
    """Per-link physical state as fresh float32 arrays (see :func:`link_state_spaces`)."""
    return {
        "inventory": inventory.lifetime_histogram(lifetime_bins),
        "mean_fidelity": inventory.mean_fidelity().astype(np.float32),
        "decay_rate": instance.decay_rate.astype(np.float32),
        "success_probability": instance.success_probability.astype(np.float32),
        "cutoff": instance.cutoff.astype(np.float32),
    }
