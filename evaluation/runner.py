"""Run policies x environments x seeds, one episode each, in parallel processes; collect tidy rows.

Conventions:

* One task = one episode of one policy on one environment from ``env.reset(seed=seed)`` with
  ``policy.reset(seed)``. Tasks are ordered env-major, then policy, then seed, and results come back in that
  order whatever the number of workers (``concurrent.futures.ProcessPoolExecutor``; ``workers <= 1`` runs in
  this process) or the backend (``backend="ray"``: one Ray task per episode, :mod:`training.ray_backend`).
* Metrics are the env's scalar ``info`` values (ints, floats, bools as 0/1; other values are skipped). An episode
  row holds ``env``, ``policy``, ``seed``, ``return`` (sum of rewards), ``length`` (rounds), every scalar metric at
  the last round under its own name, its mean over the rounds as ``<key>_mean`` and, for the keys of
  :data:`FINAL_KEYS`, its mean over the last 10 % of rounds (at least one) as ``<key>_final``.
* Identity columns win over ``info`` keys of the same name (the env's own ``round`` counter is dropped in
  favour of ``round`` / ``length``).
* A round row (kept only when asked for) holds ``env``, ``policy``, ``seed``, ``round`` (1-based), ``reward`` and
  every scalar metric of that round.
* Worker processes run torch with one thread each (the small policy networks gain nothing from more).
* Each worker process caches its environments and policies (by env id, kwargs and policy spec); every episode
  starts from a seeded reset, so the cache does not change results.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import gymnasium as gym
import numpy as np

import ceas_gym  # noqa: F401  (registers the environments in worker processes)
from agents.base import Policy
from agents.registry import is_model_path, make_policy, policy_label

FINAL_KEYS = ("accuracy", "accuracy_worst", "accuracy_ideal_aggregate")
"""Metrics whose final value (mean of the last 10 % of rounds) the episode row also holds, as ``<key>_final``."""

FINAL_FRACTION = 0.1
"""Share of an episode's last rounds that ``<key>_final`` averages."""


@dataclass(frozen=True)
class EpisodeTask:
    """One episode to run.

    Attributes:
        env_id: Registered environment id.
        policy: Policy spec: a registered name or a path to a saved model.
        seed: Seed of the env reset and of the policy.
        env_kwargs_json: Environment keyword arguments as JSON (hashable, picklable).
        keep_rounds: Return the per-round rows as well.
        trust_pickle: Let a model's legacy pickled normaliser load (runs the file's code; :mod:`agents.normalizer_io`).
    """

    env_id: str
    policy: str
    seed: int
    env_kwargs_json: str = "{}"
    keep_rounds: bool = False
    trust_pickle: bool = False


@dataclass
class EpisodeResult:
    """What one episode produced: its row and (if kept) its round rows."""

    episode: dict[str, Any]
    rounds: list[dict[str, Any]] = field(default_factory=list)


def scalar_metrics(info: dict[str, Any]) -> dict[str, float]:
    """The real-scalar entries of ``info`` as floats (bools as 0/1)."""
    return {key: float(value) for key, value in info.items() if isinstance(value, Real)}


_ENVS: dict[tuple[str, str], gym.Env] = {}
_POLICIES: dict[tuple[str, str, str, bool], Policy] = {}


def _cached_env(env_id: str, env_kwargs_json: str) -> gym.Env:
    key = (env_id, env_kwargs_json)
    if key not in _ENVS:
        _ENVS[key] = gym.make(env_id, **json.loads(env_kwargs_json))
    return _ENVS[key]


def _cached_policy(spec: str, env_id: str, env_kwargs_json: str, trust_pickle: bool = False) -> Policy:
    key = (spec, env_id, env_kwargs_json, trust_pickle)
    if key not in _POLICIES:
        options = {"trust_pickle": True} if trust_pickle and is_model_path(spec) else {}
        _POLICIES[key] = make_policy(spec, _cached_env(env_id, env_kwargs_json), **options)
    return _POLICIES[key]


