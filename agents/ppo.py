"""A saved PPO (or MaskablePPO) model behind the :class:`~agents.base.Policy` interface.

Conventions:

* A model is a stable-baselines3 ``.zip`` (trusted input, like any checkpoint). Its observation normaliser, when
  training used one, lies beside it as ``<stem>_vecnormalize.npz`` (plain arrays, :mod:`agents.normalizer_io`) or,
  failing that, as ``vecnormalize.npz`` in the same folder. A legacy pickled ``VecNormalize`` (``*.pkl``) is loaded
  only with ``trust_pickle=True``, since unpickling runs code from the file.
* The normaliser is applied with its saved running mean and variance, frozen (``training = False``); only
  observations are normalised, rewards are not needed to act.
* Actions are deterministic (the mode of the policy distribution). Models trained with sb3-contrib's
  ``MaskablePPO`` are recognised from the policy class recorded in the zip and are given the env's
  ``action_masks()`` when the env has one.
* A model trained as a residual policy (``residual.json`` beside it, or ``<stem>_residual.json``;
  :mod:`agents.residual`) outputs a correction: the action is the recorded baseline's action plus the scaled
  correction, clipped to the action space (:func:`agents.residual.compose_action`). The baseline acts on the
  environment's own observation and is reset with the policy.
* A model trained on flattened observations (``flatten_observation=True``) acting in an env that returns the
  ``Dict`` form gets the observation flattened with ``gymnasium.spaces.flatten`` (the order the environments use
  for their own flat form), so it can be compared with the baselines on the same env.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.normalizer_io import NormalizerStatistics, load_normalizer
from agents.residual import compose_action, read_residual_settings, residual_path_for


def is_maskable_model(model_path: str | Path) -> bool:
    """Return True when the zip at ``model_path`` was saved by sb3-contrib's ``MaskablePPO``."""
    with zipfile.ZipFile(model_path) as archive:
        data = json.loads(archive.read("data").decode("utf-8"))
    policy_class = data.get("policy_class", {})
    text = json.dumps(policy_class)
    return "Maskable" in text


class PPOPolicy:
    """Deterministic actions of a trained PPO model, with its saved observation normaliser applied.

    Args:
        model: A loaded ``PPO`` or ``MaskablePPO``.
        normalizer: The observation statistics to apply (:class:`~agents.normalizer_io.NormalizerStatistics`, or
            anything with a ``normalize_obs`` method that does not update its statistics), or None.
        env: The environment acted in; read for ``action_masks()`` with a maskable model and for the action space of
            a residual model.
        name: Name shown in result tables.
        residual: ``(baseline, scale)`` for a residual model: the baseline policy and the correction's scale.

    Raises:
        ValueError: For a residual model without an environment or one whose action space is not a ``Box``.
    """

    def __init__(
        self,
        model: Any,
        normalizer: NormalizerStatistics | Any | None = None,
        env: gym.Env | None = None,
        name: str = "ppo",
        residual: tuple[Any, float] | None = None,
    ) -> None:
        self.model = model
        self.normalizer = normalizer
        if hasattr(normalizer, "training"):  # a VecNormalize: frozen, its statistics are applied, not updated
            normalizer.training = False
        self.env = env
        self.name = name
        self.maskable = type(model).__name__ == "MaskablePPO"
        if residual is not None and (env is None or not isinstance(env.action_space, spaces.Box)):
            raise ValueError("a residual model needs the environment it acts in, with a Box action space")
        self.residual = residual

    @classmethod
    def load(
        cls,
        path: str | Path,
        env: gym.Env | None = None,
        device: str = "cpu",
        name: str | None = None,
        trust_pickle: bool = False,
    ) -> PPOPolicy:
        """Load a saved model (and its normaliser, if one lies beside it).

        Args:
            path: The model's ``.zip``.
            env: The environment the policy will act in (optional; used for action masks).
            device: Torch device for the networks.
            name: Table name; defaults to ``ppo:<stem>``.
            trust_pickle: Load a legacy pickled normaliser beside the model (runs the file's code; see
                :func:`agents.normalizer_io.load_normalizer`).

        Raises:
            FileNotFoundError: If ``path`` does not exist.
            agents.normalizer_io.UntrustedFileError: If only a pickled normaliser lies beside the model and
                ``trust_pickle`` is False.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file {str(path)!r} does not exist")
        if is_maskable_model(path):
            from sb3_contrib import MaskablePPO

            model = MaskablePPO.load(path, device=device)
        else:
            from stable_baselines3 import PPO

            model = PPO.load(path, device=device)
        normalizer = load_normalizer(path, trust_pickle=trust_pickle)
        residual = None
        settings = residual_path_for(path)
        if settings is not None:
            baseline_name, scale = read_residual_settings(settings)
            if env is None:
                raise ValueError(f"{settings}: a residual model needs the environment it acts in (env=...)")
            from agents.registry import make_policy

            residual = (make_policy(baseline_name, env), scale)
        return cls(model, normalizer, env, name or f"ppo:{path.stem}", residual)

    def reset(self, seed: int | None = None) -> None:
        """The model acts deterministically; a residual model's baseline is reset with ``seed``."""
        if self.residual is not None:
            self.residual[0].reset(seed)

    def normalize(self, observation: Any) -> Any:
        """Apply the frozen observation normaliser (identity without one)."""
        if self.normalizer is None:
            return observation
        return self.normalizer.normalize_obs(observation)

    def prepare(self, observation: Any) -> Any:
        """Flatten a ``Dict`` observation for a model trained on flat ones, then normalise it."""
        if (
            isinstance(observation, dict)
            and isinstance(self.model.observation_space, spaces.Box)
            and self.env is not None
            and isinstance(self.env.observation_space, spaces.Dict)
        ):
            observation = spaces.flatten(self.env.observation_space, observation)
        return self.normalize(observation)

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        """Return the model's deterministic action for ``observation``."""
        raw_observation = observation
        observation = self.prepare(observation)
        if self.maskable and self.env is not None and hasattr(self.env.unwrapped, "action_masks"):
            action, _ = self.model.predict(
                observation, deterministic=True, action_masks=self.env.unwrapped.action_masks()
            )
        else:
            action, _ = self.model.predict(observation, deterministic=True)
        if self.residual is None:
            return action
        baseline, scale = self.residual
        return compose_action(baseline.act(raw_observation, info), action, scale, self.env.action_space)
