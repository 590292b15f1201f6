"""E copies of a CEAS environment stepped in lock-step as one tensor computation (a ``gymnasium.vector.VectorEnv``).

:class:`BatchedEntanglementSchedulingEnv` runs ``num_envs`` copies of ``EntanglementScheduling-v0`` / ``-Small-v0``
(same configuration, so the same network instance) as a batch of ``num_envs`` of
:class:`~ceas_gym.envs.ceas_round.CEASRound`, the round the single environment runs as a batch of one:

* the link layer holds one pair inventory over ``num_envs x E`` links (one array operation per round step);
* local training, attacks, stamps, the QFI refresh, the probe predictions and the test evaluation run as one batched
  torch computation over ``num_envs x N`` nodes (each copy on its own data);
* consensus runs in the protocol's batched phase (:mod:`ceas_gym.envs.round_consensus`): ``ceas`` gossips over the
  union graph (per link and per node, so the copies do not mix) with one BFT monitor for all copies,
  ``random-selection`` draws each copy's participants and averages their updates in one operation, and ``qba`` and
  plug-in protocols run their own ``run_round`` per copy.

Randomness stays per copy: each copy has its own ``np_random`` (seeded like a single environment's) and its own
torch generator, and draws exactly the numbers a single environment draws, in the same order (generation successes,
data, initial parameters, attack noise, transport noise). With the same seeds and actions the copies follow the
trajectories of ``num_envs`` single environments (``tests/test_batched_env.py`` checks observations, rewards and
infos: the discrete state exactly, and the loss, stamps and ``mean_delivered_fidelity`` to float32 rounding, since a
batch of one and a batch of E run products of different shapes, whose kernels a CPU picks by shape).
Those per-round draws are a Python loop over the copies; with ``batch_streams="shared"`` (an option of this class,
not of :class:`CEASEnvConfig`) all copies take them from the first copy's generators in one call each instead:
faster with hundreds of copies, still seeded and deterministic, but the copies no longer reproduce single
environments (resets still draw each copy's data and initial parameters from its own stream).

Autoreset: ``AutoresetMode.SAME_STEP`` (declared in ``metadata``): a copy whose episode ends is reset within the
same :meth:`step`, its last observation and info go to ``info["final_obs"]`` / ``info["final_info"]`` (masked by
``info["_final_obs"]``), and the returned observation is the first of its new episode. The copies are reseeded
on autoreset from their own ``np_random`` streams (a reset without a seed continues the stream, as a single env's
does). Use :class:`~ceas_gym.envs.batched_sb3.BatchedVecEnv` to train stable-baselines3 on it, or
``gymnasium.make_vec(env_id, num_envs=64, vectorization_mode="vector_entry_point", protocol=P)`` for the two CEAS
ids and every protocol P. Rendering is not supported.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ceas_gym.config import ConfigError, check_choice, replace
from ceas_gym.envs.actions import decode_schedule, schedule_action_space
from ceas_gym.envs.ceas_config import CEAS_PRESETS, CEASEnvConfig
from ceas_gym.envs.ceas_round import CEASRound
from ceas_gym.envs.round_streams import BATCH_STREAMS
from ceas_gym.envs.vector_helpers import copy_seeds, reset_mask, select_rows

__all__ = ["BATCH_STREAMS", "BatchedEntanglementSchedulingEnv"]


class BatchedEntanglementSchedulingEnv(VectorEnv):
    """``num_envs`` CEAS environments in lock-step (see the module docstring).

    Args:
        num_envs: Number of copies E, >= 1.
        preset: ``"small"`` or ``"paper"`` (as the single environment).
        config: An explicit :class:`CEASEnvConfig` instead of the preset.
        max_episode_steps: Truncate episodes after this many rounds if fewer than ``max_rounds`` (what
            ``gymnasium.make``'s ``TimeLimit`` does for a single environment; ``make_vec`` passes the registered value).
        batch_streams: Where the per-round draws (generation successes, participants, attack and transport noise)
            come from: ``"per-copy"``, each copy's own generators, so copy ``i`` reproduces a single environment
            seeded like it (the default); or ``"shared"``, the first copy's generators for all copies, one call per
            draw instead of one per copy (faster with many copies; copies stay seeded and independent but no longer
            reproduce single environments). An option of the batch only: a single environment has one stream.
        **overrides: :class:`CEASEnvConfig` fields, as for the single environment.

    Raises:
        ConfigError: On ``num_envs < 1``, an unknown ``batch_streams`` or a render mode.
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int,
        preset: str = "small",
        config: CEASEnvConfig | None = None,
        max_episode_steps: int | None = None,
        batch_streams: str = "per-copy",
        **overrides: Any,
    ) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ConfigError(f"num_envs = {num_envs!r}: expected an integer >= 1")
        check_choice("batch_streams", batch_streams, BATCH_STREAMS)
        self.batch_streams = batch_streams
        if overrides.pop("render_mode", None) is not None:
            raise ConfigError("render_mode: the batched environment does not render; use a single environment")
        base = config if config is not None else CEAS_PRESETS.get(preset)
        self.config: CEASEnvConfig = replace(base, **overrides) if overrides else base
        if max_episode_steps is not None and (not isinstance(max_episode_steps, int) or max_episode_steps < 1):
            raise ConfigError(f"max_episode_steps = {max_episode_steps!r}: expected an integer >= 1 or None")
        horizon = self.config.max_rounds
        self.horizon = horizon if max_episode_steps is None else min(horizon, max_episode_steps)
        self.num_envs = num_envs
        self.round = CEASRound(self.config, copies=num_envs, shared_streams=batch_streams == "shared")
        self.instance = self.round.instance
        self.num_nodes, self.num_links = self.round.num_nodes, self.round.num_links
        self.dict_observation_space = self.round.observation_space
        if self.config.flatten_observation:
            self.single_observation_space = spaces.flatten_space(self.dict_observation_space)
        else:
            self.single_observation_space = self.dict_observation_space
        self.single_action_space = schedule_action_space(self.num_links, self.config.serving_order)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode = None
        self._np_randoms: list[np.random.Generator] = [seeding.np_random(None)[0] for _ in range(num_envs)]

    @property
    def round_index(self) -> np.ndarray:
        """Rounds played in each copy's episode. ``(num_envs,)`` int."""
        return self.round.round_index

    @property
    def active(self) -> np.ndarray:
        """Active (not quarantined) nodes per copy. ``(num_envs, N)`` bool."""
        return self.round.active

    @property
    def train_features(self) -> Any:
        """Every node's training features, copy after copy. ``(num_envs x N, samples, features)`` tensor."""
        return self.round.train_features

    # ---------------------------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every copy; ``seed`` = ``s`` seeds copy ``i`` with ``s + i``, a list seeds each copy.

        ``options={"reset_mask": mask}`` resets only the copies where the ``(num_envs,)`` bool mask is True.
        """
        seeds = copy_seeds(seed, self.num_envs)
        copies = np.arange(self.num_envs)
        mask = reset_mask(options, self.num_envs)
        if mask is not None:
            copies = np.flatnonzero(mask)
            seeds = [seeds[i] for i in copies]
        self._reset_copies(copies, seeds)
        return self._observation(), self._infos(self.round.infos())

    def _reset_copies(self, copies: np.ndarray, seeds: list[int | None]) -> None:
        """A seed starts a copy's stream afresh; None continues it (as a single environment's reset does)."""
        for copy, seed in zip(copies, seeds, strict=True):
            if seed is not None:
                self._np_randoms[copy] = seeding.np_random(int(seed))[0]
        self.round.reset(copies, [self._np_randoms[copy] for copy in copies])

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One round in every copy (the round order of the single environment), then autoreset the finished ones."""
        e, config = self.num_envs, self.config
        try:
            shape = np.shape(actions)
        except ValueError:  # ragged: decode_schedule's check names what it expects
            shape = (e,)
        if not shape or shape[0] != e:
            raise ValueError(f"actions: expected {e} rows (one per copy), got shape {shape}")
        attempts, freshest = decode_schedule(
            actions, self.num_links, config.budget, config.serving_order, config.invalid_action, batch=e
        )
        rewards, infos = self.round.step(attempts, freshest)
        infos = self._infos(infos)
        truncated = self.round.round_index >= self.horizon
        terminated = np.zeros(e, dtype=bool)
        observation = self._observation()
        if truncated.any():
            done = np.flatnonzero(truncated)
            infos["final_obs"] = select_rows(observation, done, e)
            infos["_final_obs"] = truncated.copy()
            infos["final_info"] = {key: value.copy() for key, value in infos.items() if not key.startswith("final")}
            infos["_final_info"] = truncated.copy()
            self._reset_copies(done, [None] * done.size)
            observation = self._observation()
        return observation, rewards, terminated, truncated, infos

    # ---------------------------------------------------------------------------------------- outputs
    def _observation(self) -> Any:
        """The observation of every copy, stacked (``(num_envs, ...)`` per key, or flattened rows)."""
        observation = self.round.observation()
        if self.config.flatten_observation:
            return np.concatenate([value.reshape(self.num_envs, -1) for value in observation.values()], axis=1)
        return observation

    def _infos(self, infos: dict[str, Any]) -> dict[str, Any]:
        """The round's ``(num_envs,)`` info arrays with gymnasium's ``_key`` masks (every copy reports every key)."""
        for key in list(infos):
            infos[f"_{key}"] = np.ones(self.num_envs, dtype=bool)
        return infos
