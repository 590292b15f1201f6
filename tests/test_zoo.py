"""rl-baselines3-zoo's own trainer: ``training/hyperparams/zoo_ppo.yml`` covers every registered id, and (where
rl-zoo3 is installed, slow) ``rl_zoo3.train`` then ``rl_zoo3.enjoy`` run on each of them unchanged."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import yaml

import ceas_gym  # noqa: F401  (registers the environments)
from ceas_gym.wrappers import for_frameworks

ZOO_FILE = Path(__file__).resolve().parents[1] / "training" / "hyperparams" / "zoo_ppo.yml"
REGISTERED = sorted(env_id for env_id in gym.registry if env_id.startswith("ceas_gym/"))


def test_the_zoo_file_has_an_entry_for_every_registered_id_that_wraps_it_for_the_frameworks() -> None:
    table = yaml.safe_load(ZOO_FILE.read_text(encoding="utf-8"))
    assert set(REGISTERED) <= set(table)
    for env_id in REGISTERED:
        entry = table[env_id]
        module, name = entry["env_wrapper"].rsplit(".", 1)
        assert getattr(importlib.import_module(module), name) is for_frameworks
        assert entry["policy"] == "MultiInputPolicy" and entry["n_timesteps"] > 0


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("rl_zoo3") is None, reason="rl-zoo3 is not installed (extra zoo)")
@pytest.mark.parametrize("env_id", REGISTERED)
def test_rl_zoo3_trains_and_replays_every_registered_id(env_id: str, tmp_path: Path) -> None:
    common = ["--algo", "ppo", "--env", env_id, "--gym-packages", "ceas_gym", "-f", str(tmp_path / "logs")]
    train = [
        sys.executable, "-m", "rl_zoo3.train", *common, "--conf-file", str(ZOO_FILE), "-n", "64", "--eval-freq", "-1",
        "--hyperparams", "n_envs:1", "n_steps:32", "batch_size:32", "--verbose", "0",
    ]  # fmt: skip
    result = subprocess.run(train, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    name = env_id.replace("/", "-")
    assert (tmp_path / "logs" / "ppo" / f"{name}_1" / f"{name}.zip").is_file()
    enjoy = [sys.executable, "-m", "rl_zoo3.enjoy", *common, "--exp-id", "1", "--no-render", "-n", "10"]
    result = subprocess.run(enjoy, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{name}.zip" in result.stdout
