"""The vectorised environments ``ceas-train`` trains on: SB3's dummy or subprocess vector, or the batched CEAS one."""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym

from training import hyperparams as hp
from training.residual import ResidualActionVecEnv, ResidualConfig


def make_training_envs(
    env_id: str,
    n_envs: int,
    seed: int,
    env_kwargs: dict[str, Any],
    vec_env: str,
    residual: ResidualConfig | None = None,
    batch_workers: int = 1,
) -> Any:
    """``n_envs`` copies of the env, seeded ``seed, seed + 1, ...``, with episode statistics.

    ``vec_env``: ``"dummy"`` / ``"subproc"`` (Monitor-wrapped envs in SB3's ``DummyVecEnv`` / ``SubprocVecEnv``) or
    ``"batched"`` (the CEAS envs' lock-step batched environment, which reports the same episode statistics; with
    ``batch_workers > 1`` its copies are split over that many worker processes,
    :class:`~ceas_gym.envs.batched_shards.ShardedBatchedEnv`, same trajectories).
    With ``residual``, the envs take residual actions (:class:`training.residual.ResidualActionVecEnv`).

    Raises:
        HyperparameterError: ``"batched"`` for an environment without a batched form.
    """
    venv = _make_vec_env(env_id, n_envs, seed, env_kwargs, vec_env, batch_workers)
    if residual is None:
        return venv
    return ResidualActionVecEnv(venv, env_id, env_kwargs, residual, seed)


def _make_vec_env(
    env_id: str, n_envs: int, seed: int, env_kwargs: dict[str, Any], vec_env: str, batch_workers: int = 1
) -> Any:
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    if vec_env == "batched":
        from ceas_gym.envs.batched_sb3 import batched_ids, make_batched_vec_env

        if env_id not in batched_ids():
            raise hp.HyperparameterError(f"--vec-env batched: available for {', '.join(batched_ids())}, not {env_id}")
        spec = gym.spec(env_id)
        venv = make_batched_vec_env(
            env_id, n_envs, workers=batch_workers, max_episode_steps=spec.max_episode_steps, **env_kwargs
        )
        venv.seed(seed)
        return venv

    vec_env_cls = SubprocVecEnv if vec_env == "subproc" else DummyVecEnv
    factory = functools.partial(make_registered_env, env_id)
    return make_vec_env(factory, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs, vec_env_cls=vec_env_cls)


def make_registered_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` after importing ``ceas_gym``, so it works in fresh (forkserver/spawn) worker processes."""
    return gym.make(env_id, **kwargs)
