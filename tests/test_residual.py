"""Residual policies: PPO learns a bounded correction of a baseline's action (``residual`` hyper-parameter)."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import ceas_gym  # noqa: F401
from agents.ppo import PPOPolicy
from agents.registry import make_policy
from agents.residual import compose_action, read_residual_settings, residual_path_for
from training.hyperparams import HyperparameterError
from training.residual import ResidualActionVecEnv, ResidualConfig, check_residual_space, load_residual_config
from training.train import main, make_training_envs

SMALL = "ceas_gym/EntanglementScheduling-Small-v0"
SHORT = {"max_rounds": 4, "flatten_observation": True}  # episodes end inside the tests: baselines are reset


def test_compose_action_against_a_hand_computation() -> None:
    space = spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32)
    base = np.array([0.2, 0.0, 0.95, 0.5])
    residual = np.array([0.5, -1.0, 1.0, 3.0])  # the last entry is clipped to 1 before scaling
    action = compose_action(base, residual, 0.1, space)
    np.testing.assert_allclose(action, [0.25, 0.0, 1.0, 0.6], atol=1e-7)
    assert action.dtype == np.float32
    batch = compose_action(np.stack([base, base]), np.zeros((2, 4)), 0.1, space)
    np.testing.assert_array_equal(batch, np.stack([base, base]).astype(np.float32))


def test_entry_is_read_strictly() -> None:
    assert load_residual_config(None) is None
    assert load_residual_config({"policy": "greedy", "scale": 0.02}) == ResidualConfig("greedy", 0.02)
    with pytest.raises(HyperparameterError, match=r"unknown key.*scal\b.*allowed: policy, scale"):
        load_residual_config({"scal": 0.1})
    with pytest.raises(HyperparameterError, match=r"residual.policy = 'eff'.*eef"):
        load_residual_config({"policy": "eff"})
    for bad in (0, -0.1, float("inf"), True, "0.1"):
        with pytest.raises(HyperparameterError, match=r"residual.scale"):
            load_residual_config({"scale": bad})
    with pytest.raises(HyperparameterError, match="expected a mapping"):
        load_residual_config("eef")


def test_only_bounded_box_actions_take_a_residual() -> None:
    box = spaces.Box(0.0, 1.0, shape=(3,), dtype=np.float32)
    assert check_residual_space(box) is box
    for space in (spaces.Discrete(4), spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)):
        with pytest.raises(HyperparameterError, match="needs a bounded Box action space"):
            check_residual_space(space)


def test_zero_residuals_replay_the_baseline_exactly() -> None:
    """The wrapper with zero corrections steps the env as the baseline itself would, through auto-resets."""
    config = ResidualConfig("eef", 0.05)
    wrapped = make_training_envs(SMALL, 2, 11, dict(SHORT), "dummy", config)
    plain = make_training_envs(SMALL, 2, 11, dict(SHORT), "dummy")
    assert isinstance(wrapped, ResidualActionVecEnv)
    assert wrapped.action_space == spaces.Box(-1.0, 1.0, shape=plain.action_space.shape, dtype=np.float32)
    experts = [make_policy("eef", gym.make(SMALL, **SHORT)) for _ in range(2)]
    observation, expected = wrapped.reset(), plain.reset()
    ended = np.zeros(2, dtype=int)
    for _ in range(9):  # two 4-round episodes and the first step of the third
        np.testing.assert_array_equal(observation, expected)
        base = np.stack([expert.act(row, {}) for expert, row in zip(experts, expected, strict=True)])
        np.testing.assert_array_equal(wrapped.base_actions(), base)
        observation, reward, done, _ = wrapped.step(np.zeros((2, *plain.action_space.shape), dtype=np.float32))
        expected, expected_reward, expected_done, _ = plain.step(base)
        np.testing.assert_array_equal(reward, expected_reward)
        np.testing.assert_array_equal(done, expected_done)
        ended += done
    np.testing.assert_array_equal(ended, [2, 2])


def test_corrections_move_the_action_by_the_scale() -> None:
    config = ResidualConfig("eef", 0.05)
    wrapped = make_training_envs(SMALL, 1, 3, dict(SHORT), "dummy", config)
    plain = make_training_envs(SMALL, 1, 3, dict(SHORT), "dummy")
    wrapped.reset(), plain.reset()
    residual = np.random.default_rng(0).uniform(-1.0, 1.0, size=(1, *plain.action_space.shape))
    composed = compose_action(wrapped.base_actions(), residual, 0.05, plain.action_space)
    assert np.abs(composed - wrapped.base_actions()).max() <= 0.05 + 1e-7
    observation, reward, *_ = wrapped.step(residual.astype(np.float32))
    expected, expected_reward, *_ = plain.step(composed)
    np.testing.assert_array_equal(observation, expected)
    np.testing.assert_array_equal(reward, expected_reward)


def test_a_fresh_residual_model_acts_as_its_baseline_and_evaluation_composes(tmp_path: Path) -> None:
    """Zero-initialised action head: before learning, the saved model is EEF; ceas-eval's loader knows it."""
    status = main(
        ["--env", SMALL, "-n", "16", "-f", str(tmp_path), "--vec-env", "dummy", "--n-envs", "2", "--no-progress",
         "--eval-freq", "0", "--env-kwargs", "max_rounds:4",
         "--hyperparams", "pretrain:null", "residual:{policy: eef, scale: 0.05}", "n_steps:8", "batch_size:8",
         "learning_rate:0.0"]
    )  # fmt: skip
    assert status == 0
    run = next((tmp_path / "ppo").iterdir())
    for folder in (run, run / "checkpoints"):
        assert json.loads((folder / "residual.json").read_text()) == {"policy": "eef", "scale": 0.05}
    model_path = run / "ceas_gym-EntanglementScheduling-Small-v0.zip"
    assert residual_path_for(model_path) == run / "residual.json"
    env = gym.make(SMALL, max_rounds=4)
    policy = make_policy(str(model_path), env)
    assert isinstance(policy, PPOPolicy) and policy.residual is not None
    expert = make_policy("eef", env)
    observation, info = env.reset(seed=5)
    for _ in range(4):
        action = policy.act(observation, info)
        np.testing.assert_array_equal(action, expert.act(observation, info))
        observation, _, _, _, info = env.step(action)
    with pytest.raises(ValueError, match="needs the environment"):
        PPOPolicy.load(model_path)


