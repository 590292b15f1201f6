"""The one interface every scheduling policy implements."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Policy(Protocol):
    """A policy maps an observation (and the env's ``info``) to an action.

    Baselines (EEF, random, greedy), exact solvers and trained PPO models all implement this, so the
    evaluation harness treats them alike.
    """

    name: str

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; reseed any internal randomness."""
        ...

    def act(self, observation: Any, info: dict[str, Any]) -> Any:
        """Return the action for ``observation`` (``info`` is the dict the env returned with it)."""
        ...
