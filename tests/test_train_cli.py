import json
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import yaml

import ceas_gym  # noqa: F401
from agents.normalizer_io import read_statistics
from agents.ppo import PPOPolicy
from agents.registry import make_policy
from training import hyperparams as hp
from training.callbacks import InfoMetricsCallback
from training.checkpoints import find_checkpoint
from training.run_folder import next_run_folder
from training.train import main

TINY = "ceas_gym/EntanglementScheduling-Lite-Tiny-v0"
FAST = [
    "--hyperparams",
    "n_steps:64",
    "batch_size:64",
    "n_epochs:1",
    "--n-envs",
    "2",
    "--no-progress",
    "--verbose",
    "0",
]


def scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folders = sorted((run / "tensorboard").iterdir())
    assert [folder.name for folder in folders] == ["PPO_1"]  # resume writes into the same TensorBoard run
    accumulator = EventAccumulator(str(folders[0]))
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logs = tmp_path_factory.mktemp("logs")
    argv = ["--env", TINY, "-n", "256", "-f", str(logs), "--seed", "3", "--eval-freq", "128", "--eval-episodes", "1"]
    assert main([*argv, "--save-freq", "128", *FAST]) == 0
    return logs / "ppo" / "ceas_gym-EntanglementScheduling-Lite-Tiny-v0_1"


def test_run_folder_records_the_resolved_configuration(run: Path) -> None:
    zoo_name = "ceas_gym-EntanglementScheduling-Lite-Tiny-v0"
    for name in ("config.yml", "args.yml", "command.txt", "versions.json", f"{zoo_name}.zip"):
        assert (run / name).is_file(), name
    assert (run / "ceas_gym-EntanglementScheduling-Lite-Tiny-v0_vecnormalize.npz").is_file()
    assert (run / "best_model" / "best_model.zip").is_file()
    assert (run / "best_model" / "best_model_vecnormalize.npz").is_file()
    config = yaml.safe_load((run / "config.yml").read_text())
    file_defaults = hp.load_file()["default"]
    assert config["env_id"] == TINY and config["algorithm"] == "PPO" and config["seed"] == 3
    assert config["hyperparams"]["n_steps"] == 64  # command line beats the file
    assert config["hyperparams"]["gamma"] == file_defaults["gamma"]  # file default kept
    assert config["hyperparams"]["n_timesteps"] == 256
    assert "n_steps:64" in (run / "command.txt").read_text()
    versions = json.loads((run / "versions.json").read_text())
    assert versions["versions"]["stable-baselines3"] and versions["python"]
    ckpts = sorted(json.loads(p.read_text())["num_timesteps"] for p in (run / "checkpoints").glob("*.json"))
    assert ckpts == [128, 256]


def test_tensorboard_has_env_metrics_at_rollout_ends(run: Path) -> None:
    tags = scalars(run)
    for tag in ("env/utilisation", "env/served_on_time", "env/utilisation_rollout_mean", "env/missed_rollout_mean"):
        assert tag in tags, sorted(tags)
    assert not any(tag.startswith("env/accuracy") for tag in tags)  # keys the Lite env lacks are skipped
    steps = [step for step, _ in tags["env/utilisation_rollout_mean"]]
    assert steps == [128, 256]  # n_steps 64 x 2 envs per rollout
    values = np.array([value for _, value in tags["env/utilisation_rollout_mean"]])
    assert np.all((values >= 0) & (values <= 1))


def test_evaluations_log_the_domain_metrics_beside_the_reward(run: Path) -> None:
    tags = scalars(run)
    reward_steps = [step for step, _ in tags["eval/mean_reward"]]
    for key in ("utilisation", "served_on_time"):
        logged = tags[f"eval/{key}"]
        assert [step for step, _ in logged] == reward_steps == [128, 256]  # written with the evaluation's reward
        assert all(0.0 <= value <= 1.0 for _, value in logged)
    assert not any(tag.startswith("eval/accuracy") for tag in tags)


