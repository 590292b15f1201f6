"""Wrappers that present every ceas-gym environment in the spaces RL frameworks expect (Gymnasium conventions).

The environments keep their natural spaces: ``Dict`` observations whose ``inventory`` is a 2-D histogram, ``Box``
actions in ``[0, 1]`` (link weights), and ``MultiBinary`` swap decisions (``RepeaterChain-v0``). Frameworks want
less: stable-baselines3's checker asks for 1-D observation keys and a symmetric ``[-1, 1]`` action box, and
RLlib's default encoders take one flat ``Box`` observation and no ``MultiBinary`` action. These wrappers convert,
exactly and invertibly:

* :class:`FlatKeysObservation`: every ``Box`` key of a ``Dict`` observation reshaped to 1-D (the ``Dict`` stays, for
  SB3's ``MultiInputPolicy``).
* :class:`MultiBinaryAsMultiDiscrete`: a ``MultiBinary(n)`` action as ``MultiDiscrete([2] * n)``; action masks
  (``action_masks()``) keep their layout, two entries per bit.
* ``gymnasium.wrappers.RescaleAction`` (to ``[-1, 1]``) and ``gymnasium.wrappers.FlattenObservation`` (one ``Box``)
  from Gymnasium itself.

:func:`for_frameworks` applies what an environment needs: ``gym.make(env_id)`` then ``for_frameworks(env)`` passes
SB3's ``check_env`` without a warning; ``for_frameworks(env, flatten=True)`` is what RLlib's ``register_env``
should return (``docs/ray.md``). A policy trained through the wrappers acts through the same wrappers.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import FlattenObservation, RescaleAction

__all__ = ["FlatKeysObservation", "MultiBinaryAsMultiDiscrete", "for_frameworks"]


class FlatKeysObservation(gym.ObservationWrapper):
    """Reshape every ``Box`` key of a ``Dict`` observation to 1-D (row-major), keeping the keys and bounds.

    Args:
        env: An environment with a ``Dict`` observation space of ``Box`` entries.

    Raises:
        TypeError: If the observation space is not a ``Dict`` of ``Box`` spaces.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Dict) or not all(isinstance(s, spaces.Box) for s in space.spaces.values()):
            raise TypeError(f"FlatKeysObservation: expected a Dict observation space of Box entries, got {space}")
        self.observation_space = spaces.Dict(
            {
                key: spaces.Box(box.low.reshape(-1), box.high.reshape(-1), dtype=box.dtype)
                for key, box in space.spaces.items()
            }
        )

    def observation(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each key as a 1-D array."""
        return {key: np.asarray(value).reshape(-1) for key, value in observation.items()}


class MultiBinaryAsMultiDiscrete(gym.ActionWrapper):
    """Present a ``MultiBinary(n)`` action space as ``MultiDiscrete([2] * n)`` (the same actions).

    Args:
        env: An environment with a 1-D ``MultiBinary`` action space.

    Raises:
        TypeError: If the action space is not a 1-D ``MultiBinary``.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.action_space
        if not isinstance(space, spaces.MultiBinary) or len(space.shape) != 1:
            raise TypeError(f"MultiBinaryAsMultiDiscrete: expected a 1-D MultiBinary action space, got {space}")
        self.action_space = spaces.MultiDiscrete(np.full(space.shape, 2, dtype=np.int64))

    def action(self, action: Any) -> np.ndarray:
        """The ``MultiDiscrete`` action as the wrapped environment's 0/1 array."""
        return np.asarray(action).astype(self.env.action_space.dtype)

    def action_masks(self) -> np.ndarray:
        """The wrapped environment's masks (two entries per bit, the same layout for both spaces)."""
        return self.env.get_wrapper_attr("action_masks")()


def _is_symmetric_unit_box(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Box) and bool(np.all(space.low == -1.0) and np.all(space.high == 1.0))


def for_frameworks(env: gym.Env, *, flatten: bool = False) -> gym.Env:
    """Wrap ``env`` into the spaces SB3 and RLlib expect (see the module docstring).

    Args:
        env: A ceas-gym environment (or any Gymnasium environment).
        flatten: One flat ``Box`` observation (RLlib's default encoders) instead of a ``Dict`` of 1-D keys (SB3's
            ``MultiInputPolicy``).

    Returns:
        ``env`` wrapped: a ``Box`` action rescaled to ``[-1, 1]`` unless it already is; ``MultiBinary`` as
        ``MultiDiscrete``; a ``Dict`` observation flattened per key, or entirely with ``flatten=True``.
    """
    action_space = env.action_space
    if isinstance(action_space, spaces.Box) and not _is_symmetric_unit_box(action_space):
        unit = np.ones(action_space.shape, dtype=action_space.dtype)
        env = RescaleAction(env, -unit, unit)
    elif isinstance(env.action_space, spaces.MultiBinary):
        env = MultiBinaryAsMultiDiscrete(env)
    if isinstance(env.observation_space, spaces.Dict):
        env = FlattenObservation(env) if flatten else FlatKeysObservation(env)
    return env
