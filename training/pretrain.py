"""Warm start by behaviour cloning: fit a fresh PPO policy to a baseline scheduler before PPO takes over.

The ``pretrain`` entry of the hyper-parameter file (a mapping, loaded strictly by :class:`PretrainConfig`) makes
``ceas-train`` run, before the first PPO update:

1. **Demonstrations.** The expert (a registered policy such as ``eef``) acts in the training environments for
   ``timesteps`` steps (summed over the parallel environments). Each environment gets its own expert instance,
   reset with the environment's seed. The steps run through the training ``VecNormalize``, so its observation and
   return statistics are warmed up on the expert's state distribution. They are not counted in the model's
   ``num_timesteps``.
2. **Actor.** The policy is fitted for ``epochs`` passes of minibatch Adam on the normalised observations.
   For ``Box`` actions the loss is the squared error of the distribution mean against the expert's action; for
   other action spaces it is the expert action's negative log-likelihood. ``log_std``, when set, then fixes the
   exploration noise of a Gaussian policy. SB3's default std of 1 spans the whole ``[0, 1]`` action box and would
   drown the cloned schedule.
3. **Critic.** The value head is fitted to the discounted normalised return of the expert's own steps,
   ``G_t = r_t + gamma * G_{t+1}``, cut at episode ends and at the end of the collection.

This is the warm start of "PPO from demonstrations" (behaviour cloning, then on-policy fine-tuning). PPO's clipped
updates then move away from the expert only where the environment's reward says so.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from tqdm.auto import tqdm

from training.copy_baselines import CopyBaselines
from training.hyperparams import HyperparameterError, load_baseline_entry


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of the behaviour-cloning warm start (the ``pretrain`` hyper-parameter).

    Attributes:
        policy: Registered policy to imitate (``eef``, ``greedy``, ...; see :mod:`agents.registry`).
        timesteps: Demonstration steps, summed over the parallel environments (>= 1).
        epochs: Passes over the demonstrations (>= 1).
        batch_size: Minibatch size (>= 1).
        learning_rate: Adam step size of the fit (> 0).
        log_std: Log standard deviation the Gaussian policy keeps after the fit, or None to leave it alone.
        value: Also fit the value head to the expert's discounted returns.
        bound_margin: For ``Box`` actions, expert entries at a bound of the box are fitted to lie this far beyond
            it (>= 0). The environment clips them back, so the action is the same, but fit errors and exploration
            noise of about this size no longer leak past the bound. In a budget split this keeps tiny weights off
            links the expert gives nothing.
    """

    policy: str = "eef"
    timesteps: int = 20_000
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    log_std: float | None = -1.5
    value: bool = True
    bound_margin: float = 0.0

    def __post_init__(self) -> None:
        for name in ("timesteps", "epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise HyperparameterError(f"pretrain.{name} = {value!r}: must be an integer >= 1")
        if not isinstance(self.learning_rate, (int, float)) or not self.learning_rate > 0:
            raise HyperparameterError(f"pretrain.learning_rate = {self.learning_rate!r}: must be a number > 0")
        if self.log_std is not None and (not isinstance(self.log_std, (int, float)) or not math.isfinite(self.log_std)):
            raise HyperparameterError(f"pretrain.log_std = {self.log_std!r}: must be a finite number or null")
        if not isinstance(self.bound_margin, (int, float)) or not 0.0 <= self.bound_margin < math.inf:
            raise HyperparameterError(f"pretrain.bound_margin = {self.bound_margin!r}: must be a number >= 0")
        if not isinstance(self.value, bool):
            raise HyperparameterError(f"pretrain.value = {self.value!r}: must be true or false")
        if not isinstance(self.policy, str):
            raise HyperparameterError(f"pretrain.policy = {self.policy!r}: must be a registered policy name")


def load_pretrain_config(value: Mapping[str, Any] | None) -> PretrainConfig | None:
    """Read the ``pretrain`` entry strictly (unknown keys raise), or None when the entry is absent or null.

    Raises:
        HyperparameterError: On a value that is not a mapping, an unknown key, an out-of-range value, or a policy
            name that is not registered.
    """
    return load_baseline_entry("pretrain", value, PretrainConfig, "{policy: eef, timesteps: 20000}")


@dataclass(frozen=True, eq=False)  # holds arrays
class Demonstrations:
    """Expert steps: normalised observations, actions, and discounted normalised returns.

    Attributes:
        observations: Policy inputs per key (or one array), ``(T, ...)`` float32, normalised as PPO will see them.
        actions: ``(T, ...)`` the expert's actions.
        returns: ``(T,)`` float32 discounted returns of the normalised rewards (the critic's targets).
        mean_episode_return: Mean undiscounted raw return of the episodes finished during collection (NaN if none).
    """

    observations: dict[str, np.ndarray] | np.ndarray
    actions: np.ndarray
    returns: np.ndarray
    mean_episode_return: float


def _stack(steps: list[Any]) -> dict[str, np.ndarray] | np.ndarray:
    if isinstance(steps[0], dict):
        return {key: np.concatenate([step[key] for step in steps]).astype(np.float32) for key in steps[0]}
    return np.concatenate(steps).astype(np.float32)


def collect_demonstrations(
    venv: Any, env_id: str, env_kwargs: Mapping[str, Any], config: PretrainConfig, seed: int, gamma: float
) -> Demonstrations:
    """Run the expert in ``venv`` (an SB3 VecEnv, possibly under ``VecNormalize``) for ``config.timesteps`` steps.

    Args:
        venv: The training environments.
        env_id: Their environment id (the expert is built on one single environment of it).
        env_kwargs: Their keyword arguments.
        config: The warm start's settings.
        seed: Seed of the run; expert ``i`` is reset with ``seed + i`` (``seed + i + k * copies`` for its k-th
            next episode).
        gamma: Discount of the critic's targets.
    """
    from stable_baselines3.common.vec_env import VecNormalize

    copies = venv.num_envs
    experts = CopyBaselines(config.policy, env_id, env_kwargs, copies, seed)
    experts.reset()
    normalizer = venv if isinstance(venv, VecNormalize) else None
    normalized = venv.reset()  # consumes the seeds the model gave the environments
    raw = normalizer.get_original_obs() if normalizer is not None else normalized
    infos: list[dict[str, Any]] = [{} for _ in range(copies)]
    raw_steps, actions, raw_rewards, dones = [], [], [], []
    running = np.zeros(copies)
    finished: list[float] = []
    steps = max(1, math.ceil(config.timesteps / copies))
    for _ in tqdm(range(steps), desc=f"demonstrations ({config.policy})", leave=False, disable=None):
        action = experts.act(raw, infos)
        raw_steps.append(raw)
        actions.append(action)
        normalized, reward, done, infos = venv.step(action)
        reward = normalizer.get_original_reward() if normalizer is not None else reward
        raw = normalizer.get_original_obs() if normalizer is not None else normalized
        raw_rewards.append(np.asarray(reward, dtype=np.float64))
        dones.append(np.asarray(done, dtype=bool))
        running += raw_rewards[-1]
        finished.extend(running[dones[-1]].tolist())
        running[dones[-1]] = 0.0
        experts.episodes_ended(dones[-1])
    rewards = np.stack(raw_rewards)  # (steps, copies)
    if normalizer is not None and normalizer.norm_reward:
        rewards = normalizer.normalize_reward(rewards)
    returns = discounted_returns(rewards, np.stack(dones), gamma)
    observations = [normalizer.normalize_obs(step) if normalizer is not None else step for step in raw_steps]
    return Demonstrations(
        observations=_stack(observations),
        actions=np.concatenate(actions).astype(np.float32),
        returns=returns.reshape(-1).astype(np.float32),
        mean_episode_return=float(np.mean(finished)) if finished else float("nan"),
    )


def discounted_returns(rewards: np.ndarray, dones: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = r_t + gamma * G_{t+1} * (1 - done_t)`` per column, ``G`` after the last row taken as 0.

    Args:
        rewards: ``(T, copies)`` rewards.
        dones: ``(T, copies)`` True where an episode ended at that step.
        gamma: Discount in [0, 1].

    Returns:
        ``(T, copies)`` float64 returns.
    """
    returns = np.zeros(rewards.shape, dtype=np.float64)
    following = np.zeros(rewards.shape[1], dtype=np.float64)
    for step in range(rewards.shape[0] - 1, -1, -1):  # loop over time, vectorised over copies
        following = rewards[step] + gamma * following * (~dones[step])
        returns[step] = following
    return returns


def fit_policy(model: Any, demonstrations: Demonstrations, config: PretrainConfig, seed: int) -> dict[str, float]:
    """Fit ``model.policy`` to the demonstrations (actor, and critic when ``config.value``); return final losses."""
    from stable_baselines3.common.utils import obs_as_tensor

    policy = model.policy
    device = policy.device
    generator = np.random.default_rng(seed)
    count = demonstrations.actions.shape[0]
    box_actions = isinstance(model.action_space, spaces.Box)
    targets = demonstrations.actions
    if box_actions and config.bound_margin > 0:
        low, high = model.action_space.low, model.action_space.high
        targets = np.where(targets <= low, low - config.bound_margin, targets)
        targets = np.where(targets >= high, high + config.bound_margin, targets).astype(np.float32)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)
    policy.set_training_mode(True)
    losses = {"actor": float("nan"), "critic": float("nan")}
    for _ in tqdm(range(config.epochs), desc="behaviour cloning", leave=False, disable=None):
        order = generator.permutation(count)
        actor_sum = critic_sum = 0.0
        for start in range(0, count, config.batch_size):
            index = order[start : start + config.batch_size]
            if isinstance(demonstrations.observations, dict):
                batch = {key: value[index] for key, value in demonstrations.observations.items()}
            else:
                batch = demonstrations.observations[index]
            observations = obs_as_tensor(batch, device)
            target = torch.as_tensor(targets[index], device=device)
            distribution = policy.get_distribution(observations)
            if box_actions:
                actor_loss = torch.nn.functional.mse_loss(distribution.distribution.mean, target)
            else:
                actor_loss = -distribution.log_prob(target).mean()
            loss = actor_loss
            if config.value:
                values = policy.predict_values(observations).flatten()
                critic_loss = torch.nn.functional.mse_loss(
                    values, torch.as_tensor(demonstrations.returns[index], device=device)
                )
                loss = loss + critic_loss
                critic_sum += critic_loss.item() * index.size
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            actor_sum += actor_loss.item() * index.size
        losses = {"actor": actor_sum / count, "critic": critic_sum / count if config.value else float("nan")}
    policy.set_training_mode(False)
    if config.log_std is not None and hasattr(policy, "log_std"):
        with torch.no_grad():
            policy.log_std.fill_(config.log_std)
    return losses


def pretrain(
    model: Any, env_id: str, env_kwargs: Mapping[str, Any], config: PretrainConfig, seed: int
) -> dict[str, Any]:
    """Behaviour-clone ``config.policy`` into ``model`` (see the module docstring); return a summary record."""
    venv = model.get_env()
    demonstrations = collect_demonstrations(venv, env_id, env_kwargs, config, seed, getattr(model, "gamma", 0.99))
    losses = fit_policy(model, demonstrations, config, seed)
    return {
        "policy": config.policy,
        "demonstration_steps": int(demonstrations.actions.shape[0]),
        "expert_mean_episode_return": demonstrations.mean_episode_return,
        "actor_loss": losses["actor"],
        "critic_loss": losses["critic"],
        "config": dataclasses.asdict(config),
    }
