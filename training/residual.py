"""Residual policies: PPO learns a bounded correction added to a baseline scheduler's action.

The ``residual`` entry of the hyper-parameter file (a mapping, loaded strictly by :class:`ResidualConfig`) makes
``ceas-train`` train PPO on

    a = clip(a_base(s) + scale * r,  low, high),   r in [-1, 1]^d,

where ``a_base`` is a registered policy (``eef``, ``greedy``, ...) acting on the same observation and ``r`` is the
PPO policy's action (residual policy learning: Silver et al., 2018, arXiv:1812.06298; Johannink et al., ICRA 2019).
The action network's last layer starts at zero, so the policy's mean residual is exactly 0 and the deterministic
policy before any update *is* the baseline. Exploration and PPO's KL limit then act in residual units: with
``scale = 0.01`` and ``log_std_init = -1`` a budget weight moves by about 0.004 (one attempt in 250) per standard
deviation, whatever the size of the baseline's own entries.

Pieces:

* :class:`ResidualActionVecEnv` wraps the training (and evaluation) ``VecEnv`` below any ``VecNormalize``: it keeps
  one baseline instance per copy, feeds it the copy's raw observation, and steps the inner env with the composed
  action. Its action space is ``Box(-1, 1)`` of the inner shape.
* :func:`agents.residual.compose_action` is the one formula, shared with the evaluation side.
* :func:`save_residual` writes ``residual.json`` beside the run's models; :class:`agents.ppo.PPOPolicy` reads it
  back and composes its actions with a fresh baseline, so ``ceas-eval`` and the results page evaluate a residual
  model as it was trained.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from agents.residual import RESIDUAL_FILE, compose_action
from training.copy_baselines import CopyBaselines
from training.hyperparams import HyperparameterError, load_baseline_entry


@dataclass(frozen=True)
class ResidualConfig:
    """Settings of a residual policy (the ``residual`` hyper-parameter).

    Attributes:
        policy: Registered baseline whose action the residual corrects (``eef``, ``greedy``, ...).
        scale: Largest change of an action entry, in the action's own units (> 0): the residual ``r`` in
            ``[-1, 1]`` adds ``scale * r``.
    """

    policy: str = "eef"
    scale: float = 0.01

    def __post_init__(self) -> None:
        if not isinstance(self.policy, str):
            raise HyperparameterError(f"residual.policy = {self.policy!r}: must be a registered policy name")
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not 0 < self.scale < math.inf:
            raise HyperparameterError(f"residual.scale = {self.scale!r}: must be a finite number > 0")


def load_residual_config(value: Mapping[str, Any] | None) -> ResidualConfig | None:
    """Read the ``residual`` entry strictly (unknown keys raise), or None when the entry is absent or null.

    Raises:
        HyperparameterError: On a value that is not a mapping, an unknown key, an out-of-range value, or a policy
            name that is not registered.
    """
    return load_baseline_entry("residual", value, ResidualConfig, "{policy: eef, scale: 0.01}")


def check_residual_space(action_space: gym.Space) -> spaces.Box:
    """Return ``action_space`` if a residual can be added to it (a bounded ``Box``); raise otherwise.

    Raises:
        HyperparameterError: For a discrete or unbounded action space.
    """
    if not isinstance(action_space, spaces.Box) or not (
        np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))
    ):
        raise HyperparameterError(f"residual: needs a bounded Box action space, got {action_space}")
    return action_space


def residual_space(action_space: spaces.Box) -> spaces.Box:
    """The residual's action space: ``Box(-1, 1)`` of the base action's shape (float32)."""
    return spaces.Box(-1.0, 1.0, shape=action_space.shape, dtype=np.float32)


class ResidualActionVecEnv(VecEnvWrapper):
    """Steps the inner ``VecEnv`` with :func:`compose_action` of one baseline per copy and the given residuals.

    Wrap the raw environments (below any ``VecNormalize``): the baselines read the observations as the environment
    returns them.

    Args:
        venv: The environments (an SB3 ``VecEnv`` with a bounded ``Box`` action space).
        env_id: Their environment id (each baseline is built on one single environment of it).
        env_kwargs: Their keyword arguments.
        config: The residual's settings.
        seed: Baseline ``i`` is reset with ``seed + i``, and with ``seed + i + k * num_envs`` for its k-th next
            episode (what randomised baselines draw from; EEF and greedy draw nothing).
    """

    def __init__(
        self, venv: VecEnv, env_id: str, env_kwargs: Mapping[str, Any], config: ResidualConfig, seed: int = 0
    ) -> None:
        base_space = check_residual_space(venv.action_space)
        super().__init__(venv, action_space=residual_space(base_space))
        self.base_space = base_space
        self.config = config
        self.baselines = CopyBaselines(config.policy, env_id, env_kwargs, venv.num_envs, seed)
        self._observation: Any = None
        self._infos: list[dict[str, Any]] = [{} for _ in range(venv.num_envs)]

    def reset(self) -> Any:
        """Reset the environments and every baseline."""
        observation = self.venv.reset()
        self.baselines.reset()
        self._observation = observation
        self._infos = [{} for _ in range(self.num_envs)]
        return observation

    def base_actions(self) -> np.ndarray:
        """The baselines' actions for the current observations, ``(num_envs, d)``."""
        return self.baselines.act(self._observation, self._infos)

    def step_async(self, actions: np.ndarray) -> None:
        """Send the composed actions of the residuals ``actions`` ``(num_envs, d)``."""
        self.venv.step_async(compose_action(self.base_actions(), actions, self.config.scale, self.base_space))

    def step_wait(self) -> Any:
        """Step result of the inner env; copies that auto-reset start their baseline's next episode."""
        observation, rewards, dones, infos = self.venv.step_wait()
        self.baselines.episodes_ended(dones)
        self._observation, self._infos = observation, list(infos)
        return observation, rewards, dones, infos


def zero_action_mean(model: Any) -> None:
    """Zero the last layer of the policy's action network, so the mean residual is 0 for every observation."""
    with torch.no_grad():
        for parameter in model.policy.action_net.parameters():
            parameter.zero_()


def save_residual(folder: Path, config: ResidualConfig) -> Path:
    """Write ``folder/residual.json`` (the settings a model of the run needs to act) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RESIDUAL_FILE
    path.write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n", encoding="utf-8")
    return path
