"""A coordinated attack schedule: the Byzantine nodes behave, then strike together, then switch (``phased``).

:class:`PhasedAttack` follows a list of phases ``((start_round, attack), ...)``: from each phase's first round
until the next phase starts, every Byzantine node applies that phase's attack, all at once. ``"none"`` is honest
behaviour (the submission is the clean trained model), so a schedule such as
``((0, "none"), (100, "reversal"), (150, "gaussian"), (200, "scaling"))`` lets the attackers build trust for 100
rounds, strike together, then change their attack every 50 rounds (the paper's adaptive attacker, CEAS Sec. IV,
whose Fig. 4 shows the dip and the recovery). The phase of a round is a pure function of the round, so the schedule
needs no state and batches over copies like :class:`~ceas_gym.learning.attacks.SwitchingAttack`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ceas_gym.config import ConfigError, check_int
from ceas_gym.learning.attacks import ATTACKS, Attack, SwitchingAttack

DEFAULT_PHASES = ((0, "none"), (100, "reversal"), (150, "gaussian"), (200, "scaling"))


@ATTACKS.register("none")
class NoAttack(Attack):
    """Honest behaviour: the Byzantine node submits its clean trained model (a phase of a coordinated schedule)."""


@ATTACKS.register("phased")
class PhasedAttack(SwitchingAttack):
    """Attacks by phase of the episode (see the module docstring).

    Args:
        phases: ``(start_round, attack name)`` pairs with strictly increasing starts, the first at round 0; the
            attacks are update-level ones (``"none"`` for honest behaviour).

    Raises:
        ConfigError: On an empty list, a first start other than 0, starts not increasing, or an attack that is not
            update-level.
    """

    def __init__(self, phases: Sequence[Sequence[object]] = DEFAULT_PHASES) -> None:
        if isinstance(phases, str) or len(phases) == 0:
            raise ConfigError("PhasedAttack.phases: give a non-empty list of [start_round, attack name] pairs")
        starts, names = [], []
        for position, phase in enumerate(phases):
            if isinstance(phase, str) or len(phase) != 2:
                raise ConfigError(
                    f"PhasedAttack.phases[{position}]: expected [start_round, attack name], got {phase!r}"
                )
            start, name = phase
            check_int(f"PhasedAttack.phases[{position}] start", start, 0)
            starts.append(int(start))
            names.append(str(name))
        if starts[0] != 0 or np.any(np.diff(starts) <= 0):
            raise ConfigError(f"PhasedAttack.phases: starts must begin at 0 and increase strictly, got {starts}")
        super().__init__(attacks=names)
        self.starts = np.asarray(starts, dtype=np.int64)

    def active_index(self, round_index: int) -> int:
        """Return the index of the phase that round ``round_index`` falls in."""
        check_int("round_index", round_index, 0)
        return int(np.searchsorted(self.starts, round_index, side="right") - 1)

    def phase_starts(self) -> list[int]:
        """The first round of every phase after the first (where a plot marks a change of behaviour)."""
        return [int(start) for start in self.starts[1:]]
