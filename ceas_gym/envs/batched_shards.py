"""The batched CEAS environment split over worker processes: shards of copies stepped in parallel.

:class:`ShardedBatchedEnv` holds ``num_envs`` copies as ``workers`` contiguous shards, each a
:class:`~ceas_gym.envs.batched_ceas.BatchedEntanglementSchedulingEnv` in its own process. A step sends each shard its
rows of the actions, the shards step at once, and their outputs are concatenated in copy order. Copy ``i`` is seeded
as copy ``i`` of one in-process batched environment (``seed + i``, or the ``i``-th seed of a list), and copies never
interact, so the two give the same observations, rewards and infos (tested: the discrete state exactly, float32
quantities such as the loss to float32 rounding, since a shard is a batch of another shape and CPUs pick their
matmul kernels by shape; docs/batched_env.md); the shards only change where the work runs.

Why: within one process, the step's Python and NumPy bookkeeping (pair generation, gossip, BFT, observations) runs
on one core, and the learning layer's small tensor operations gain little from a second torch thread. Shards in
separate processes keep every core busy with whole steps. Give each worker ``learning.torch_threads = 1`` and
as many workers as cores; ``python benchmarks/bench_batched_env.py --workers 1 2`` measures the gain.

The interface is the batched environment's (a ``gymnasium.vector.VectorEnv`` with same-step autoreset, the same
``reset(seed=..., options={"reset_mask": ...})``), so :class:`~ceas_gym.envs.batched_sb3.BatchedVecEnv` serves it to
stable-baselines3 unchanged. Workers start with the ``forkserver`` method (``spawn`` where it is missing), as
stable-baselines3's ``SubprocVecEnv`` does: a forked copy of a process that already ran OpenMP threads can hang.
Call :meth:`ShardedBatchedEnv.close` (or use it as a context manager) to stop them; an error in a worker is raised
in the caller with the worker's traceback.
"""

from __future__ import annotations

import functools
import multiprocessing
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ceas_gym.config import ConfigError
from ceas_gym.envs.batched_ceas import BatchedEntanglementSchedulingEnv
from ceas_gym.envs.vector_helpers import copy_seeds, reset_mask


def shard_sizes(num_envs: int, workers: int) -> list[int]:
    """Copies per shard: as even as possible, larger shards first (``10, 3 -> [4, 3, 3]``)."""
    base, extra = divmod(num_envs, workers)
    return [base + 1 if shard < extra else base for shard in range(workers)]


def _serve(connection: Connection, factory: Callable[[], BatchedEntanglementSchedulingEnv]) -> None:
    """A worker's loop: build the shard, then answer ``(command, payload)`` messages until ``close``."""
    try:
        env = factory()
        connection.send(("ok", None))
    except Exception:  # reported to the caller, which raises it
        connection.send(("error", traceback.format_exc()))
        return
    while True:
        try:
            command, payload = connection.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if command == "close":
            connection.send(("ok", None))
            return
        try:
            if command == "step":
                result = env.step(payload)
            elif command == "reset":
                seeds, mask = payload
                result = env.reset(seed=seeds, options=None if mask is None else {"reset_mask": mask})
            else:
                raise ValueError(f"unknown command {command!r}")
            connection.send(("ok", result))
        except Exception:  # reported to the caller
            connection.send(("error", traceback.format_exc()))


