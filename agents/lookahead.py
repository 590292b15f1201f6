"""A clairvoyant lookahead scheduler: an upper reference at the same budget, not a deployable policy.

Every round :class:`Lookahead` copies the environment it acts in (``copy.deepcopy``: the network, the models and
the random generators), lets each candidate scheduler (by default EEF, greedy, uniform and the value-aware one) run
the copy for ``horizon`` rounds, and plays the first action of the candidate whose copy ends with the highest
summed honest accuracy. Because the copies carry the environment's own generators, every candidate meets the
round's true generation outcomes, attacks and data draws: the lookahead sees the future a real scheduler cannot
(clairvoyant, model-predictive). It brackets a scheduler from above at the same budget, as perfect communication
(``communication="perfect"``) brackets it from above without a budget.

Cost per step: ``len(candidates) x horizon`` environment steps plus ``len(candidates)`` deep copies (default 4 x 3:
about 12 steps' time per step; Small, one core: ~0.25 s per step).

The policy must act in the environment it was built with (``ceas-eval`` builds each policy on the environment it
then steps); it reads that environment's state, so it needs no observation.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from ceas_gym.config import ConfigError, check_int

DEFAULT_CANDIDATES = ("eef", "greedy", "uniform", "value")


class Lookahead:
    """Clairvoyant lookahead over candidate schedulers (see the module docstring).

    Args:
        env: The CEAS environment the policy acts in (the one it is stepped in).
        candidates: Registered policy names to choose from each round (at least one; no model paths).
        horizon: Rounds each candidate is rolled out on the copy (>= 1).
    """

    name = "lookahead"

    def __init__(self, env: gym.Env, candidates: Sequence[str] = DEFAULT_CANDIDATES, horizon: int = 3) -> None:
        from agents.registry import make_policy  # the registry registers this class: import it when built

        check_int("Lookahead.horizon", horizon, 1)
        if not candidates:
            raise ConfigError("Lookahead.candidates: give at least one registered policy name")
        if "lookahead" in candidates:
            raise ConfigError("Lookahead.candidates: 'lookahead' cannot be its own candidate")
        self.env = env.unwrapped
        if not hasattr(self.env, "round"):
            raise TypeError(f"{type(self.env).__name__} is not a CEAS environment; the lookahead needs its round")
        self.horizon = horizon
        self.candidates = {name: make_policy(name, env) for name in candidates}
        self.chosen: list[str] = []

    def reset(self, seed: int | None = None) -> None:
        """Reset the candidates and forget the choices made."""
        for policy in self.candidates.values():
            policy.reset(seed)
        self.chosen = []

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        """Return the first action of the candidate whose rollout scored best (ties: first in order)."""
        best_name, best_score, best_action = "", -np.inf, None
        for name, policy in self.candidates.items():
            clone = copy.deepcopy(self.env)
            planner = copy.deepcopy(policy)  # the candidate's own state (waiting times) moves on in the rollout
            step_observation, step_info = observation, info
            score, first = 0.0, None
            for _ in range(self.horizon):
                action = planner.act(step_observation, step_info)
                first = action if first is None else first
                step_observation, _, terminated, truncated, step_info = clone.step(action)
                score += float(step_info["accuracy"])
                if terminated or truncated:
                    break
            if score > best_score:
                best_name, best_score, best_action = name, score, first
        for policy in self.candidates.values():  # every candidate's own state follows the real episode
            policy.act(observation, info)
        self.chosen.append(best_name)
        return best_action
