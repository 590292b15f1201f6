"""Environment cards: what each registered environment is, its spaces, episode length and key parameters.

``python -m ceas_gym`` (or ``ceas-envs``) lists every registered id in a table; ``python -m ceas_gym ID`` prints
that environment's full card: the summary, its spaces key by key, its preset's scalar settings, and the sections
of its class docstring (Description, Action Space, Observation Space, Rewards, ...), as Gymnasium's environments
document themselves.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
from gymnasium import spaces

__all__ = ["EnvironmentCard", "describe_space", "environment_card", "key_parameters"]

SCALAR_TYPES = (bool, int, float, str)
HEADLINE_PARAMETERS = (
    "topology.kind",
    "topology.num_nodes",
    "parties",
    "n_nodes",
    "budget",
    "protocol",
    "p",
    "p_s",
    "t_cut",
)
"""Parameters the one-line listing shows where an environment's configuration has them."""


@dataclass(frozen=True)
class EnvironmentCard:
    """One registered environment, described.

    Attributes:
        env_id: The registered id.
        summary: The first line of the environment class's docstring.
        observation: The observation space, one line.
        observation_keys: ``(key, space)`` lines of a ``Dict`` observation (empty otherwise).
        action: The action space, one line.
        max_episode_steps: The registered episode length (steps), or None.
        parameters: The preset's scalar settings (``topology.num_nodes``, ``budget``, ...).
        docstring: The class docstring (its ``## ...`` sections).
    """

    env_id: str
    summary: str
    observation: str
    observation_keys: tuple[tuple[str, str], ...]
    action: str
    max_episode_steps: int | None
    parameters: dict[str, Any]
    docstring: str

    def headline(self) -> str:
        """The :data:`HEADLINE_PARAMETERS` this environment has, ``name=value`` separated by spaces."""
        return " ".join(f"{name}={self.parameters[name]}" for name in HEADLINE_PARAMETERS if name in self.parameters)

    def line(self) -> str:
        """The card's table row: id, episode length, action, observation, key parameters, summary."""
        steps = "-" if self.max_episode_steps is None else str(self.max_episode_steps)
        return f"| {self.env_id} | {steps} | {self.action} | {self.observation} | {self.headline()} | {self.summary} |"

    def text(self) -> str:
        """The whole card as Markdown."""
        lines = [f"# {self.env_id}", "", self.summary, ""]
        lines += [f"- episode length: {self.max_episode_steps} steps", f"- action space: {self.action}"]
        lines.append(f"- observation space: {self.observation}")
        lines += [f"  - {key}: {space}" for key, space in self.observation_keys]
        if self.parameters:
            lines += ["", "## Key parameters", ""]
            lines += [f"- {name} = {value!r}" for name, value in self.parameters.items()]
        body = self.docstring.split("\n", 1)[1].strip() if "\n" in self.docstring else ""
        if body:
            lines += ["", body]
        return "\n".join(lines) + "\n"


def describe_space(space: spaces.Space) -> str:
    """A space in one short line: ``Box(0, 1, (27,), float32)``, ``MultiBinary(2)``, ``Dict(15 keys)``."""
    if isinstance(space, spaces.Box):
        low, high = space.low.min(), space.high.max()
        return f"Box({low:g}, {high:g}, {space.shape}, {space.dtype})"
    if isinstance(space, spaces.Dict):
        return f"Dict({len(space.spaces)} keys)"
    return str(space)


def key_parameters(config: Any, prefix: str = "", depth: int = 1) -> dict[str, Any]:
    """Scalar fields of a configuration dataclass, and of its dataclass fields down to ``depth`` levels."""
    found: dict[str, Any] = {}
    if not dataclasses.is_dataclass(config):
        return found
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if isinstance(value, SCALAR_TYPES):
            found[prefix + item.name] = value
        elif depth > 0 and dataclasses.is_dataclass(value):
            found.update(key_parameters(value, f"{prefix}{item.name}.", depth - 1))
    return found


def environment_card(env_id: str) -> EnvironmentCard:
    """Build ``env_id`` once (with its registered keyword arguments) and describe it.

    Raises:
        gymnasium.error.NameNotFound: Naming close matches among the registered ids.
    """
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; run `python -m ceas_gym` for the list"
        raise gym.error.NameNotFound(f"{env_id!r} is not a registered environment{hint}")
    spec = gym.spec(env_id)
    env = gym.make(env_id)
    try:
        unwrapped = env.unwrapped
        docstring = inspect.getdoc(type(unwrapped)) or ""
        observation = unwrapped.observation_space
        keys = (
            tuple((key, describe_space(space)) for key, space in observation.spaces.items())
            if isinstance(observation, spaces.Dict)
            else ()
        )
        return EnvironmentCard(
            env_id=env_id,
            summary=docstring.split("\n", 1)[0],
            observation=describe_space(observation),
            observation_keys=keys,
            action=describe_space(unwrapped.action_space),
            max_episode_steps=spec.max_episode_steps,
            parameters=key_parameters(getattr(unwrapped, "config", None)),
            docstring=docstring,
        )
    finally:
        env.close()