def run_episode(task: EpisodeTask) -> EpisodeResult:
    """Run one episode of ``task``; return its tidy rows."""
    env = _cached_env(task.env_id, task.env_kwargs_json)
    policy = _cached_policy(task.policy, task.env_id, task.env_kwargs_json, task.trust_pickle)
    policy.reset(task.seed)
    observation, info = env.reset(seed=task.seed)
    identity = {"env": task.env_id, "policy": policy_label(task.policy), "seed": task.seed}
    rewards: list[float] = []
    per_round: list[dict[str, float]] = []
    done = False
    while not done:
        observation, reward, terminated, truncated, info = env.step(policy.act(observation, info))
        rewards.append(float(reward))
        per_round.append(scalar_metrics(info))
        done = terminated or truncated
    keys = list(per_round[-1]) if per_round else []
    means = {f"{key}_mean": float(np.mean([row.get(key, np.nan) for row in per_round])) for key in keys}
    episode = with_metrics({**identity, "return": float(np.sum(rewards)), "length": len(rewards)}, per_round[-1])
    tail = per_round[-max(1, int(np.ceil(FINAL_FRACTION * len(per_round)))) :]
    finals = {f"{key}_final": float(np.mean([row[key] for row in tail])) for key in FINAL_KEYS if key in keys}
    episode = with_metrics(episode, {**means, **finals})
    rounds = []
    if task.keep_rounds:
        rounds = [
            with_metrics({**identity, "round": index + 1, "reward": reward}, metrics)
            for index, (reward, metrics) in enumerate(zip(rewards, per_round, strict=True))
        ]
    return EpisodeResult(episode, rounds)


def with_metrics(row: dict[str, Any], metrics: dict[str, float]) -> dict[str, Any]:
    """``row`` extended by ``metrics``; a metric named like an existing column (e.g. ``round``) is left out."""
    return {**row, **{key: value for key, value in metrics.items() if key not in row}}


def make_tasks(
    env_ids: Sequence[str],
    policies: Sequence[str],
    seeds: Sequence[int],
    env_kwargs: dict[str, Any] | None = None,
    keep_rounds: bool = False,
    trust_pickle: bool = False,
) -> list[EpisodeTask]:
    """The grid of tasks, env-major, then policy, then seed."""
    kwargs_json = json.dumps(env_kwargs or {}, sort_keys=True)
    return [
        EpisodeTask(env_id, policy, int(seed), kwargs_json, keep_rounds, trust_pickle)
        for env_id in env_ids
        for policy in policies
        for seed in seeds
    ]


def _init_worker() -> None:
    """One torch thread per worker process: the workers already use the cores in parallel."""
    import torch

    torch.set_num_threads(1)


BACKENDS = ("local", "ray")


def run_tasks(
    tasks: Sequence[EpisodeTask],
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    backend: str = "local",
    address: str | None = None,
) -> list[EpisodeResult]:
    """Run ``tasks`` (in ``workers`` processes when > 1, or as Ray tasks); results in task order.

    Args:
        tasks: The episodes.
        workers: Worker processes of the local backend; ``<= 1`` runs everything in this process.
        progress: Called with 1 after each finished episode (e.g. a tqdm bar's ``update``).
        backend: ``"local"`` (this machine's processes) or ``"ray"`` (one Ray task per episode; ``workers`` is
            ignored, the cluster's CPUs set the parallelism).
        address: Ray cluster address for ``backend="ray"`` (``None``: a private local Ray instance).

    Raises:
        ValueError: On an unknown backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend = {backend!r}: allowed are {', '.join(BACKENDS)}")
    if backend == "ray":
        from training.ray_backend import ray_map

        return ray_map(run_episode, list(tasks), address, progress)
    tick = progress or (lambda _: None)
    if workers <= 1:
        results = []
        for task in tasks:
            results.append(run_episode(task))
            tick(1)
        return results
    ordered: list[EpisodeResult | None] = [None] * len(tasks)
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker) as pool:
        futures = {pool.submit(run_episode, task): index for index, task in enumerate(tasks)}
        for future in as_completed(futures):
            ordered[futures[future]] = future.result()
            tick(1)
    return [result for result in ordered if result is not None]
