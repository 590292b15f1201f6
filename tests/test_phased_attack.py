"""The coordinated attack schedule and the Fig.-4 dip reading: hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ceas_gym.config import ConfigError
from ceas_gym.learning.attacks import make_attack
from ceas_gym.learning.phased_attack import PhasedAttack
from evaluation.paper_fig4 import dip_and_recovery


def test_phases_switch_at_their_starts_and_none_is_honest_behaviour() -> None:
    attack = PhasedAttack([[0, "none"], [3, "reversal"], [5, "scaling"]])
    assert [attack.active_index(t) for t in range(7)] == [0, 0, 0, 1, 1, 2, 2]
    assert attack.phase_starts() == [3, 5]
    rows = torch.tensor([[1.0, -2.0], [0.5, 4.0]])
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(attack(rows, 2, generator), rows)
    torch.testing.assert_close(attack(rows, 3, generator), -1.05 * rows)
    torch.testing.assert_close(attack(rows, 6, generator), 1.6 * rows)
    # two networks in different phases, batched: each group gets its own phase's attack
    out = attack.apply_groups(torch.cat([rows, rows]), [2, 2], [1, 4], [generator, generator])
    torch.testing.assert_close(out, torch.cat([rows, -1.05 * rows]))
    assert isinstance(make_attack("phased"), PhasedAttack)


@pytest.mark.parametrize(
    "phases", [[], [[1, "none"]], [[0, "none"], [0, "reversal"]], [[0, "none"], [5, "label-flip"]], ["none"]]
)
def test_bad_schedules_are_refused(phases) -> None:
    with pytest.raises(ConfigError):
        PhasedAttack(phases)


def test_dip_and_recovery_by_hand() -> None:
    rounds = np.arange(1, 121)
    accuracy = np.full(120, 0.8)
    accuracy[60:70] = 0.5  # strike after round 60: the low is 0.5
    accuracy[70:110] = 0.7  # recovers to 0.7 by the end of the 50 rounds after the strike
    dip, regained = dip_and_recovery(rounds, accuracy, strike=60)
    assert dip == pytest.approx(0.3) and regained == pytest.approx(0.2 / 0.3)
    assert all(np.isnan(dip_and_recovery(rounds[:80], accuracy[:80], strike=60)))  # the window is not covered
