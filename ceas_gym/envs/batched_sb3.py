"""A stable-baselines3 ``VecEnv`` over :class:`~ceas_gym.envs.batched_ceas.BatchedEntanglementSchedulingEnv`.

SB3 expects its own vector API: ``reset() -> obs``, ``step_wait() -> (obs, rewards, dones, infos)`` with one info
dict per environment, the last observation of a finished episode in ``infos[i]["terminal_observation"]`` and
``infos[i]["TimeLimit.truncated"]`` for truncations, and seeds set through :meth:`seed` before a reset. The
batched environment resets finished copies within the step (same-step autoreset), which is exactly SB3's
convention, so the adapter reshapes the info and adds the episode statistics SB3's ``Monitor`` would add per
environment (``infos[i]["episode"] = {"r": return, "l": length, "t": seconds since creation}``), so SB3's logger
and ``ceas-train``'s callbacks see the same info keys as with ``DummyVecEnv``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from ceas_gym.envs.batched_ceas import BatchedEntanglementSchedulingEnv
from ceas_gym.envs.batched_shards import ShardedBatchedEnv
from ceas_gym.envs.registration import CEAS, ENVIRONMENTS


class BatchedVecEnv(VecEnv):
    """SB3 view of a batched CEAS environment.

    Args:
        env: The batched environment (``num_envs`` copies).
    """

    def __init__(self, env: BatchedEntanglementSchedulingEnv | ShardedBatchedEnv) -> None:
        self.env = env
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None
        self._created = time.time()
        self._episode_return = np.zeros(env.num_envs)
        self._episode_length = np.zeros(env.num_envs, dtype=np.int64)

    def reset(self) -> Any:
        """Reset every copy with the seeds given to :meth:`seed` (if any), then forget them."""
        seeds = None if all(seed is None for seed in self._seeds) else list(self._seeds)
        observation, _ = self.env.reset(seed=seeds)
        self._episode_return[:] = 0.0
        self._episode_length[:] = 0
        self._reset_seeds()
        self._reset_options()
        return observation

    def step_async(self, actions: np.ndarray) -> None:
        """Store the actions of the next :meth:`step_wait`."""
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[Any, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Step every copy; finished copies are already reset (their last observation is in the info)."""
        if self._actions is None:
            raise RuntimeError("step_wait() called before step_async()")
        observation, rewards, terminated, truncated, info = self.env.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        self._episode_return += rewards
        self._episode_length += 1
        infos = per_copy_infos(info, self.num_envs)
        for copy in np.flatnonzero(dones):
            infos[copy]["terminal_observation"] = info["final_obs"][copy]
            infos[copy]["TimeLimit.truncated"] = bool(truncated[copy] and not terminated[copy])
            final = info["final_info"]
            infos[copy].update({key: final[key][copy].item() for key in final if not key.startswith("_")})
            infos[copy]["episode"] = {
                "r": float(self._episode_return[copy]),
                "l": int(self._episode_length[copy]),
                "t": round(time.time() - self._created, 6),
            }
            self._episode_return[copy] = 0.0
            self._episode_length[copy] = 0
        return observation, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        """Stop the environment's worker processes, if it has any (:class:`ShardedBatchedEnv`)."""
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The batched environment's attribute, once per selected copy (the copies share it)."""
        return [getattr(self.env, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Not supported: the copies share one object."""
        raise NotImplementedError("BatchedVecEnv.set_attr: the copies share one environment object")

    def env_method(self, method_name: str, *args: Any, indices: VecEnvIndices = None, **kwargs: Any) -> list[Any]:
        """Not supported: there is no per-copy environment object to call."""
        raise NotImplementedError(f"BatchedVecEnv.env_method({method_name!r}): the copies are not separate objects")

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """No copy is wrapped by a ``gymnasium.Wrapper``."""
        return [False for _ in self._get_indices(indices)]


def per_copy_infos(info: dict[str, Any], copies: int) -> list[dict[str, Any]]:
    """Gymnasium's vector info (arrays with ``_key`` masks) as one dict of Python scalars per copy."""
    keys = [key for key in info if not key.startswith("_") and not key.startswith("final")]
    infos: list[dict[str, Any]] = [{} for _ in range(copies)]
    for key in keys:
        values = np.asarray(info[key]).tolist()  # Python scalars in one call rather than one .item() per copy
        mask = info.get(f"_{key}")
        for copy in range(copies) if mask is None else np.flatnonzero(mask).tolist():
            infos[copy][key] = values[copy]
    return infos


def make_batched_vec_env(env_id_or_preset: str, num_envs: int, workers: int = 1, **kwargs: Any) -> BatchedVecEnv:
    """A :class:`BatchedVecEnv` of ``num_envs`` copies of a CEAS env id (``...-Small-v0`` / ``-v0``) or preset.

    With ``workers > 1`` the copies are split over that many worker processes (:class:`ShardedBatchedEnv`: same
    trajectories, steps in parallel); call ``close()`` to stop them.
    """
    preset = PRESET_OF_ID.get(env_id_or_preset.split(":")[-1], env_id_or_preset)
    if workers > 1:
        return BatchedVecEnv(ShardedBatchedEnv(num_envs, workers=workers, preset=preset, **kwargs))
    return BatchedVecEnv(BatchedEntanglementSchedulingEnv(num_envs, preset=preset, **kwargs))


PRESET_OF_ID = {env_id: kwargs["preset"] for env_id, entry_point, _, kwargs in ENVIRONMENTS if entry_point == CEAS}
"""Registered ids whose batched form exists (every CEAS id of the registration table), and their presets."""


def batched_ids() -> Sequence[str]:
    """Registered ids with a batched vector environment."""
    return tuple(PRESET_OF_ID)
