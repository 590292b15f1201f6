"""Hostile and broken input to the training and evaluation tools: no code runs from a file, runs survive faults.

Each case ends in a clear error naming what was wrong, or in a safe outcome; none runs code from the input.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import ceas_gym  # noqa: F401
from agents.normalizer_io import NormalizerStatistics, UntrustedFileError, read_statistics, save_statistics
from agents.ppo import PPOPolicy
from ceas_gym.plugins import PluginError, resolve_env_id
from evaluation.cli import main as eval_main
from training import hyperparams as hp
from training.checkpoints import find_checkpoint, save_checkpoint
from training.policy_kwargs import PolicyKwargsError, parse_policy_kwargs
from training.run_lock import RunLock, RunLockedError
from training.tensorboard_purge import purge_events_after
from training.train import main as train_main

TINY = "ceas_gym/EntanglementScheduling-Lite-Tiny-v0"
QUIET = ["--no-progress", "--verbose", "0"]
FAST = ["--hyperparams", "n_steps:64", "batch_size:64", "n_epochs:1", "--n-envs", "1", *QUIET]


class _OpenOnLoad:
    """A pickle payload: unpickling it creates a file (what any code in a pickle could do instead)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _tiny_model(env_id: str = TINY):
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    venv = VecNormalize(make_vec_env(env_id, n_envs=1, seed=0))
    return PPO("MultiInputPolicy", venv, n_steps=64, batch_size=64, seed=0, device="cpu")


# ------------------------------------------------------------------------------------------------ policy_kwargs
EXPLOITS = [
    "th.os.system('touch {marker}') and dict() or dict()",
    "().__class__.__base__.__subclasses__()",
    "__import__('os').system('touch {marker}')",
    "dict(net_arch=[64], activation_fn=th.os.system('touch {marker}'))",
    "dict(**{{'net_arch': [64]}})",
    "(lambda: dict())()",
    "dict(net_arch=[64 * 2])",
    "dict(net_arch=[x for x in range(3)])",
    "nn.ReLU.__init__.__globals__",
    "dict(a=nn.Module)",
    "getattr(th, 'os')",
    "dict(a=open('{marker}', 'w'))",
]


