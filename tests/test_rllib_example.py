"""The RLlib example (``python -m training.rllib_example``): its argument checks, and a real short run.

RLlib pins its own gymnasium version, so it lives in an environment of its own (docs/ray.md); the training test
runs there and is skipped where RLlib cannot be imported.
"""

import sys
from pathlib import Path

import gymnasium as gym
import pytest

import ceas_gym  # noqa: F401  (registers the environments)
from training import rllib_example

REGISTERED = sorted(env_id for env_id in gym.registry if env_id.startswith("ceas_gym/"))


def rllib_importable() -> bool:
    try:
        from ray.rllib.algorithms.ppo import PPOConfig  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "ceas_gym/EntanglementScheduling-Lite-v9"], "EntanglementScheduling-Lite-v0"),
        (["--iterations", "0"], "--iterations = 0: must be >= 1"),
        (["--env-kwargs", "budget"], "--env-kwargs"),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        rllib_example.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_rllib_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray.rllib.algorithms.ppo", None)  # ``import`` of it raises ImportError
    with pytest.raises(SystemExit) as exit_:
        rllib_example.main(["--iterations", "1"])
    assert exit_.value.code == 2
    assert 'pip install "ray[rllib]"' in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not rllib_importable(), reason="RLlib is not installed (it needs an environment of its own)")
def test_rllib_ppo_trains_on_the_tiny_env_and_writes_its_returns(tmp_path: Path, capsys) -> None:
    out = tmp_path / "returns.csv"
    argv = ["--env", "ceas_gym/EntanglementScheduling-Lite-Tiny-v0", "--iterations", "2", "--train-batch", "200"]
    assert (
        rllib_example.main([*argv, "--minibatch", "50", "--epochs", "2", "--eval-seeds", "1", "--out", str(out)]) == 0
    )
    lines = out.read_text().splitlines()
    assert lines[0] == "iteration,timesteps,episode_return_mean"
    assert [int(line.split(",")[1]) for line in lines[1:]] == [200, 400]
    assert "evaluation over seeds 0-0: rllib-ppo" in capsys.readouterr().out


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(not rllib_importable(), reason="RLlib is not installed (it needs an environment of its own)")
@pytest.mark.parametrize("env_id", REGISTERED)
def test_every_registered_environment_trains_one_rllib_ppo_iteration_through_the_wrappers(
    env_id: str, local_ray: None
) -> None:
    """``register_env`` of the wrapped environment, RLlib's default PPO module, one iteration: no per-env code."""
    import argparse

    args = argparse.Namespace(env=env_id, num_env_runners=0, train_batch=64, minibatch=32, epochs=1, seed=0)
    algorithm = rllib_example.build_algorithm(args, {})
    try:
        result = algorithm.train()
        runners = result.get("env_runners", {})
        steps = result.get("num_env_steps_sampled_lifetime", runners.get("num_env_steps_sampled_lifetime", 0))
        assert int(steps) >= 64
    finally:
        algorithm.stop()
