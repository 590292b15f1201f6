"""Policies by name: the baselines under short names, and saved PPO models by path.

``make_policy("eef", env)`` builds a registered policy; ``make_policy("logs/ppo/X_1/best_model/best_model.zip",
env)`` loads a trained model (see :mod:`agents.ppo`). A spec is read as a path when it ends in ``.zip`` or names an
existing file; anything else is looked up in :data:`POLICIES`. Users register their own factories::

    from agents.registry import POLICIES

    @POLICIES.register("mine")
    def make_mine(env, **kwargs):
        return MyPolicy(env)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.base import Policy
from agents.baselines import EarliestExpiringFirst, GreedyByDemand, Idle, UniformRandom, UniformSplit
from agents.exact_lite import ExactLitePolicy
from agents.lookahead import Lookahead
from agents.ppo import PPOPolicy
from agents.value_aware import ValueAware
from ceas_gym.registry import Registry

PolicyFactory = Callable[..., Policy]

POLICIES: Registry[PolicyFactory] = Registry("policy")
POLICIES.add("eef", EarliestExpiringFirst)
POLICIES.add("greedy", GreedyByDemand)
POLICIES.add("random", UniformRandom)
POLICIES.add("uniform", UniformSplit)
POLICIES.add("idle", Idle)
POLICIES.add("value", ValueAware)  # CEAS environments: whole exchanges to trusted links that waited longest
POLICIES.add("lookahead", Lookahead)  # CEAS environments: clairvoyant upper reference (rolls out copies)
POLICIES.add("exact-optimal", ExactLitePolicy)  # small Lite instances (the tiny preset): solved exactly


def is_model_path(spec: str) -> bool:
    """Return True when ``spec`` names a saved model rather than a registered policy."""
    return spec.endswith(".zip") or Path(spec).is_file()


def policy_label(spec: str) -> str:
    """Name of the policy ``spec`` in result tables: the registered name, or ``ppo:<stem>`` for a model path."""
    return f"ppo:{Path(spec).stem}" if is_model_path(spec) else spec


def make_policy(spec: str, env: gym.Env, **kwargs: Any) -> Policy:
    """Build the policy named by ``spec`` for ``env``.

    Args:
        spec: A registered policy name (``eef``, ``greedy``, ``random``, ...) or a path to a saved PPO ``.zip``.
        env: The environment the policy will act in.
        **kwargs: Passed to the registered factory (or to :meth:`PPOPolicy.load`, e.g. ``device``).

    Raises:
        FileNotFoundError: If ``spec`` is a model path that does not exist (the message names the path).
        ceas_gym.registry.UnknownNameError: If ``spec`` is not a registered name (the message lists them).
    """
    if is_model_path(spec):
        return PPOPolicy.load(spec, env=env, name=policy_label(spec), **kwargs)
    return POLICIES.get(spec)(env, **kwargs)
