"""What scheduling policies share: reading an environment's observation and writing its action.

Baseline policies think in integer attempts per link and a serving order; :class:`SchedulingInterface` turns a
(possibly flattened) observation into named arrays and an attempt plan into the environment's action vector, so
that the environment's budget split reproduces the plan exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


@dataclass(frozen=True)
class SchedulingInterface:
    """The shapes a scheduling policy needs from its environment.

    Attributes:
        dict_space: The environment's observation space in its ``Dict`` form.
        flattened: Whether observations arrive flattened into one vector.
        num_links: Number of links E.
        budget: Generation attempts per round.
        agent_serving_order: Whether the action carries a serving order per link.
    """

    dict_space: spaces.Dict
    flattened: bool
    num_links: int
    budget: int
    agent_serving_order: bool

    @classmethod
    def from_env(cls, env: gym.Env) -> SchedulingInterface:
        """Read the interface off a (wrapped) ceas_gym scheduling environment."""
        base = env.unwrapped
        if not hasattr(base, "dict_observation_space"):
            raise TypeError(f"{type(base).__name__} is not a ceas_gym scheduling environment")
        return cls(
            dict_space=base.dict_observation_space,
            flattened=not isinstance(base.observation_space, spaces.Dict),
            num_links=base.num_links,
            budget=base.config.budget,
            agent_serving_order=base.config.serving_order == "agent",
        )

    def read(self, observation: Any) -> dict[str, np.ndarray]:
        """Return the observation as a dict of arrays (unflattening when needed)."""
        if self.flattened:
            return spaces.unflatten(self.dict_space, np.asarray(observation))
        return observation

    def action(self, attempts: np.ndarray, freshest_first: np.ndarray | None = None) -> np.ndarray:
        """Encode integer attempts per link (summing to at most the budget) and a serving order as an action.

        Weights are attempts over budget and the unspent share is the rest, so the environment's
        largest-remainder split gives back exactly ``attempts``.
        """
        attempts = np.asarray(attempts, dtype=np.float64)
        budget = max(self.budget, 1)
        unspent = max(self.budget - attempts.sum(), 0.0)
        weights = np.concatenate([attempts, [unspent]]) / budget
        parts = [weights]
        if self.agent_serving_order:
            order = np.zeros(self.num_links) if freshest_first is None else np.asarray(freshest_first, dtype=float)
            parts.append(order)
        return np.concatenate(parts).astype(np.float32)


def allocate_in_order(needed: np.ndarray, order: np.ndarray, budget: int) -> np.ndarray:
    """Give each link its needed attempts in priority order until the budget runs out (vectorised).

    Args:
        needed: Attempts each link asks for. ``(E,)`` int >= 0.
        order: Link indices, highest priority first. ``(E,)`` int.
        budget: Attempts available.

    Returns:
        Attempts per link. ``(E,)`` int summing to ``min(budget, needed.sum())``.
    """
    needed_sorted = needed[order]
    before = np.cumsum(needed_sorted) - needed_sorted
    granted_sorted = np.clip(budget - before, 0, needed_sorted)
    granted = np.zeros_like(needed)
    granted[order] = granted_sorted
    return granted
