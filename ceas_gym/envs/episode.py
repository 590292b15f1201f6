"""Episode bookkeeping shared by every environment: no step before ``reset()``, none after the episode ended.

Gymnasium's ``OrderEnforcing`` wrapper (added by ``gymnasium.make``) refuses a step before the first reset, but an
environment used unwrapped would run a round on uninitialised state, and after its last round it would keep
going (round 105 of 100, an observation outside ``observation_space``). :class:`EpisodeGuard` makes the environment
itself raise ``gymnasium.error.ResetNeeded`` in both cases, with a message saying what to do.

Use: call :meth:`EpisodeGuard._start_episode` at the end of ``reset``, :meth:`EpisodeGuard._check_can_step` first
thing in ``step``, and :meth:`EpisodeGuard._end_episode_if` with the step's ``terminated or truncated``.
"""

from __future__ import annotations

from gymnasium.error import ResetNeeded

__all__ = ["EpisodeGuard"]


class EpisodeGuard:
    """Mixin of the environments: refuse ``step`` before ``reset`` and after the episode's end."""

    _episode_state: str = "not started"  # "not started" -> "running" -> "ended" -> (reset) "running"

    def _start_episode(self) -> None:
        self._episode_state = "running"

    def _check_can_step(self) -> None:
        """Raise ``ResetNeeded`` unless an episode is running."""
        state = self._episode_state
        if state == "running":
            return
        name = type(self).__name__
        if state == "not started":
            raise ResetNeeded(f"{name}.step: call reset() before the first step")
        raise ResetNeeded(
            f"{name}.step: the episode has ended (terminated or truncated); call reset() to start a new one"
        )

    def _end_episode_if(self, done: bool) -> None:
        if done:
            self._episode_state = "ended"