def test_a_residual_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """The checkpoint folder also holds residual.json; resuming must still find the latest checkpoint."""
    common = ["--no-progress", "--eval-freq", "0"]
    first = main(
        ["--env", SMALL, "-n", "16", "-f", str(tmp_path), "--vec-env", "dummy", "--n-envs", "2", "--save-freq", "8",
         "--env-kwargs", "max_rounds:4", "--hyperparams", "pretrain:null", "residual:{policy: eef, scale: 0.05}",
         "n_steps:8", "batch_size:8", *common]
    )  # fmt: skip
    run = next((tmp_path / "ppo").iterdir())
    assert first == 0 and (run / "checkpoints" / "residual.json").is_file()
    assert main(["--resume", str(run), "-n", "32", *common]) == 0
    record = json.loads((run / "checkpoints" / "rl_model_32_steps.json").read_text())
    assert record["num_timesteps"] == 32


def test_pretrain_and_residual_together_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--env", SMALL, "-f", str(tmp_path), "--hyperparams", "residual:{policy: eef}"])  # the file's pretrain
    assert stop.value.code == 2
    assert "pretrain and residual: give at most one" in capsys.readouterr().err


def test_residual_file_is_read_strictly(tmp_path: Path) -> None:
    path = tmp_path / "residual.json"
    path.write_text('{"policy": "eef", "scale": 0.02}')
    assert read_residual_settings(path) == ("eef", 0.02)
    for text, message in (
        ('{"policy": "eef"}', "exactly the keys"),
        ('{"policy": "eef", "scale": 0}', "scale = 0"),
        ('{"policy": 3, "scale": 0.1}', "policy = 3"),
        ("{not json", "not valid JSON"),
    ):
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_residual_settings(path)
