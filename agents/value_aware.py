"""A value-aware scheduler for the CEAS environments: whole exchanges first, to trusted links that waited longest.

EEF and greedy think in pairs; a consensus exchange needs ``pairs_per_exchange`` of them on one link and is
all-or-nothing. When the budget is short, spreading single pairs over every link completes no exchange at all.
:class:`ValueAware` plans in whole exchanges and ranks them by what an exchange is worth to the learning, read from
the observation:

* **trust**: an exchange between nodes ``u`` and ``v`` is worth ``min(trust_u, trust_v)`` (a link to a node whose
  updates the protocol distrusts spreads its model), and nothing if either is quarantined (no demand there);
* **staleness**: models of nodes that have not exchanged for ``s`` rounds have drifted apart on non-IID data, so
  the worth grows with the rounds since the link last had an exchange granted (``1 + s``).

Exchanges are ranked by (tier, worth, success probability): every link with demand gets its first exchange before
any gets a second, in order of worth; each exchange costs its missing pairs over ``p`` attempts in expectation, and
exchanges are taken in that order while the budget lasts. Oldest pairs are served first. Deterministic.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents.scheduling import SchedulingInterface, allocate_in_order


def pairs_per_exchange(env: gym.Env) -> int:
    """Pairs one consensus exchange consumes in ``env``'s protocol (1 where the protocol does not say)."""
    config = getattr(getattr(env.unwrapped, "protocol", None), "config", None)
    return max(1, int(getattr(config, "pairs_per_exchange", 1)))


def plan_exchanges(
    demand: np.ndarray, held: np.ndarray, p: np.ndarray, worth: np.ndarray, unit: int, budget: int
) -> np.ndarray:
    """Attempts per link that complete whole exchanges in order of (tier, worth, p) while the budget lasts.

    Args:
        demand: Pairs each link's pending exchanges need. ``(L,)`` >= 0.
        held: Pairs each link stores. ``(L,)`` >= 0.
        p: Per-attempt success probability. ``(L,)`` in (0, 1].
        worth: Value of one exchange on each link. ``(L,)`` >= 0; links of worth 0 get nothing.
        unit: Pairs per exchange (>= 1).
        budget: Attempts available.

    Returns:
        Attempts per link, ``(L,)`` int summing to at most ``budget``.
    """
    links = demand.size
    exchanges = np.where(worth > 0, np.ceil(demand / unit - 1e-9), 0).astype(np.int64)
    most = int(exchanges.max(initial=0))
    if most == 0 or budget <= 0:
        return np.zeros(links, dtype=np.int64)
    link = np.repeat(np.arange(links), most)
    tier = np.tile(np.arange(most), links)
    valid = tier < exchanges[link]
    missing_after = np.maximum((tier + 1) * unit - held[link], 0.0)
    missing_before = np.maximum(tier * unit - held[link], 0.0)
    cost = (missing_after - missing_before) / p[link]  # attempts this exchange adds, in expectation
    order = np.lexsort((link, -p[link], -worth[link], tier))
    order = order[valid[order]]
    chosen = order[np.cumsum(cost[order]) <= budget + 1e-9]
    needed = np.ceil(np.bincount(link[chosen], cost[chosen], minlength=links) - 1e-9).astype(np.int64)
    ranked = np.lexsort((np.arange(links), -p, -worth))
    return allocate_in_order(needed, ranked, budget)


class ValueAware:
    """Whole exchanges first, to trusted links that waited longest (see the module docstring).

    Args:
        env: The CEAS environment the policy acts in (read for shapes, budget, links and pairs per exchange).
    """

    name = "value"

    def __init__(self, env: gym.Env) -> None:
        self.interface = SchedulingInterface.from_env(env)
        base = env.unwrapped
        instance = getattr(base, "instance", None)
        if instance is None or not hasattr(base, "num_nodes"):
            raise TypeError(f"{type(base).__name__} is not a CEAS environment; the value policy needs its links")
        self.edges = np.asarray(instance.edges)
        self.unit = pairs_per_exchange(env)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Forget the links' waiting times (deterministic: the seed is not used)."""
        del seed
        self.waited = np.zeros(self.interface.num_links)
        self._requested: np.ndarray | None = None

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        """Return the value-aware action for ``observation``."""
        view = self.interface.read(observation)
        if self._requested is not None:  # last round's outcome: links whose exchange got its pairs reset to 0
            served = self._requested & (view["granted_fraction"] > 0)
            self.waited = np.where(served, 0.0, self.waited + 1.0)
        trust = np.where(view["quarantined"] > 0, 0.0, view["trust"].astype(np.float64))
        worth = np.minimum(trust[self.edges[:, 0]], trust[self.edges[:, 1]]) * (1.0 + self.waited)
        demand = view["demand_pairs"].astype(np.float64)
        held = view["inventory"].sum(axis=1).astype(np.float64)
        p = np.maximum(view["success_probability"].astype(np.float64), 1e-6)
        up = view["success_probability"] > 0  # a down link (outages) cannot be served by attempts this round
        attempts = plan_exchanges(np.where(up, demand, 0.0), held, p, worth, self.unit, self.interface.budget)
        self._requested = demand > 0
        return self.interface.action(attempts, freshest_first=np.zeros(demand.size, dtype=bool))
