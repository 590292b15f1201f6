"""Bad input to the environments and the command-line tools: each case ends in a clear error or a safe outcome.

Stepping before ``reset()`` or after the episode's end, batch-shaped, non-numeric or non-finite actions on every
registered environment; configurations that cannot work (infinite weights, ``min_active`` above the network's
size, duplicate Byzantine members, sizes the machine cannot hold); bad flags of ``ceas-eval`` and ``ceas-bench``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded

import ceas_gym  # noqa: F401
from ceas_gym.config import ConfigError
from ceas_gym.envs.registration import registered_ids
from ceas_gym.network.topology import TopologyConfig
from evaluation.bench import main as bench_main
from evaluation.cli import main as eval_main

IDS = registered_ids()
SHORT = {  # keyword arguments that end an episode within a few steps
    "ceas_gym/EntanglementScheduling-Lite-v0": {"max_rounds": 3},
    "ceas_gym/EntanglementScheduling-Lite-Tiny-v0": {"max_rounds": 3},
    "ceas_gym/EntanglementScheduling-Lite-Paper-v0": {"max_rounds": 2},
    "ceas_gym/EntanglementScheduling-v0": {"max_rounds": 1},
    "ceas_gym/EntanglementScheduling-Small-v0": {"max_rounds": 2},
    "ceas_gym/EntanglementScheduling-Scarce-v0": {"max_rounds": 1},
    "ceas_gym/UnitaryPartition-v0": {"max_passes": 1},
    "ceas_gym/UnitaryPartition-Small-v0": {"max_passes": 1},
    "ceas_gym/CircuitPartition-v0": {"max_passes": 1},
    "ceas_gym/CircuitPartition-Small-v0": {"max_passes": 1},
    "ceas_gym/RepeaterChain-v0": {"max_steps": 2},
}


def test_every_registered_id_has_a_short_configuration() -> None:
    assert sorted(SHORT) == sorted(IDS)


@pytest.mark.parametrize("env_id", IDS)
def test_step_before_reset_raises_reset_needed(env_id: str) -> None:
    env = gym.make(env_id, **SHORT[env_id]).unwrapped
    with pytest.raises(ResetNeeded, match=r"call reset\(\) before the first step"):
        env.step(env.action_space.sample())


@pytest.mark.parametrize("env_id", IDS)
def test_step_after_the_episode_ended_raises_reset_needed_and_reset_recovers(env_id: str) -> None:
    env = gym.make(env_id, **SHORT[env_id]).unwrapped
    env.reset(seed=0)
    env.action_space.seed(0)
    zeros = np.zeros(env.action_space.shape, dtype=env.action_space.dtype)  # the repeater chain never delivers
    done, steps = False, 0
    while not done:
        observation, _, terminated, truncated, _ = env.step(zeros)
        assert env.observation_space.contains(observation)
        done, steps = terminated or truncated, steps + 1
        assert steps < 10_000
    with pytest.raises(ResetNeeded, match="episode has ended"):
        env.step(zeros)
    env.reset(seed=1)
    env.step(zeros)  # a new episode steps again


def _bad_actions(space: gym.spaces.Space) -> list[tuple[str, object, str]]:
    shape = space.shape
    good = np.zeros(shape, dtype=space.dtype)
    return [
        ("batch-shaped", np.stack([good, good]), r"got shape \(2, "),
        ("too short", good[:-1] if shape[0] > 1 else np.zeros(0), "got shape"),
        ("scalar", 0.5, r"got shape \(\)"),
        ("strings", np.array(["a"] * shape[0]), "got dtype <U1"),
        ("objects", np.array([object()] * shape[0], dtype=object), "got dtype object"),
        ("complex", good.astype(np.complex128) + 1j, "got dtype complex128"),
        ("ragged list", [[0.0], [0.0, 1.0]], "cannot read as one array"),
        ("NaN", np.full(shape, np.nan), "NaN or inf"),
        ("inf", np.full(shape, np.inf), "NaN or inf"),
    ]


CASES = [(env_id, *case) for env_id in IDS for case in _bad_actions(gym.spec(env_id).make().action_space)]


@pytest.mark.parametrize(("env_id", "label", "action", "message"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_a_bad_action_is_a_clear_error_naming_shape_and_dtype(env_id, label, action, message) -> None:
    env = gym.make(env_id, **SHORT[env_id]).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message) as error:
        env.step(action)
    assert f"shape {env.action_space.shape}" in str(error.value) and str(env.action_space.dtype) in str(error.value)


def test_repeater_chain_flags_must_be_zero_or_one() -> None:
    env = gym.make("ceas_gym/RepeaterChain-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="entries of 0 or 1"):
        env.step(np.full(env.action_space.shape, 2))
    with pytest.raises(ValueError, match="whole-number entries"):
        env.step(np.full(env.action_space.shape, 0.5))


def test_the_batched_environment_checks_its_actions_the_same_way() -> None:
    small = "ceas_gym/EntanglementScheduling-Small-v0"
    vector = gym.make_vec(small, num_envs=2, vectorization_mode="vector_entry_point")
    vector.reset(seed=0)
    width = vector.single_action_space.shape[0]
    with pytest.raises(ValueError, match=r"expected 2 rows"):
        vector.step(np.zeros((3, width)))
    expected = rf"shape \(2, {width}\) \(float32\) of real numbers"
    with pytest.raises(ValueError, match=rf"{expected}, got dtype complex128"):
        vector.step(np.zeros((2, width), dtype=np.complex128))
    with pytest.raises(ValueError, match=rf"{expected}, got shape \(2, {width + 1}\)"):
        vector.step(np.zeros((2, width + 1)))


# ------------------------------------------------------------------------------------------------ configuration
BAD_CONFIGURATIONS = [
    ("ceas_gym/EntanglementScheduling-Lite-v0", {"reward": {"served": float("inf")}}, "RewardConfig.served"),
    ("ceas_gym/EntanglementScheduling-Small-v0", {"reward": {"wasted": float("inf")}}, "CEASRewardConfig.wasted"),
    ("ceas_gym/UnitaryPartition-Small-v0", {"reward": {"accuracy": float("inf")}}, "PartitionRewardConfig.accuracy"),
    (
        "ceas_gym/EntanglementScheduling-Small-v0",
        {"protocol_config": {"ceas": {"bft": {"min_active": 11}}}},
        r"protocol_config.ceas.bft.min_active = 11 exceeds the network's 10 nodes",
    ),
    (  # through the preset: its min_active of 5 no longer fits once the topology shrinks
        "ceas_gym/EntanglementScheduling-Small-v0",
        {"topology": {"num_nodes": 4}},
        r"min_active = 5 exceeds the network's 4 nodes",
    ),
    (
        "ceas_gym/EntanglementScheduling-Small-v0",
        {"protocol": "qba", "protocol_config": {"qba": {"byzantine_members": [1, 2, 1]}}},
        r"byzantine_members.*listed more than once",
    ),
    (
        "ceas_gym/EntanglementScheduling-Small-v0",
        {"protocol": "qba", "protocol_config": {"qba": {"stake_reward": float("inf")}}},
        "QBAConfig.stake_reward",
    ),
    (
        "ceas_gym/EntanglementScheduling-Lite-v0",
        {"topology": TopologyConfig(kind="ring", num_nodes=10**9)},
        "TopologyConfig.num_nodes: a ring topology of 1000000000 nodes needs about",
    ),
    (
        "ceas_gym/EntanglementScheduling-Lite-v0",
        {"topology": {"num_nodes": 10**6}},
        "TopologyConfig.num_nodes: a waxman topology of 1000000 nodes needs about",
    ),
    (
        "ceas_gym/EntanglementScheduling-Lite-v0",
        {"topology": TopologyConfig(kind="complete", num_nodes=10**5)},
        "TopologyConfig.num_nodes: a complete topology of 100000 nodes needs about",
    ),
    ("ceas_gym/EntanglementScheduling-Lite-v0", {"links": {"capacity": 10**9}}, "LinkConfig.capacity"),
    ("ceas_gym/EntanglementScheduling-Small-v0", {"links": {"capacity": 10**9}}, "LinkConfig.capacity"),
    (
        "ceas_gym/EntanglementScheduling-Small-v0",
        {"learning": {"data": {"samples_per_node": 10**9}}},
        "LearningConfig.data.samples_per_node",
    ),
]


@pytest.mark.parametrize(("env_id", "kwargs", "message"), BAD_CONFIGURATIONS)
def test_configurations_that_cannot_work_are_refused_naming_the_field(env_id, kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        gym.make(env_id, **kwargs)


def test_the_memory_refusal_names_the_estimate_and_what_the_machine_has() -> None:
    with pytest.raises(ConfigError, match=r"needs about .* more than this machine can hold \(it has .* available\)"):
        gym.make("ceas_gym/EntanglementScheduling-Lite-v0", links={"capacity": 10**9})


# ------------------------------------------------------------------------------------------------ CLIs
TINY = "ceas_gym/EntanglementScheduling-Lite-Tiny-v0"
BAD_EVAL = [
    (["--env", "ceas_gym/RepeaterChian-v0", "--policies", "eef"], "Did you mean 'ceas_gym/RepeaterChain-v0'"),
    (["--env", TINY, "--policies", "eeff"], "unknown policy 'eeff'; did you mean 'eef'"),
    (["--env", TINY, "--policies", "missing.zip"], "model file 'missing.zip' does not exist"),
    (["--env", TINY, "--seeds", "5-2"], "empty range"),
    (["--env", TINY, "--seeds", "a"], "expected N or N-M"),
    (["--env", TINY, "--workers", "0"], "--workers = 0"),
    (["--env", TINY, "--baseline", "greedy", "--policies", "eef"], "--baseline 'greedy': must be one of"),
    (["--env", TINY, "--env-kwargs", "budget"], "expected key:value"),
    (["--env", TINY, "--address", "auto"], "--address is the Ray cluster's address"),
    (["--env", "./evil.py:X-v0"], "not a dotted Python module name"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_EVAL)
def test_bad_ceas_eval_arguments_exit_2_with_the_reason(argv, message, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        eval_main([*argv, "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err, err


def test_ceas_eval_with_bad_environment_kwargs_fails_before_running_an_episode(tmp_path, capsys) -> None:
    with pytest.raises(ConfigError, match="budget"):
        eval_main(["--env", TINY, "--env-kwargs", "budget:-1", "--seeds", "0", "--out", str(tmp_path), "--no-progress"])
    assert not (tmp_path / "episodes.csv").exists()


BAD_BENCH = [
    (["env", "--duration", "0"], "--duration 0.0"),
    (["env", "--duration", "-1"], "--duration -1.0"),
    (["env", "--n-envs", "4", "0"], "--n-envs [4, 0]"),
    (["env", "--env", "ceas_gym/Nope-v0"], "unknown environment id"),
    (["ppo", "--n-timesteps", "0"], "--n-timesteps 0"),
    (["ppo", "--n-envs", "0"], "--n-envs 0"),
    (["ppo", "--threads", "-2"], "--threads -2"),
    (["ppo", "--env", "a/b:X-v0"], "not a dotted Python module name"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_BENCH)
def test_bad_ceas_bench_arguments_exit_2_with_the_reason(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        bench_main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err, err


def test_ceas_bench_refuses_a_folder_as_its_output(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        bench_main(["env", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "is a folder" in capsys.readouterr().err