def test_hyperparameters_are_recorded_for_tensorboards_hparams_tab(run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    accumulator = EventAccumulator(str(run / "tensorboard" / "PPO_1"))
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    recorded = session.session_start_info.hparams
    assert recorded["env_id"].string_value == TINY and recorded["n_steps"].number_value == 64
    assert recorded["algorithm"].string_value == "PPO" and recorded["seed"].number_value == 3


def test_resume_continues_the_timestep_count_and_normaliser(run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    stats_before = read_statistics(copy / "checkpoints" / "rl_model_256_steps_vecnormalize.npz")
    assert main(["--resume", str(copy), "-n", "512", "--save-freq", "0", "--eval-freq", "0", "--no-progress"]) == 0
    choice = find_checkpoint(copy / "checkpoints", needs_normalizer=True)
    path, steps = choice.model, choice.num_timesteps
    assert steps == 512 and path.name == "rl_model_512_steps.zip" and not choice.skipped
    stats_after = read_statistics(copy / "checkpoints" / "rl_model_512_steps_vecnormalize.npz")
    # Loaded statistics keep counting: 256 more observations (+ one reset of 2 envs), not a fresh start.
    assert stats_after.obs_rms["inventory"].count >= stats_before.obs_rms["inventory"].count + 256
    steps_logged = [step for step, _ in scalars(copy)["env/utilisation_rollout_mean"]]
    assert steps_logged == [128, 256, 384, 512]
    assert yaml.safe_load((copy / "config.yml").read_text())["hyperparams"]["n_timesteps"] == 512
    assert main(["--resume", str(copy), "--no-progress"]) == 0  # already done: nothing to train


def test_saved_model_acts_deterministically_with_its_normaliser(run: Path) -> None:
    env = gym.make(TINY)
    policy = make_policy(str(run / "ceas_gym-EntanglementScheduling-Lite-Tiny-v0.zip"), env)
    assert isinstance(policy, PPOPolicy) and policy.normalizer is not None
    observation, info = env.reset(seed=0)
    rms, clip, eps = policy.normalizer.obs_rms, policy.normalizer.clip_obs, policy.normalizer.epsilon
    expected = np.clip(
        (observation["inventory"] - rms["inventory"].mean) / np.sqrt(rms["inventory"].var + eps), -clip, clip
    )
    np.testing.assert_allclose(policy.normalize(observation)["inventory"], expected, rtol=1e-6)
    first, second = policy.act(observation, info), policy.act(observation, info)
    np.testing.assert_array_equal(first, second)
    assert env.action_space.contains(np.asarray(first, dtype=np.float32).clip(0, 1))


def test_missing_model_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.zip"
    with pytest.raises(FileNotFoundError, match=r"nope\.zip"):
        make_policy(str(missing), gym.make(TINY))


def test_info_metrics_callback_against_hand_computed_means() -> None:
    recorded: dict[str, float] = {}
    callback = InfoMetricsCallback(["utilisation", "accuracy", "served"])
    callback.model = SimpleNamespace(logger=SimpleNamespace(record=recorded.__setitem__))
    callback._on_rollout_start()
    steps = [
        ([{"utilisation": 0.5, "served": True}, {"utilisation": 1.0, "served": np.array([1.0, 2.0])}], [False, True]),
        ([{"utilisation": 0.0, "served": 3}, {"utilisation": 0.25}], [True, False]),
    ]
    for infos, dones in steps:
        callback.locals = {"infos": infos, "dones": np.array(dones)}
        callback._on_step()
    callback._on_rollout_end()
    assert recorded["env/utilisation_rollout_mean"] == pytest.approx((0.5 + 1.0 + 0.0 + 0.25) / 4)
    assert recorded["env/utilisation"] == pytest.approx((1.0 + 0.0) / 2)  # the two episode ends
    assert recorded["env/served_rollout_mean"] == pytest.approx((1.0 + 3.0) / 2)  # array skipped, bool as 1
    assert recorded["env/served"] == pytest.approx(3.0)
    assert not any(key.startswith("env/accuracy") for key in recorded)


def test_parse_key_values_reads_yaml_scalars_and_mappings() -> None:
    parsed = hp.parse_key_values(["gamma:0.95", "normalize:{norm_reward: false}", "policy:MlpPolicy", "n:3"], "--x")
    assert parsed == {"gamma": 0.95, "normalize": {"norm_reward": False}, "policy": "MlpPolicy", "n": 3}
    with pytest.raises(hp.HyperparameterError, match="key:value"):
        hp.parse_key_values(["gamma"], "--hyperparams")


def test_merge_order_is_default_then_env_then_command_line() -> None:
    table = {"default": {"a": 1, "b": 1, "c": 1}, "E": {"b": 2, "c": 2}, "F": {"a": 9}}
    assert hp.merge(table, "E", {"c": 3}) == {"a": 1, "b": 2, "c": 3}


def test_policy_kwargs_string_is_parsed_with_nn_class_names() -> None:
    import torch

    kwargs = hp.parse_policy_kwargs("dict(net_arch=[32, 32], activation_fn=nn.Tanh)")
    assert kwargs == {"net_arch": [32, 32], "activation_fn": torch.nn.Tanh}
    with pytest.raises(hp.HyperparameterError):
        hp.parse_policy_kwargs("[1, 2]")
    assert hp.normalize_kwargs(True) == {} and hp.normalize_kwargs(False) is None


def test_run_folders_are_numbered_per_env(tmp_path: Path) -> None:
    assert next_run_folder(tmp_path, "ceas_gym/A-v0").name == "ceas_gym-A-v0_1"
    (tmp_path / "ppo" / "ceas_gym-A-v0_1").mkdir(parents=True)
    (tmp_path / "ppo" / "ceas_gym-A-v0_7").mkdir()
    (tmp_path / "ppo" / "ceas_gym-A-v0_x").mkdir()
    assert next_run_folder(tmp_path, "ceas_gym/A-v0").name == "ceas_gym-A-v0_8"
    assert next_run_folder(tmp_path, "ceas_gym/B-v0").name == "ceas_gym-B-v0_1"
    assert next_run_folder(tmp_path, "other_plugin/A-v0").name == "other_plugin-A-v0_1"  # namespaces do not collide


def test_unknown_env_id_exits_2_with_suggestion(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--env", "ceas_gym/EntanglementScheduling-Lite-Tiny-v9", "-f", str(tmp_path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "did you mean" in error.lower() and repr(TINY) in error
    assert not any(tmp_path.iterdir())


def test_unknown_hyperparameter_exits_2_naming_the_closest(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--env", TINY, "-f", str(tmp_path), "--hyperparams", "gama:0.9"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown hyper-parameter 'gama'" in err and "did you mean 'gamma'" in err


def test_mlp_policy_on_dict_observation_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--env", TINY, "-f", str(tmp_path), "--hyperparams", "policy:MlpPolicy"])
    assert exit_info.value.code == 2
    assert "flatten_observation" in capsys.readouterr().err


def test_resume_of_a_folder_that_is_not_a_run_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--resume", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "config.yml" in capsys.readouterr().err


def test_flattened_observation_trains_with_mlp_policy(tmp_path: Path) -> None:
    argv = ["--env", TINY, "-n", "128", "-f", str(tmp_path), "--eval-freq", "0", "--save-freq", "0", *FAST]
    assert main([*argv, "--hyperparams", "flatten_observation:true", "n_steps:64", "batch_size:64", "n_epochs:1"]) == 0
    run = tmp_path / "ppo" / "ceas_gym-EntanglementScheduling-Lite-Tiny-v0_1"
    config = yaml.safe_load((run / "config.yml").read_text())
    assert config["hyperparams"]["policy"] == "MlpPolicy"
    assert config["env_kwargs"] == {"flatten_observation": True}
    # The flat model acts the same on the env's Dict form (flattened for it) as on its own flat form.
    dict_env, flat_env = gym.make(TINY), gym.make(TINY, flatten_observation=True)
    on_dict, on_flat = (
        make_policy(str(run / "ceas_gym-EntanglementScheduling-Lite-Tiny-v0.zip"), dict_env),
        make_policy(str(run / "ceas_gym-EntanglementScheduling-Lite-Tiny-v0.zip"), flat_env),
    )
    (dict_obs, info), (flat_obs, _) = dict_env.reset(seed=4), flat_env.reset(seed=4)
    np.testing.assert_array_equal(on_dict.act(dict_obs, info), on_flat.act(flat_obs, info))


def test_maskable_env_trains_maskable_ppo_and_loads_it(tmp_path: Path) -> None:
    env_id = "ceas_test/InvalidActionEnvDiscrete-v0"
    if env_id not in gym.registry:
        gym.register(
            env_id, "sb3_contrib.common.envs:InvalidActionEnvDiscrete", kwargs={"dim": 6, "n_invalid_actions": 3}
        )
    argv = ["--env", env_id, "-n", "128", "-f", str(tmp_path), "--eval-freq", "64", "--eval-episodes", "1", *FAST]
    assert main([*argv, "--hyperparams", "policy:MlpPolicy", "normalize:false", "n_steps:32", "batch_size:32"]) == 0
    run = tmp_path / "ppo_mask" / "ceas_test-InvalidActionEnvDiscrete-v0_1"  # the zoo's folder name of MaskablePPO
    assert yaml.safe_load((run / "config.yml").read_text())["algorithm"] == "MaskablePPO"
    env = gym.make(env_id)
    policy = make_policy(str(run / "ceas_test-InvalidActionEnvDiscrete-v0.zip"), env)
    assert isinstance(policy, PPOPolicy) and policy.maskable and policy.normalizer is None
    observation, info = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for allowed in rng.integers(0, 6, size=12):
        mask = np.zeros(6, dtype=bool)
        mask[allowed] = True
        env.unwrapped.action_masks = lambda mask=mask: mask  # one valid action: the masked policy must pick it
        assert int(policy.act(observation, info)) == allowed


def test_run_folder_carries_the_zoo_stats_folder(run: Path) -> None:
    stats = run / "ceas_gym-EntanglementScheduling-Lite-Tiny-v0"
    zoo_config = yaml.safe_load((stats / "config.yml").read_text())
    assert zoo_config == {"normalize": True, "env_kwargs": {}}  # the default hyper-parameters normalise
    zoo_args = yaml.safe_load((stats / "args.yml").read_text())
    assert zoo_args == {"env": TINY, "algo": "ppo", "env_kwargs": {}, "seed": 3}
    assert (stats / "vecnormalize.pkl").is_file()


@pytest.mark.skipif(__import__("importlib").util.find_spec("rl_zoo3") is None, reason="rl-zoo3 is not installed")
def test_rl_zoo3_enjoy_replays_a_ceas_train_run(run: Path) -> None:
    import subprocess
    import sys

    command = [
        sys.executable, "-m", "rl_zoo3.enjoy", "--algo", "ppo", "--env", TINY, "-f", str(run.parent.parent),
        "--exp-id", "1", "--gym-packages", "ceas_gym", "--no-render", "-n", "40", "--deterministic",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Loading {run / 'ceas_gym-EntanglementScheduling-Lite-Tiny-v0.zip'}" in result.stdout
    assert "Loading running average" in result.stdout  # the run's normaliser statistics were applied