@pytest.mark.parametrize("text", EXPLOITS)
def test_policy_kwargs_strings_that_would_run_code_are_refused(text: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(PolicyKwargsError, match="policy_kwargs"):
        parse_policy_kwargs(text.format(marker=marker))
    assert not marker.exists()


def test_policy_kwargs_from_the_command_line_and_a_conf_file_exit_2_without_running(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "ran"
    attack = f"th.os.system('touch {marker}') and dict() or dict()"
    with pytest.raises(SystemExit) as exit_:
        train_main(["--env", TINY, "-f", str(tmp_path), "--hyperparams", f"policy_kwargs:{attack}", *QUIET])
    assert exit_.value.code == 2 and "is not allowed" in capsys.readouterr().err
    conf = tmp_path / "evil.yml"
    conf.write_text(json.dumps({"default": {"policy_kwargs": attack}}), encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        train_main(["--env", TINY, "-f", str(tmp_path), "--conf-file", str(conf), *QUIET])
    assert exit_.value.code == 2 and "policy_kwargs" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "ppo").exists()  # refused before any run folder was made


def test_policy_kwargs_accepts_the_zoo_string_and_yaml_class_names() -> None:
    parsed = parse_policy_kwargs(
        "dict(net_arch=dict(pi=[64, 64], vf=(32,)), activation_fn=th.nn.Tanh, log_std_init=-1.5)"
    )
    assert parsed == {"net_arch": {"pi": [64, 64], "vf": (32,)}, "activation_fn": torch.nn.Tanh, "log_std_init": -1.5}
    mapping = parse_policy_kwargs({"net_arch": [16], "activation_fn": "nn.ReLU", "optimizer_class": "th.optim.AdamW"})
    assert mapping == {"net_arch": [16], "activation_fn": torch.nn.ReLU, "optimizer_class": torch.optim.AdamW}
    with pytest.raises(PolicyKwargsError, match=r"activation_fn names 'os.system'"):
        parse_policy_kwargs({"activation_fn": "os.system"})
    with pytest.raises(PolicyKwargsError, match="expected a class name"):
        parse_policy_kwargs({"activation_fn": 3})


# ------------------------------------------------------------------------------------------------ pickles
def test_a_pickled_normaliser_beside_a_model_is_refused_unless_trusted(tmp_path: Path, capsys) -> None:
    model = _tiny_model()
    model.save(tmp_path / "model.zip")
    marker = tmp_path / "ran"
    (tmp_path / "model_vecnormalize.pkl").write_bytes(pickle.dumps(_OpenOnLoad(marker)))
    with pytest.raises(UntrustedFileError, match="--trust-pickle"):
        PPOPolicy.load(tmp_path / "model.zip", env=gym.make(TINY))
    with pytest.raises(SystemExit) as exit_:
        eval_main(
            ["--env", TINY, "--policies", str(tmp_path / "model.zip"), "--seeds", "0", "--out", str(tmp_path / "o")]
        )
    assert exit_.value.code == 2 and "unpickling runs code" in capsys.readouterr().err
    assert not marker.exists()


def test_npz_statistics_normalise_as_sb3_does_and_survive_a_round_trip(tmp_path: Path) -> None:
    model = _tiny_model()
    venv = model.get_env()
    venv.reset()
    for _ in range(20):  # move the running statistics away from their initial values
        venv.step(np.array([venv.action_space.sample()]))
    path = save_statistics(venv, tmp_path / "s.npz")
    stats = read_statistics(path)
    direct = NormalizerStatistics.from_vecnormalize(venv)
    assert stats.obs_keys == direct.obs_keys == tuple(venv.obs_rms) and stats.clip_obs == direct.clip_obs
    for read, held in zip(stats.obs, direct.obs, strict=True):
        assert np.array_equal(read.mean, held.mean) and np.array_equal(read.var, held.var)
        assert read.count == held.count
    raw = venv.get_original_obs()
    ours, theirs = stats.normalize_obs(raw), venv.normalize_obs(raw)
    for key in theirs:
        assert ours[key].dtype == theirs[key].dtype and np.array_equal(ours[key], theirs[key]), key
    with np.load(path, allow_pickle=False) as content:  # plain arrays only
        assert all(content[name].dtype != object for name in content.files)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a normaliser statistics file"):
        read_statistics(tmp_path / "bad.npz")


# ------------------------------------------------------------------------------------------------ paths and ids
@pytest.mark.parametrize("name", ["../../outside.zip", "/tmp/outside.zip", "sub/dir.zip", "..", ""])
def test_a_checkpoint_record_cannot_point_outside_its_folder(tmp_path: Path, name: str) -> None:
    model = _tiny_model()
    folder = tmp_path / "run" / "checkpoints"
    model.num_timesteps = 64
    save_checkpoint(model, folder)
    outside = tmp_path / "outside.zip"
    model.save(outside)  # a valid model that the record tries to reach
    (folder / "rl_model_128_steps.json").write_text(json.dumps({"num_timesteps": 128, "model": name}))
    choice = find_checkpoint(folder, needs_normalizer=True)
    assert choice.model == (folder / "rl_model_64_steps.zip").resolve() and choice.num_timesteps == 64
    assert len(choice.skipped) == 1
    reason = choice.skipped[0][1]
    assert "not a plain file name" in reason or "resolves outside" in reason


@pytest.mark.parametrize("env_id", ["./evil.py:X-v0", "a/b:X-v0", "../evil:X-v0", "/abs/path:X-v0", "x-y:X-v0"])
def test_module_parts_of_ids_that_are_paths_are_refused(env_id: str) -> None:
    with pytest.raises(PluginError, match="not a dotted Python module name"):
        resolve_env_id(env_id)


# ------------------------------------------------------------------------------------------------ locks
def test_a_run_folder_is_locked_and_a_second_run_exits_2_naming_the_holder(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    (run).mkdir()
    (run / "config.yml").write_text("{}")
    with RunLock(run):
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            RunLock(run).acquire()
        with pytest.raises(SystemExit) as exit_:
            train_main(["--resume", str(run), *QUIET])
        assert exit_.value.code == 2 and f"in use by pid {os.getpid()}" in capsys.readouterr().err
    RunLock(run).acquire()  # released on exit: free again


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path: Path, capsys) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / ".lock").write_text(json.dumps({"pid": pid, "host": "elsewhere"}))
    lock = RunLock(tmp_path)
    lock.acquire()
    assert f"stale lock of pid {pid}" in capsys.readouterr().err
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    lock.release()
    assert (tmp_path / ".lock").read_text() == ""  # a clean exit leaves nothing to take over


# ------------------------------------------------------------------------------------------------ resume
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logs = tmp_path_factory.mktemp("logs")
    argv = ["--env", TINY, "-n", "256", "-f", str(logs), "--seed", "1", "--eval-freq", "0", "--save-freq", "64"]
    assert train_main([*argv, *FAST]) == 0
    return logs / "ppo" / "ceas_gym-EntanglementScheduling-Lite-Tiny-v0_1"


def test_resume_falls_back_past_a_truncated_record_and_a_broken_zip(finished_run: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    checkpoints = run / "checkpoints"
    record = checkpoints / "rl_model_256_steps.json"
    record.write_text(record.read_text()[:20])  # cut short
    (checkpoints / "rl_model_192_steps.zip").write_bytes(b"PK\x03\x04 not really a zip")
    (run / "config.yml").write_text((run / "config.yml").read_text().replace("n_timesteps: 256", "n_timesteps: 320"))
    assert train_main(["--resume", str(run), "--save-freq", "64", "--eval-freq", "0", *QUIET]) == 0
    err = capsys.readouterr().err
    assert "skipped checkpoint rl_model_256_steps.json: record does not parse" in err
    assert "skipped checkpoint rl_model_192_steps.json: model rl_model_192_steps.zip is not a zip file" in err
    assert find_checkpoint(checkpoints, needs_normalizer=True).num_timesteps == 320
    steps = sorted(json.loads(p.read_text())["num_timesteps"] for p in checkpoints.glob("rl_model_*_steps.json"))
    assert steps == [64, 128, 192, 256, 320]  # 192 and 256 rewritten by the resumed run from 128


def test_resume_without_any_loadable_checkpoint_exits_2(finished_run: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    for statistics in (run / "checkpoints").glob("*.npz"):
        statistics.unlink()
    with pytest.raises(SystemExit) as exit_:
        train_main(["--resume", str(run), *QUIET])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "no checkpoint in" in err and "loads" in err
    assert "skipped checkpoint rl_model_256_steps.json" in err


def test_purge_drops_events_after_the_checkpoint_step(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tmp_path / "PPO_1"))
    for step in range(1, 11):
        writer.add_scalar("a", float(step), step)
        writer.add_scalar("b", -float(step), step)
    writer.close()
    assert purge_events_after(tmp_path, 4) == 12
    accumulator = EventAccumulator(str(tmp_path / "PPO_1"))
    accumulator.Reload()
    assert [event.step for event in accumulator.Scalars("a")] == [1, 2, 3, 4]
    assert [event.value for event in accumulator.Scalars("b")] == [-1.0, -2.0, -3.0, -4.0]
    assert purge_events_after(tmp_path, 4) == 0  # idempotent


# ------------------------------------------------------------------------------------------------ ranges
BAD_HYPERPARAMETERS = [
    ("gamma:1.5", "gamma = 1.5: allowed is (0, 1]"),
    ("gamma:0", "gamma = 0: allowed is (0, 1]"),
    ("gamma:true", "gamma = True: expected a finite number"),
    ("gae_lambda:1.01", "gae_lambda"),
    ("clip_range:0", "clip_range = 0: allowed is a finite number > 0"),
    ("clip_range_vf:-1", "clip_range_vf"),
    ("n_epochs:0", "n_epochs = 0: expected an integer >= 1"),
    ("n_steps:0", "n_steps = 0"),
    ("batch_size:0", "batch_size = 0"),
    ("batch_size:4096", "batch_size = 4096: allowed is at most n_steps x n_envs = 128"),
    ("learning_rate:-0.001", "learning_rate = -0.001"),
    ("learning_rate:.nan", "learning_rate = nan: expected a finite number"),
    ("learning_rate:lin_3e-4", "learning_rate = 'lin_3e-4': expected a finite number"),
    ("ent_coef:-0.1", "ent_coef = -0.1: allowed is a finite number >= 0"),
    ("vf_coef:.inf", "vf_coef = inf: expected a finite number"),
    ("max_grad_norm:0", "max_grad_norm"),
    ("target_kl:-0.01", "target_kl"),
    ("policy:CnnPolicy", "policy = 'CnnPolicy': allowed are MultiInputPolicy, MlpPolicy"),
    ("policy_kwargs:dict(net_arch=[0])", r"policy_kwargs.net_arch\[0\] = 0"),
    ("policy_kwargs:dict(net_arch=[-64])", r"policy_kwargs.net_arch\[0\] = -64"),
    ("policy_kwargs:dict(net_arch=dict(pi=[64], vf=[0]))", r"policy_kwargs.net_arch.vf\[0\]"),
    ("policy_kwargs:dict(net_arch=dict(pi=[64], xx=[8]))", "unknown head 'xx'"),
    ("policy_kwargs:dict(net_arch=64)", "expected a list of layer sizes"),
]


@pytest.mark.parametrize(("item", "message"), BAD_HYPERPARAMETERS)
def test_hyperparameters_out_of_range_exit_2_naming_the_key(item: str, message: str, tmp_path: Path, capsys) -> None:
    argv = ["--env", TINY, "-f", str(tmp_path), "--hyperparams", "n_steps:64", item, "--n-envs", "2", *QUIET]
    with pytest.raises(SystemExit) as exit_:
        train_main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message.replace("\\", "") in err, err
    assert not (tmp_path / "ppo").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--threads", "-1"], "--threads -1"),
        (["--device", "gpu"], "--device 'gpu': allowed are cpu, cuda, cuda:N and auto"),
        (["--eval-episodes", "0"], "--eval-episodes 0"),
        (["-n", "0"], "--n-timesteps 0"),
        (["--n-envs", "0"], "--n-envs 0"),
        (["--seed", "-3"], "seeds must be >= 0"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(flags: list[str], message: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        train_main(["--env", TINY, "-f", str(tmp_path), *flags, *QUIET])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_range_checks_pass_the_shipped_file() -> None:
    table = hp.load_file()
    for env_id in table:
        merged = hp.merge(table, env_id, {})
        hp.check_ranges(merged)
