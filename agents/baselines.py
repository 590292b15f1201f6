"""Baseline scheduling policies: earliest-expiring-first, greedy-by-demand, uniform split, uniform random, idle."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents.scheduling import SchedulingInterface, allocate_in_order
from ceas_gym.envs.link_layer import split_budget


def _deficit(view: dict[str, np.ndarray]) -> np.ndarray:
    """Pairs each link still lacks for its pending requests. ``(E,)`` float >= 0.

    A link whose success probability is 0 this round (down: ``CEASEnvConfig.outages``) lacks none that an attempt
    could cover, so it gets no attempts.
    """
    held = view["inventory"].sum(axis=1)
    deficit = np.maximum(view["demand_pairs"] - held, 0.0)
    return np.where(view["success_probability"] > 0, deficit, 0.0)


def plan_earliest_expiring_first(
    deficit: np.ndarray, deadline: np.ndarray, success_probability: np.ndarray, budget: int
) -> np.ndarray:
    """Attempts per link that cover the earliest-expiring pair demand first (vectorised).

    The deficit of link ``l`` is split into unit demands (one pair each); the ``k``-th unit of a link is consumed
    after its first ``k - 1``, so it expires later. Units are ranked by (link deadline, k, higher success
    probability first, link index) and granted in that order while budget remains (each costs ``1 / p`` attempts in
    expectation). A link's attempts are then ``ceil(units / p)``, trimmed in the same priority order to stay within
    the budget, so the last unit may get fewer attempts than it needs on average.

    Args:
        deficit: Pairs each link lacks. ``(E,)`` >= 0.
        deadline: Earliest deadline of each link's demand (rounds). ``(E,)``.
        success_probability: Per-attempt success ``p`` of each link. ``(E,)`` in (0, 1].
        budget: Attempts available.

    Returns:
        Attempts per link. ``(E,)`` int, summing to at most ``budget``.
    """
    units = np.ceil(deficit).astype(np.int64)
    num_links = units.size
    most = int(units.max(initial=0))
    if most == 0 or budget <= 0:
        return np.zeros(num_links, dtype=np.int64)
    p = np.maximum(success_probability, 1e-6)
    link = np.repeat(np.arange(num_links), most)  # (E * K,) unit -> link
    position = np.tile(np.arange(most), num_links)  # (E * K,) k of the unit within its link
    valid = position < units[link]
    order = np.lexsort((link, -p[link], position, deadline[link]))
    order = order[valid[order]]
    cost = 1.0 / p[link[order]]
    chosen = order[np.cumsum(cost) - cost < budget]  # a unit is started while budget remains
    granted_units = np.bincount(link[chosen], minlength=num_links)
    needed = np.ceil(granted_units / p - 1e-9).astype(np.int64)
    _, first = np.unique(link[chosen], return_index=True)
    priority = np.unique(link[chosen])[np.argsort(first)]
    rest = np.setdiff1d(np.arange(num_links), priority, assume_unique=True)
    return allocate_in_order(needed, np.concatenate([priority, rest]), budget)


class _DeterministicScheduler:
    """Shared construction of the deterministic baselines (read shapes and budget off the environment)."""

    name = "deterministic"

    def __init__(self, env: gym.Env) -> None:
        self.interface = SchedulingInterface.from_env(env)

    def reset(self, seed: int | None = None) -> None:
        """Deterministic: nothing to reset."""


class EarliestExpiringFirst(_DeterministicScheduler):
    """EEF: the budget goes to the demand that expires first; oldest pairs are served first.

    Per round the policy plans with :func:`plan_earliest_expiring_first`: every link's deficit (pending pairs
    minus stored pairs) is split into unit demands ranked by expiry (the link's deadline, then the order in which a
    link consumes its pairs), each costing ``1 / p`` attempts in expectation; ties go to the cheaper link. So when
    the budget is short every link gets its first pair before any link gets its second. Budget left after the plan
    is spread over the links that still have a deficit, in proportion to it, as a hedge against failed attempts;
    anything left after that is unspent. Requests are served oldest-pair-first, using pairs before they expire.

    Args:
        env: The environment the policy will act in (read for shapes and the budget).
    """

    name = "eef"

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        """Return the EEF action for ``observation``."""
        view = self.interface.read(observation)
        deficit = _deficit(view)
        p = np.maximum(view["success_probability"].astype(np.float64), 1e-6)
        budget = self.interface.budget
        attempts = plan_earliest_expiring_first(deficit, view["demand_deadline"], p, budget)
        leftover = budget - int(attempts.sum())
        remaining = np.maximum(deficit - attempts * p, 0.0)
        if leftover > 0 and remaining.sum() > 0:
            attempts += split_budget(np.append(remaining, 0.0), leftover)
        return self.interface.action(attempts, freshest_first=np.zeros(deficit.size, dtype=bool))


class GreedyByDemand(_DeterministicScheduler):
    """Split the whole budget in proportion to each link's expected attempts needed (deficit / p).

    Ignores deadlines; serves oldest pairs first. Spends nothing when no link has a deficit.

    Args:
        env: The environment the policy will act in.
    """

    name = "greedy"

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


class UniformSplit(_DeterministicScheduler):
    """Entanglement-oblivious scheduling: the budget is split equally over all links every round.

    The scheduler of the CEAS paper's random-selection baseline: it looks at neither inventory nor demand.
    Oldest pairs are served first.

    Args:
        env: The environment the policy will act in.
    """

    name = "uniform"

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        """Return the same equal split every round."""
        links = self.interface.num_links
        attempts = split_budget(np.append(np.ones(links), 0.0), self.interface.budget)
        return self.interface.action(attempts, freshest_first=np.zeros(links, dtype=bool))


class Idle(_DeterministicScheduler):
    """The "no communication" reference: every round the whole budget stays unspent, so no pair is generated.

    With no pairs no consensus message travels: each node learns from its own data only. The lower end of the
    bracket a scheduler is placed in (the upper end is perfect communication).

    Args:
        env: The environment the policy will act in.
    """

    name = "idle"

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        """Return zero attempts on every link."""
        links = self.interface.num_links
        return self.interface.action(np.zeros(links, dtype=np.int64), freshest_first=np.zeros(links, dtype=bool))
