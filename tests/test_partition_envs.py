"""The unitary-level and circuit-level partition environments: API checks, demand schedule, channels, pair
conservation, consensus commits, determinism and the effect of scheduling on accuracy."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from agents.baselines import EarliestExpiringFirst
from ceas_gym.config import ConfigError
from ceas_gym.envs.partition_circuit import CircuitPartitionEnv
from ceas_gym.envs.partition_config import make_partition_config
from ceas_gym.envs.partition_unitary import PartitionSchedulingEnv, UnitaryPartitionEnv
from ceas_gym.network.topology import TopologyConfig
from ceas_gym.wrappers import for_frameworks

ENV_CLASSES = (UnitaryPartitionEnv, CircuitPartitionEnv)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Small tensors: one intra-op thread avoids thread contention on loaded machines (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _idle(env: PartitionSchedulingEnv) -> np.ndarray:
    return np.zeros(env.action_space.shape, dtype=np.float32)


def _run(env: PartitionSchedulingEnv, policy: Any, seed: int, steps: int) -> list[dict[str, Any]]:
    observation, info = env.reset(seed=seed)
    infos = []
    for _ in range(steps):
        action = policy.act(observation, info) if policy is not None else _idle(env)
        observation, _, _, _, info = env.step(action)
        infos.append(info)
    return infos


@pytest.mark.parametrize("env_class", ENV_CLASSES)
def test_gymnasium_and_sb3_checkers_pass(env_class: type[PartitionSchedulingEnv]) -> None:
    gym_check_env(env_class(preset="small", max_passes=3), skip_render_check=True)
    with pytest.warns(UserWarning, match="symmetric and normalized Box action space"):  # the natural [0, 1] box
        sb3_check_env(env_class(preset="small", max_passes=3, flatten_observation=True), warn=True)
    # through the framework wrappers, the checker has nothing to say (tests/test_wrappers.py covers every id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(for_frameworks(env_class(preset="small", max_passes=3)), warn=True)


def test_unitary_demand_is_one_pair_per_qubit_per_hop_due_at_its_position_in_the_chain() -> None:
    env = UnitaryPartitionEnv(preset="small")
    observation, _ = env.reset(seed=0)
    qubits, hops = 4, 3
    assert env.slots_per_pass == hops + 1
    # Small preset: chain 0-1-2-3 on a 4-ring; edges sorted (0,1), (0,3), (1,2), (2,3).
    assert env.instance.edges.tolist() == [[0, 1], [0, 3], [1, 2], [2, 3]]
    assert env.chain_links.tolist() == [0, 2, 3]
    np.testing.assert_array_equal(observation["demand_pairs"], [qubits, 0, qubits, qubits])
    np.testing.assert_array_equal(observation["demand_deadline"], [1, hops + 2, 2, 3])
    np.testing.assert_array_equal(observation["demand_pass"], [qubits, 0, qubits, qubits])
    observation, *_ = env.step(_idle(env))
    np.testing.assert_array_equal(observation["demand_pairs"], [0, 0, qubits, qubits])
    np.testing.assert_array_equal(observation["demand_deadline"], [hops + 2, hops + 2, 1, 2])


def test_circuit_demand_counts_the_ring_cnots_crossing_the_partition_every_layer() -> None:
    env = CircuitPartitionEnv(preset="small")
    observation, _ = env.reset(seed=0)
    # 4 qubits split {0, 1} | {2, 3}; ring CNOTs (0,1), (1,2), (2,3), (3,0): (1,2) and (3,0) cross, on link 0-1.
    assert env.qubit_owner.tolist() == [0, 0, 1, 1]
    assert env.nonlocal_gate.tolist() == [False, True, False, True]
    link = int(np.flatnonzero((env.instance.edges == [0, 1]).all(axis=1))[0])
    expected = np.zeros(env.num_links)
    expected[link] = 2
    np.testing.assert_array_equal(observation["demand_pairs"], expected)
    layers = env.config.learning.circuit.num_layers
    np.testing.assert_array_equal(observation["demand_pass"], expected * layers)
    assert env.slots_per_pass == layers + 1


def test_hop_channel_from_granted_pairs_by_hand() -> None:
    env = UnitaryPartitionEnv(preset="small")
    granted = np.zeros((4, env.num_links), dtype=np.int64)
    fidelity_sum = np.zeros((4, env.num_links))
    links = env.chain_links
    granted[0, links[0]], fidelity_sum[0, links[0]] = 4, 4 * 0.85  # all four pairs at F = 0.85
    granted[1, links[1]], fidelity_sum[1, links[1]] = 2, 0.9 + 0.8  # two of four pairs, mean F = 0.85
    strength = env.hop_strength(granted, fidelity_sum)  # hop 2 got nothing
    p = 4 * (1 - 0.85) / 3
    np.testing.assert_allclose(strength, [[p, p, p, p], [p, p, 1, 1], [1, 1, 1, 1]])


def test_gate_channel_from_granted_pairs_by_hand() -> None:
    env = CircuitPartitionEnv(preset="small")
    layers = env.config.learning.circuit.num_layers
    granted = np.zeros((layers + 1, env.num_links), dtype=np.int64)
    fidelity_sum = np.zeros((layers + 1, env.num_links))
    link = env.gate_link[1]
    granted[0, link], fidelity_sum[0, link] = 2, 1.9  # layer 0: both non-local gates, mean F = 0.95
    granted[1, link], fidelity_sum[1, link] = 1, 0.7  # layer 1: only the first, F = 0.7
    applied, strength = env.gate_channel(granted, fidelity_sum)
    np.testing.assert_array_equal(applied, [[1, 1, 1, 1], [1, 1, 1, 0], [1, 0, 1, 0]])
    np.testing.assert_allclose(strength[0], [0, 0.2 / 3, 0, 0.2 / 3])
    np.testing.assert_allclose(strength[1], [0, 0.4, 0, 0])
    np.testing.assert_allclose(strength[2], 0)


@pytest.mark.parametrize("env_class", ENV_CLASSES)
def test_pairs_are_conserved_every_step_under_random_actions(env_class: type[PartitionSchedulingEnv]) -> None:
    env = env_class(preset="small", max_passes=4)
    env.reset(seed=3)
    env.action_space.seed(3)
    inventory = env.layer.inventory
    consumed = 0
    for _ in range(env.max_steps):
        *_, info = env.step(env.action_space.sample())
        inventory.check_conservation()
        consumed += info["consumed"]
        assert int(inventory.consumed.sum()) == consumed
        assert info["requests_missed"] >= 0


@pytest.mark.parametrize("env_class", ENV_CLASSES)
def test_same_seed_same_trajectory(env_class: type[PartitionSchedulingEnv]) -> None:
    runs = []
    for _ in range(2):
        env = env_class(preset="small", max_passes=3)
        env.action_space.seed(5)
        observation, _ = env.reset(seed=11)
        trace = [observation["inventory"].copy()]
        for _ in range(env.max_steps):
            observation, reward, *_, info = env.step(env.action_space.sample())
            trace += [observation["inventory"].copy(), np.array([reward, info["accuracy"], info["train_loss"]])]
        runs.append(np.concatenate([item.ravel() for item in trace]))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_starved_chain_predicts_from_the_bias_alone() -> None:
    env = UnitaryPartitionEnv(preset="small")
    infos = _run(env, None, seed=0, steps=env.slots_per_pass)
    # No pairs: every qubit arrives maximally mixed, <Z> = 0, logits = b = 0 >= 0: class 1 for every test sample.
    assert infos[-1]["accuracy"] == pytest.approx(float(env._test_labels.double().mean()))
    assert infos[-1]["passes"] == 1


@pytest.mark.parametrize("env_class", ENV_CLASSES)
def test_idle_scheduler_never_commits_and_eef_does(env_class: type[PartitionSchedulingEnv]) -> None:
    env = env_class(preset="small", max_passes=4)
    env.reset(seed=0)
    initial = env.served_params.clone()
    for _ in range(env.max_steps):
        *_, info = env.step(_idle(env))
    assert info["commits"] == 0
    assert torch.equal(env.served_params, initial)
    assert not torch.equal(env.trainer.params.detach(), initial)  # the working model trained (bias at least)
    eef = _run(env, EarliestExpiringFirst(env), seed=0, steps=env.max_steps)
    assert eef[-1]["commits"] == 1  # consensus every 4th pass


@pytest.mark.parametrize("env_class", ENV_CLASSES)
def test_eef_reaches_higher_accuracy_than_an_idle_scheduler(env_class: type[PartitionSchedulingEnv]) -> None:
    env = env_class(preset="small", max_passes=24)
    steps = env.max_steps
    tail = slice(-steps // 3, None)
    eef = np.mean([info["accuracy"] for info in _run(env, EarliestExpiringFirst(env), 0, steps)][tail])
    idle = np.mean([info["accuracy"] for info in _run(env, None, 0, steps)][tail])
    assert eef > idle + 0.1


def test_configuration_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="num_layers"):
        UnitaryPartitionEnv(preset="small", parties=4, learning={"circuit": {"num_layers": 3}})
    with pytest.raises(ConfigError, match=r"PartitionEnvConfig\.topology"):
        UnitaryPartitionEnv(preset="small", topology=TopologyConfig(kind="star", num_nodes=4))
    with pytest.raises(ConfigError, match="num_qubits"):
        CircuitPartitionEnv(
            preset="small", parties=3, learning={"circuit": {"num_qubits": 2}, "data": {"num_features": 2}}
        )
    with pytest.raises(ConfigError, match="unknown key"):
        UnitaryPartitionEnv(preset="small", budjet=3)
    with pytest.raises(ConfigError, match="parties"):
        make_partition_config("unitary", "small", parties=9)
    with pytest.raises(ConfigError, match="scheme"):
        make_partition_config("data", "small")


def test_low_fidelity_pairs_cost_accuracy_under_the_same_schedule() -> None:
    def tail_accuracy(fidelity0: float) -> float:
        links = {"fidelity0": fidelity0, "fidelity_floor": 0.3}
        env = UnitaryPartitionEnv(preset="small", max_passes=24, links=links)
        infos = _run(env, EarliestExpiringFirst(env), 0, env.max_steps)
        return float(np.mean([info["accuracy"] for info in infos][-env.max_steps // 3 :]))

    # Werner pairs at F = 0.6 depolarise every teleported qubit with p = 0.53 on each of the three hops.
    assert tail_accuracy(0.99) > tail_accuracy(0.6) + 0.08


def test_batch_larger_than_the_training_pool_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        make_partition_config("unitary", "small", learning={"batch_size": 600})
