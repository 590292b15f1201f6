"""``ceas-stakes``: the bracket between idle and perfect communication, paired over seeds, with its PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaluation.runner import EpisodeResult
from evaluation.stakes import PERFECT, best_heuristic, main, with_perfect_rows

ENV = "ceas_gym/EntanglementScheduling-Small-v0"


def test_bracket_positions_by_hand() -> None:
    def result(policy: str, seed: int, accuracy: float) -> EpisodeResult:
        return EpisodeResult({"env": "e", "policy": policy, "seed": seed, "accuracy_mean": accuracy})

    scheduled = [result("idle", 0, 0.5), result("idle", 1, 0.6), result("eef", 0, 0.7), result("eef", 1, 0.8)]
    perfect = [result("idle", 0, 0.9), result("idle", 1, 1.0)]
    rows = with_perfect_rows(scheduled, perfect)
    position = {(row["policy"], row["seed"]): row["bracket"] for row in rows}
    # bracket of the means: idle 0.55, perfect 0.95, span 0.4
    assert position[("eef", 0)] == pytest.approx(0.15 / 0.4) and position[("eef", 1)] == pytest.approx(0.25 / 0.4)
    assert position[(PERFECT, 1)] == pytest.approx(0.05 / 0.4 + 1.0)
    assert best_heuristic(rows) == "eef"  # idle and perfect are references, not heuristics


def test_the_command_runs_every_policy_and_the_perfect_reference(tmp_path, capsys) -> None:
    out = tmp_path / "stakes"
    argv = ["--env", ENV, "--seeds", "0-1", "--policies", "idle", "eef", "--env-kwargs", "max_rounds:12"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    rows = json.loads((out / "episodes.json").read_text())
    assert sorted({row["policy"] for row in rows}) == ["eef", "idle", PERFECT]
    idle = [row["bracket"] for row in rows if row["policy"] == "idle"]
    perfect = [row["bracket"] for row in rows if row["policy"] == PERFECT]
    assert np.mean(idle) == pytest.approx(0.0) and np.mean(perfect) == pytest.approx(1.0)
    assert all(row["exchanges_granted_fraction_mean"] == 1.0 for row in rows if row["policy"] == PERFECT)
    assert all(row["consumed_mean"] == 0 for row in rows if row["policy"] == "idle")
    printed = capsys.readouterr().out
    assert "Paired difference from idle" in printed and "bracket position" in printed
    assert (out / "stakes_EntanglementScheduling-Small-v0.png").stat().st_size > 0


def test_the_command_refuses_to_set_communication_itself(tmp_path) -> None:
    with pytest.raises(SystemExit) as error:
        main(["--env", ENV, "--env-kwargs", "communication:perfect", "--out", str(tmp_path)])
    assert error.value.code == 2
    with pytest.raises(SystemExit):
        main(["--env", ENV, "--policies", "nope", "--out", str(tmp_path)])
