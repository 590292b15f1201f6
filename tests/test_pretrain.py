"""The behaviour-cloning warm start (``pretrain`` hyper-parameter of ceas-train)."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import ceas_gym  # noqa: F401
from agents.registry import make_policy
from training.hyperparams import HyperparameterError
from training.pretrain import PretrainConfig, discounted_returns, load_pretrain_config
from training.train import main

TINY = "ceas_gym/EntanglementScheduling-Lite-Tiny-v0"


def test_discounted_returns_against_a_hand_computation() -> None:
    rewards = np.array([[1.0, 2.0], [3.0, 0.0], [5.0, 1.0]])
    dones = np.array([[False, False], [True, False], [False, False]])
    gamma = 0.5
    returns = discounted_returns(rewards, dones, gamma)
    # Column 0: the episode ends at t = 1, so t = 1 does not see t = 2; column 1 runs on to the end of the data.
    expected = np.array([[1 + 0.5 * 3, 2 + 0.5 * (0 + 0.5 * 1)], [3.0, 0 + 0.5 * 1], [5.0, 1.0]])
    np.testing.assert_allclose(returns, expected)


def test_absent_entry_means_no_warm_start() -> None:
    assert load_pretrain_config(None) is None


def test_entry_is_read_strictly() -> None:
    config = load_pretrain_config({"policy": "greedy", "timesteps": 500, "log_std": None})
    assert config == PretrainConfig(policy="greedy", timesteps=500, log_std=None)
    with pytest.raises(HyperparameterError, match=r"unknown key.*epoch.*allowed: policy"):
        load_pretrain_config({"epoch": 3})
    with pytest.raises(HyperparameterError, match=r"pretrain.policy = 'eff'.*eef"):
        load_pretrain_config({"policy": "eff"})
    with pytest.raises(HyperparameterError, match=r"pretrain.timesteps = 0"):
        load_pretrain_config({"timesteps": 0})
    with pytest.raises(HyperparameterError, match=r"pretrain.learning_rate"):
        load_pretrain_config({"learning_rate": -1.0})
    with pytest.raises(HyperparameterError, match="expected a mapping"):
        load_pretrain_config("eef")


def test_bad_entry_exits_2_naming_the_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--env", TINY, "-f", str(tmp_path), "--hyperparams", "pretrain:{policy: eef, epochz: 2}"])
    assert stop.value.code == 2
    assert "epochz" in capsys.readouterr().err


def _expert_gap(model_path: Path, seed: int) -> float:
    """Mean absolute difference between the saved model's actions and EEF's over one episode EEF plays."""
    env = gym.make(TINY)
    student = make_policy(str(model_path), env)
    expert = make_policy("eef", env)
    observation, info = env.reset(seed=seed)
    gaps = []
    done = False
    while not done:
        target = expert.act(observation, info)
        gaps.append(np.abs(np.clip(student.act(observation, info), 0, 1) - target).mean())
        observation, _, terminated, truncated, info = env.step(target)
        done = terminated or truncated
    return float(np.mean(gaps))


def test_warm_start_clones_the_expert_and_is_recorded(tmp_path: Path) -> None:
    common = ["--env", TINY, "-n", "64", "--seed", "3", "--eval-freq", "0", "--save-freq", "0", "--no-progress"]
    common += ["--verbose", "0", "--n-envs", "2"]
    fast = ["n_steps:32", "batch_size:32", "n_epochs:1", "learning_rate:0.0"]  # PPO leaves the policy as it is
    cloned = ["pretrain:{policy: eef, timesteps: 1000, epochs: 40, batch_size: 64, learning_rate: 0.003}"]
    assert main([*common, "-f", str(tmp_path / "plain"), "--hyperparams", *fast]) == 0
    assert main([*common, "-f", str(tmp_path / "warm"), "--hyperparams", *fast, *cloned]) == 0
    plain = tmp_path / "plain" / "ppo" / "ceas_gym-EntanglementScheduling-Lite-Tiny-v0_1"
    warm = tmp_path / "warm" / "ppo" / "ceas_gym-EntanglementScheduling-Lite-Tiny-v0_1"
    assert not (plain / "pretrain.json").exists()
    record = json.loads((warm / "pretrain.json").read_text())
    assert record["policy"] == "eef"
    assert record["demonstration_steps"] == 1000
    assert record["config"]["epochs"] == 40
    # The cloned policy acts much closer to EEF than the untrained one, on episodes it never saw.
    model_name = "ceas_gym-EntanglementScheduling-Lite-Tiny-v0.zip"
    plain_gap = np.mean([_expert_gap(plain / model_name, seed) for seed in (100, 101)])
    warm_gap = np.mean([_expert_gap(warm / model_name, seed) for seed in (100, 101)])
    assert warm_gap < 0.1 * plain_gap
    # The Gaussian's noise is set to the configured log std.
    from stable_baselines3 import PPO

    model = PPO.load(warm / "ceas_gym-EntanglementScheduling-Lite-Tiny-v0.zip")
    np.testing.assert_allclose(model.policy.log_std.detach().numpy(), -1.5)


def test_bound_margin_fits_entries_at_a_bound_beyond_it(tmp_path: Path) -> None:
    import torch
    from stable_baselines3.common.utils import obs_as_tensor

    common = ["--env", TINY, "-n", "64", "--seed", "3", "--eval-freq", "0", "--save-freq", "0", "--no-progress"]
    common += ["--verbose", "0", "--n-envs", "2", "--hyperparams", "n_steps:32", "batch_size:32", "learning_rate:0.0"]
    cloned = (
        "pretrain:{policy: eef, timesteps: 1000, epochs: 40, batch_size: 64, learning_rate: 0.003, bound_margin: 0.1}"
    )
    assert main([*common, cloned, "-f", str(tmp_path)]) == 0
    student = make_policy(
        str(tmp_path / "ppo" / "ceas_gym-EntanglementScheduling-Lite-Tiny-v0_1" / f"{TINY.replace('/', '-')}.zip"),
        gym.make(TINY),
    )
    env, expert = gym.make(TINY), make_policy("eef", gym.make(TINY))
    observation, info = env.reset(seed=100)
    low, high = [], []
    for _ in range(30):
        target = expert.act(observation, info)
        normalized = student.normalizer.normalize_obs({k: v[None] for k, v in observation.items()})
        with torch.no_grad():
            mean = student.model.policy.get_distribution(obs_as_tensor(normalized, "cpu")).distribution.mean[0].numpy()
        low.extend(mean[target == 0.0])
        high.extend(mean[target == 1.0])
        observation, _, _, _, info = env.step(target)
    # This expert's actions are one-hot (all attempts to one link, or none spent): every entry sits at a bound, and
    # the cloned means sit about 0.1 beyond it, so the clipped action is the expert's.
    assert len(low) > 0 and len(high) > 0
    assert np.max(low) < -0.05
    assert np.min(high) > 1.05
