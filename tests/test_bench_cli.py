import itertools
import json
from pathlib import Path

import pytest

from evaluation.bench import PhaseTimer, main, measure_vec_steps_per_second

TINY = "ceas_gym/EntanglementScheduling-Lite-Tiny-v0"


def ticking_clock(step: float):
    counter = itertools.count()
    return lambda: next(counter) * step


def test_phase_timer_accumulates_per_phase_with_a_fake_clock() -> None:
    timer = PhaseTimer(clock=ticking_clock(0.5))  # each clock read advances 0.5 s

    def work(x: int) -> int:
        return 2 * x

    timed = timer.wrap("a", work)
    assert timed(3) == 6 and timed(4) == 8
    assert timer.seconds == {"a": 1.0} and timer.calls == {"a": 2}


def test_vectorised_throughput_counts_n_envs_steps_per_call() -> None:
    # Clock reads: start, then one per vector step; 0.1 s apart, so a 0.35 s window takes 4 vector steps.
    record = measure_vec_steps_per_second(TINY, 3, "dummy", 0.35, warmup=2, num_actions=4, clock=ticking_clock(0.1))
    assert record["steps"] == 4 * 3
    assert record["seconds"] == pytest.approx(0.4)
    assert record["steps_per_second"] == pytest.approx(12 / 0.4)
    with pytest.raises(ValueError, match="duration_s"):
        measure_vec_steps_per_second(TINY, 1, "dummy", 0.0)


def test_env_subcommand_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    assert (
        main(["env", "--env", TINY, "--duration", "0.05", "--n-envs", "2", "--vec-env", "dummy", "--out", str(out)])
        == 0
    )
    record = json.loads(out.read_text())
    (single,) = record["single"]
    (vectorised,) = record["vectorised"]
    assert single["env_id"] == TINY and single["steps"] > 0
    assert vectorised["n_envs"] == 2 and vectorised["steps"] % 2 == 0
    assert vectorised["steps_per_second"] == pytest.approx(vectorised["steps"] / vectorised["seconds"])
    assert record["environment"]["versions"]["stable-baselines3"]
    assert len(record["environment"]["load_average_1_5_15_min"]) == 3
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the figure beside the record


def test_ppo_subcommand_splits_wall_time(tmp_path: Path) -> None:
    out = tmp_path / "ppo.json"
    argv = ["ppo", "--env", TINY, "--n-timesteps", "128", "--n-envs", "2", "--out", str(out)]
    assert main([*argv, "--hyperparams", "n_steps:32", "batch_size:32", "n_epochs:1"]) == 0
    record = json.loads(out.read_text())
    share, seconds = record["share"], record["seconds"]
    assert record["num_timesteps"] == 128
    assert record["iterations"] == 128 // (32 * 2)  # one update per rollout of n_steps x n_envs
    assert share["rollout"] + share["update"] + share["other"] == pytest.approx(1.0)
    assert 0 < seconds["env_step"] <= seconds["rollout"] <= seconds["total"]
    assert share["policy_in_rollout"] == pytest.approx(share["rollout"] - share["env_step"])
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (Path.cwd() / "tensorboard").exists()


def test_ppo_subcommand_runs_the_warm_start_outside_the_timed_window(tmp_path: Path) -> None:
    out = tmp_path / "ppo.json"
    argv = ["ppo", "--env", TINY, "--n-timesteps", "128", "--n-envs", "2", "--out", str(out)]
    hyper = ["n_steps:32", "batch_size:32", "n_epochs:1", "pretrain:{policy: eef, timesteps: 200, epochs: 1}"]
    assert main([*argv, "--hyperparams", *hyper]) == 0
    record = json.loads(out.read_text())
    assert record["num_timesteps"] == 128  # the 200 demonstration steps are not PPO's
    assert record["seconds"]["pretrain_untimed"] > 0
    assert record["share"]["rollout"] + record["share"]["update"] + record["share"]["other"] == pytest.approx(1.0)


def test_unknown_env_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["env", "--env", "ceas_gym/EntanglementScheduling-Lite-Tny-v0"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "did you mean" in error.lower() and repr(TINY) in error