class ShardedBatchedEnv(VectorEnv):
    """``num_envs`` CEAS copies in ``workers`` processes (see the module docstring).

    Args:
        num_envs: Number of copies E, >= 1.
        workers: Number of worker processes (shards), 1 <= workers <= E.
        preset: ``"small"`` or ``"paper"`` (as the batched environment).
        config: An explicit :class:`~ceas_gym.envs.ceas_config.CEASEnvConfig` instead of the preset.
        max_episode_steps: As for the batched environment.
        start_method: ``multiprocessing`` start method; default ``forkserver`` where available, else ``spawn``.
        **overrides: :class:`~ceas_gym.envs.ceas_config.CEASEnvConfig` fields, as for the batched environment.

    Raises:
        ConfigError: On a bad ``num_envs`` or ``workers``, or anything the batched environment rejects (checked in
            this process before a worker starts).
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int,
        workers: int = 2,
        preset: str = "small",
        config: Any = None,
        max_episode_steps: int | None = None,
        start_method: str | None = None,
        **overrides: Any,
    ) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ConfigError(f"num_envs = {num_envs!r}: expected an integer >= 1")
        if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= num_envs:
            raise ConfigError(f"workers = {workers!r}: expected an integer from 1 to num_envs = {num_envs}")
        threads = torch.get_num_threads()
        try:  # validates the configuration here, and gives the spaces; its torch thread setting is the workers'
            template = BatchedEntanglementSchedulingEnv(
                1, preset=preset, config=config, max_episode_steps=max_episode_steps, **overrides
            )
        finally:
            torch.set_num_threads(threads)
        self.template = template
        self.config = template.config
        self.instance = template.instance
        self.num_nodes, self.num_links = template.num_nodes, template.num_links
        self.horizon = template.horizon
        self.dict_observation_space = template.dict_observation_space
        self.num_envs = num_envs
        self.single_observation_space = template.single_observation_space
        self.single_action_space = template.single_action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode = None
        self.sizes = shard_sizes(num_envs, workers)
        self.offsets = np.cumsum([0, *self.sizes])
        if start_method is None:
            start_method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(start_method)
        self._connections: list[Connection] = []
        self._processes: list[Any] = []
        self.closed = False
        for size in self.sizes:
            factory = functools.partial(
                BatchedEntanglementSchedulingEnv,
                size,
                preset=preset,
                config=config,
                max_episode_steps=max_episode_steps,
                **overrides,
            )
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child, factory), daemon=True)
            process.start()
            child.close()
            self._connections.append(parent)
            self._processes.append(process)
        try:
            self._gather()  # each worker reports that its shard is built
        except Exception:
            self.close()
            raise

    # ---------------------------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every copy (``seed`` as for the batched environment: ``s`` seeds copy ``i`` with ``s + i``).

        ``options={"reset_mask": mask}`` resets only the copies where the ``(num_envs,)`` bool mask is True.
        """
        seeds = copy_seeds(seed, self.num_envs)
        mask = reset_mask(options, self.num_envs)
        for shard, connection in enumerate(self._connections):
            rows = slice(self.offsets[shard], self.offsets[shard + 1])
            connection.send(("reset", (seeds[rows], None if mask is None else mask[rows])))
        results = self._gather()
        observation = _concatenate_observations([result[0] for result in results])
        return observation, merge_infos([result[1] for result in results], self.sizes)

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One round in every copy, the shards in parallel; finished copies are reset within the step."""
        actions = np.asarray(actions)
        if actions.shape[0] != self.num_envs:
            raise ValueError(f"actions: expected {self.num_envs} rows (one per copy), got shape {actions.shape}")
        for shard, connection in enumerate(self._connections):
            connection.send(("step", actions[self.offsets[shard] : self.offsets[shard + 1]]))
        results = self._gather()
        observation = _concatenate_observations([result[0] for result in results])
        rewards, terminated, truncated = (np.concatenate([result[k] for result in results]) for k in (1, 2, 3))
        return observation, rewards, terminated, truncated, merge_infos([result[4] for result in results], self.sizes)

    def close(self, **kwargs: Any) -> None:
        """Stop the workers (idempotent)."""
        del kwargs
        if "_connections" not in self.__dict__ or self.closed:  # never started (bad arguments), or closed already
            return
        self.closed = True
        for connection in self._connections:
            try:
                connection.send(("close", None))
                connection.recv()
            except (BrokenPipeError, EOFError, OSError):
                pass
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
        for connection in self._connections:
            connection.close()

    def __enter__(self) -> ShardedBatchedEnv:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------- helpers
    def _gather(self) -> list[Any]:
        """Each worker's answer, in shard order; a worker's error is raised here with its traceback."""
        answers = []
        for shard, connection in enumerate(self._connections):
            try:
                status, payload = connection.recv()
            except EOFError as error:
                raise RuntimeError(f"ShardedBatchedEnv worker {shard} stopped unexpectedly") from error
            answers.append((status, payload))
        for shard, (status, payload) in enumerate(answers):
            if status == "error":
                raise RuntimeError(f"ShardedBatchedEnv worker {shard} failed:\n{payload}")
        return [payload for _, payload in answers]


def _concatenate_observations(parts: list[Any]) -> Any:
    """Stack the shards' observations along the copy axis (per key for Dict observations)."""
    if isinstance(parts[0], dict):
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    return np.concatenate(parts)


def merge_infos(parts: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    """One vector info from the shards' infos, in copy order.

    A shard in which no copy finished has no ``final_obs`` / ``final_info``: its rows get ``None`` observations, its
    own infos as placeholders under ``final_info``, and False masks, so the merged masks say exactly which copies
    finished.
    """
    merged: dict[str, Any] = {}
    regular = [key for key in parts[0] if not key.startswith(("final", "_final"))]
    for key in regular:
        merged[key] = np.concatenate([part[key] for part in parts])
    if not any("final_obs" in part for part in parts):
        return merged
    merged["final_obs"] = np.concatenate(
        [
            part["final_obs"] if "final_obs" in part else np.full(size, None, dtype=object)
            for part, size in zip(parts, sizes, strict=True)
        ]
    )
    for mask in ("_final_obs", "_final_info"):
        merged[mask] = np.concatenate(
            [
                part[mask] if mask in part else np.zeros(size, dtype=bool)
                for part, size in zip(parts, sizes, strict=True)
            ]
        )
    keys = next(part["final_info"] for part in parts if "final_info" in part).keys()
    finals = [
        part["final_info"]
        if "final_info" in part
        else {key: part[key] if key in part else np.zeros(size, dtype=bool) for key in keys}
        for part, size in zip(parts, sizes, strict=True)
    ]
    merged["final_info"] = {key: np.concatenate([final[key] for final in finals]) for key in keys}
    return merged
