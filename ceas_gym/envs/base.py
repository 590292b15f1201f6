"""The base class of the scheduling environments: presets, render modes, the action, flattening, rendering.

Subclasses set :attr:`SchedulingEnv.presets` (a registry of frozen config dataclasses) and build their instance,
link layer and spaces in ``__init__`` after calling :meth:`SchedulingEnv._configure`; they provide
:meth:`_render_header` and :meth:`_render_round` for the ANSI picture.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ceas_gym.config import ConfigError, replace
from ceas_gym.envs.actions import decode_schedule, schedule_action_space
from ceas_gym.envs.episode import EpisodeGuard
from ceas_gym.envs.instance import SchedulingInstance
from ceas_gym.envs.link_layer import LinkLayer
from ceas_gym.envs.rendering import render_ansi, render_rgb_array
from ceas_gym.registry import Registry


class SchedulingEnv(EpisodeGuard, gym.Env[Any, np.ndarray]):
    """Base class of the entanglement-scheduling environments (see the subclasses for the task itself)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    presets: ClassVar[Registry[Any]]

    config: Any
    instance: SchedulingInstance
    layer: LinkLayer
    num_links: int
    dict_observation_space: spaces.Dict

    def _configure(self, preset: str, render_mode: str | None, config: Any, overrides: dict[str, Any]) -> None:
        """Resolve the configuration (preset or explicit, then strict overrides) and check the render mode."""
        base = config if config is not None else self.presets.get(preset)
        self.config = replace(base, **overrides) if overrides else base
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"render_mode = {render_mode!r} is not allowed; choose one of None, 'ansi', 'rgb_array'")
        self.render_mode = render_mode

    def _set_spaces(self, dict_space: spaces.Dict) -> None:
        """Install the observation space (flattened if configured) and the scheduling action space."""
        self.dict_observation_space = dict_space
        self.observation_space = spaces.flatten_space(dict_space) if self.config.flatten_observation else dict_space
        self.action_space = schedule_action_space(self.num_links, self.config.serving_order)

    def _emit(self, observation: dict[str, np.ndarray]) -> Any:
        """Return the observation in the configured form (the Dict, or its flattening)."""
        if self.config.flatten_observation:
            return spaces.flatten(self.dict_observation_space, observation)
        return observation

    def decode_action(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Turn an action into ``(attempts per link (E,) int, freshest_first per link (E,) bool)``.

        See :func:`ceas_gym.envs.actions.decode_schedule` for the layout, rules and errors.
        """
        config = self.config
        return decode_schedule(action, self.num_links, config.budget, config.serving_order, config.invalid_action)

    def _render_header(self) -> str:
        """First lines of the ANSI picture (environment-specific state); empty by default."""
        return ""

    def _render_round(self) -> int:
        """The round (or slot) index shown in renderings."""
        raise NotImplementedError

    def render(self) -> str | np.ndarray | None:
        """``"ansi"``: a header and a table of links; ``"rgb_array"``: the network drawing (needs matplotlib)."""
        if self.render_mode == "ansi":
            return self._render_header() + render_ansi(self.instance, self.layer, self._render_round())
        if self.render_mode == "rgb_array":
            return render_rgb_array(self.instance, self.layer, self._render_round())
        return None
