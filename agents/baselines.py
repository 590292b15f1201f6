"""Baseline scheduling policies: earliest-expiring-first, greedy-by-demand and uniform random."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents.scheduling import SchedulingInterface, allocate_in_order
from ceas_gym.envs.link_layer import split_budget


def _deficit(view: dict[str, np.ndarray]) -> np.ndarray:
    """Pairs each link still lacks for its pending requests. ``(E,)`` float >= 0."""
    held = view["inventory"].sum(axis=1)
    return np.maximum(view["demand_pairs"] - held, 0.0)


class EarliestExpiringFirst:
    """EEF: budget first to the links whose demand expires first; oldest pairs served first.

    Per round: each link's deficit (pending pairs minus stored pairs) needs ``ceil(deficit / p)`` attempts in
    expectation. Links are taken in order of earliest pending deadline (ties: larger deficit first, then lower
    index) and granted their attempts until the budget runs out. What is left is spread over the links that still
    have a deficit, in proportion to it, as a hedge against failed attempts; anything left after that is unspent.
    Requests are served oldest-pair-first, using pairs before they expire.

    Args:
        env: The environment the policy will act in (read for shapes and the budget).
    """

    name = "eef"

    def __init__(self, env: gym.Env) -> None:
        self.interface = SchedulingInterface.from_env(env)

    def reset(self, seed: int | None = None) -> None:
        """EEF is deterministic; nothing to reset."""

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        """Return the EEF action for ``observation``."""
        view = self.interface.read(observation)
        deficit = _deficit(view)
        p = np.maximum(view["success_probability"].astype(np.float64), 1e-6)
        needed = np.where(deficit > 0, np.ceil(deficit / p), 0).astype(np.int64)
        order = np.lexsort((np.arange(deficit.size), -deficit, view["demand_deadline"]))
        budget = self.interface.budget
        attempts = allocate_in_order(needed, order, budget)
        leftover = budget - int(attempts.sum())
        if leftover > 0 and deficit.sum() > 0:
            attempts += split_budget(np.append(deficit, 0.0), leftover)
        return self.interface.action(attempts, freshest_first=np.zeros(deficit.size, dtype=bool))


class GreedyByDemand:
    """Split the whole budget in proportion to each link's expected attempts needed (deficit / p).

    Ignores deadlines; serves oldest pairs first. Spends nothing when no link has a deficit.

    Args:
        env: The environment the policy will act in.
    """

    name = "greedy"

    def __init__(self, env: gym.Env) -> None:
        self.interface = SchedulingInterface.from_env(env)

    def reset(self, seed: int | None = None) -> None:
        """Greedy is deterministic; nothing to reset."""

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        """Return the greedy action for ``observation``."""
        view = self.interface.read(observation)
        deficit = _deficit(view)
        p = np.maximum(view["success_probability"].astype(np.float64), 1e-6)
        attempts = split_budget(np.append(deficit / p, 0.0), self.interface.budget)
        return self.interface.action(attempts, freshest_first=np.zeros(deficit.size, dtype=bool))


class UniformRandom:
    """Uniform random actions from the environment's action space, seeded by :meth:`reset`.

    Args:
        env: The environment the policy will act in.
        seed: Initial seed of the policy's own generator.
    """

    name = "random"

    def __init__(self, env: gym.Env, seed: int | None = None) -> None:
        self.action_space = env.action_space
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        """Reseed the policy's generator."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        """Draw an action uniformly from the Box action space."""
        low, high = self.action_space.low, self.action_space.high
        return self.rng.uniform(low, high).astype(self.action_space.dtype)
