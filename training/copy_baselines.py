"""One instance of a registered baseline policy per copy of a vectorised environment.

Used where a baseline acts alongside PPO's environments: the behaviour-cloning warm start's expert
(:mod:`training.pretrain`) and a residual policy's baseline (:mod:`training.residual`). Seeding: the instance of copy
``i`` is reset with ``seed + i`` at the start and with ``seed + i + k * copies`` for its k-th next episode, which is
what randomised baselines draw from (EEF and greedy draw nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np


def split_copies(observation: Any, copies: int) -> list[Any]:
    """A batched observation (an array, or a dict of arrays) as one observation per copy."""
    if isinstance(observation, dict):
        return [{key: value[index] for key, value in observation.items()} for index in range(copies)]
    return [observation[index] for index in range(copies)]


class CopyBaselines:
    """``copies`` instances of the registered policy ``policy``, each built on one single environment of ``env_id``.

    Args:
        policy: Registered policy name (``eef``, ``greedy``, ...; see :mod:`agents.registry`).
        env_id: The environment id of the copies.
        env_kwargs: Their keyword arguments (so the policy reads observations in the copies' form).
        copies: Number of copies.
        seed: Seed of copy 0's first episode (see the module docstring).
    """

    def __init__(self, policy: str, env_id: str, env_kwargs: Mapping[str, Any], copies: int, seed: int) -> None:
        from agents.registry import make_policy

        probe = gym.make(env_id, **env_kwargs)
        self.policies = [make_policy(policy, probe) for _ in range(copies)]
        probe.close()
        self.seed = seed
        self.episodes = np.zeros(copies, dtype=np.int64)

    @property
    def copies(self) -> int:
        """Number of copies."""
        return len(self.policies)

    def _reset_one(self, index: int) -> None:
        self.policies[index].reset(self.seed + index + self.copies * int(self.episodes[index]))

    def reset(self) -> None:
        """Start every copy's first episode."""
        self.episodes[:] = 0
        for index in range(self.copies):
            self._reset_one(index)

    def act(self, observation: Any, infos: Sequence[dict[str, Any]]) -> np.ndarray:
        """The policies' actions for a batched raw observation, ``(copies, ...)``."""
        views = zip(self.policies, split_copies(observation, self.copies), infos, strict=True)
        return np.stack([policy.act(single, info) for policy, single, info in views])

    def episodes_ended(self, dones: np.ndarray) -> None:
        """Start the next episode of every copy whose episode ended (``dones``: ``(copies,)`` bool)."""
        for index in np.flatnonzero(dones):
            self.episodes[index] += 1
            self._reset_one(int(index))
