"""Studies of several seeds (``ceas-train --seed A B``), and the Ray backend of ``ceas-eval`` and ``ceas-train``.

The Ray tests start a real Ray head on 127.0.0.1 (``ray start --head --block``), run two-task studies through it
and compare every result with the local backend; they are slow and need the optional ``ray`` extra.
"""

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from evaluation.cli import main as eval_main
from training.run_folder import claim_run_folder
from training.train import main as train_main
from training.train import single_run_argv

TINY = "ceas_gym/EntanglementScheduling-Lite-Tiny-v0"
LITE = "ceas_gym/EntanglementScheduling-Lite-v0"
FAST_TRAIN = [
    "-n",
    "128",
    "--hyperparams",
    "n_steps:64",
    "batch_size:32",
    "n_epochs:1",
    "--n-envs",
    "1",
    "--eval-freq",
    "0",
    "--no-progress",
    "--verbose",
    "0",
]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def policy_weights(run: Path) -> dict[str, torch.Tensor]:
    from stable_baselines3 import PPO

    return PPO.load(run / "ceas_gym-EntanglementScheduling-Lite-Tiny-v0.zip", device="cpu").policy.state_dict()


def runs_by_seed(log_folder: Path) -> dict[int, Path]:
    """Run folders of a study keyed by the seed their ``config.yml`` records."""
    import yaml

    found = {}
    for run in (log_folder / "ppo").iterdir():
        config = yaml.safe_load((run / "config.yml").read_text(encoding="utf-8"))
        found[int(config["seed"])] = run
    return found


# ------------------------------------------------------------------------------------------- studies, no Ray
QUIET = "--no-progress"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--env", "E", "--seed", "0", "1", "2", "-n", "5"], ["--env", "E", "-n", "5", "--seed", "7", QUIET]),
        (["--seed=4", "--backend", "ray", "--address", "h:1", "--env", "E"], ["--env", "E", "--seed", "7", QUIET]),
        (["--backend=ray", "--address=auto", QUIET], [QUIET, "--seed", "7"]),
        (["--seed", "1", "2", "--hyperparams", "gamma:0.9"], ["--hyperparams", "gamma:0.9", "--seed", "7", QUIET]),
    ],
)
def test_single_run_argv_keeps_everything_but_the_study_flags(argv: list[str], expected: list[str]) -> None:
    assert single_run_argv(argv, 7) == expected


def test_claimed_run_folders_are_distinct_and_numbered_on(tmp_path: Path) -> None:
    first = claim_run_folder(tmp_path, TINY)
    second = claim_run_folder(tmp_path, TINY)
    assert first.is_dir() and second.is_dir()
    assert [first.name, second.name] == [
        "ceas_gym-EntanglementScheduling-Lite-Tiny-v0_1",
        "ceas_gym-EntanglementScheduling-Lite-Tiny-v0_2",
    ]


def test_a_study_trains_one_run_per_seed_equal_to_the_single_seed_runs(tmp_path: Path) -> None:
    assert train_main(["--env", TINY, "-f", str(tmp_path / "study"), "--seed", "3", "4", *FAST_TRAIN]) == 0
    assert train_main(["--env", TINY, "-f", str(tmp_path / "single"), "--seed", "4", *FAST_TRAIN]) == 0
    study = runs_by_seed(tmp_path / "study")
    assert sorted(study) == [3, 4]
    single = policy_weights(tmp_path / "single" / "ppo" / "ceas_gym-EntanglementScheduling-Lite-Tiny-v0_1")
    same_seed, other_seed = policy_weights(study[4]), policy_weights(study[3])
    assert all(torch.equal(single[key], same_seed[key]) for key in single)
    assert not all(torch.equal(single[key], other_seed[key]) for key in single)
    assert "--seed 4" in (study[4] / "command.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize(("main", "output"), [(train_main, "-f"), (eval_main, "--out")])
def test_address_without_ray_backend_exits_2(main, output: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--env", TINY, "--address", "127.0.0.1:6379", output, str(tmp_path)])
    assert exit_.value.code == 2
    assert "--backend ray" in capsys.readouterr().err


def test_study_rejects_negative_seeds_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        train_main(["--env", TINY, "--seed", "1", "-2"])
    assert "seeds must be >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["--resume", str(tmp_path), "--seed", "1", "2"])
    assert "--resume continues one run" in capsys.readouterr().err


def test_missing_ray_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes ``import ray`` raise ImportError
    with pytest.raises(SystemExit) as exit_:
        eval_main(["--env", LITE, "--policies", "eef", "--seeds", "0", "--backend", "ray", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert 'pip install -e ".[ray]"' in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ a real Ray head
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Ray head on 127.0.0.1 with 2 CPUs, stopped (its process group killed) after the module."""
    pytest.importorskip("ray")
    executable = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if executable is None:
        pytest.skip("the ray command is not installed")
    port = free_port()
    environment = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    temp_dir = tmp_path_factory.mktemp("ray")
    head = subprocess.Popen(
        [
            *[executable, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}"],
            *["--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp_dir}"],
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        if time.monotonic() > deadline or head.poll() is not None:
            os.killpg(head.pid, signal.SIGKILL)
            pytest.fail("the Ray head did not start within 60 s")
        time.sleep(0.5)
    time.sleep(2.0)  # the GCS port opens before the raylet has registered its CPUs
    try:
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


@pytest.mark.slow
def test_eval_through_a_ray_head_equals_the_local_backend(ray_head: str, tmp_path: Path) -> None:
    common = ["--env", LITE, "--policies", "eef", "random", "--seeds", "0", "--no-plots", "--no-progress"]
    assert eval_main([*common, "--out", str(tmp_path / "local")]) == 0
    assert eval_main([*common, "--backend", "ray", "--address", ray_head, "--out", str(tmp_path / "ray")]) == 0
    local, remote = read_rows(tmp_path / "local" / "episodes.csv"), read_rows(tmp_path / "ray" / "episodes.csv")
    assert [row["policy"] for row in remote] == ["eef", "random"]
    assert remote == local


@pytest.mark.slow
def test_train_study_through_a_ray_head_equals_the_local_runs(ray_head: str, tmp_path: Path) -> None:
    study = ["--env", TINY, "--seed", "3", "4", *FAST_TRAIN]
    assert train_main([*study, "-f", str(tmp_path / "local")]) == 0
    assert train_main([*study, "-f", str(tmp_path / "ray"), "--backend", "ray", "--address", ray_head]) == 0
    local, remote = runs_by_seed(tmp_path / "local"), runs_by_seed(tmp_path / "ray")
    assert sorted(remote) == [3, 4]
    for seed in (3, 4):
        expected, got = policy_weights(local[seed]), policy_weights(remote[seed])
        assert all(torch.equal(expected[key], got[key]) for key in expected)
