"""Shards of the batched environment in worker processes give the in-process batched environment's outputs."""

from __future__ import annotations

import numpy as np
import pytest
from batch_equality import assert_same_value

from ceas_gym.config import ConfigError
from ceas_gym.envs.batched_ceas import BatchedEntanglementSchedulingEnv
from ceas_gym.envs.batched_sb3 import BatchedVecEnv, make_batched_vec_env
from ceas_gym.envs.batched_shards import ShardedBatchedEnv, shard_sizes
from training import hyperparams as hp

SHORT = {"max_rounds": 3}  # episodes end inside the tests, so autoreset and the final infos are exercised


def assert_same_step(expected: tuple, actual: tuple) -> None:
    """Observations, rewards, terminated, truncated and every info key (final observations and infos included).

    Shards run smaller batches than the in-process environment: float32-rounded keys as in batch_equality.py.
    """
    for key in expected[0]:
        assert_same_value(key, expected[0][key], actual[0][key])
    for index in (1, 2, 3):
        assert np.array_equal(expected[index], actual[index])
    expected_info, actual_info = expected[4], actual[4]
    assert set(expected_info) == set(actual_info)
    for key, value in expected_info.items():
        if key == "final_obs":
            for copy, (want, got) in enumerate(zip(value, actual_info[key], strict=True)):
                assert (want is None) == (got is None), copy
                if want is not None:
                    for name in want:
                        assert_same_value(name, want[name], got[name], copy)
        elif key == "final_info":
            mask = expected_info["_final_info"]
            assert set(value) == set(actual_info[key])
            for name in value:  # rows of copies that did not finish are placeholders: compare the finished ones
                assert_same_value(name, value[name][mask], actual_info[key][name][mask])
        else:
            assert_same_value(key, value, actual_info[key])


def test_shard_sizes_are_even_and_cover_every_copy():
    assert shard_sizes(10, 3) == [4, 3, 3]
    assert shard_sizes(64, 2) == [32, 32]
    assert shard_sizes(5, 5) == [1, 1, 1, 1, 1]


def test_shards_step_exactly_as_the_in_process_batch():
    copies = 3
    reference = BatchedEntanglementSchedulingEnv(copies, **SHORT)
    with ShardedBatchedEnv(copies, workers=2, **SHORT) as sharded:
        assert sharded.sizes == [2, 1]
        expected_observation, _ = reference.reset(seed=[4, 9, 2])
        observation, _ = sharded.reset(seed=[4, 9, 2])
        for key in expected_observation:
            assert_same_value(key, expected_observation[key], observation[key])
        rng = np.random.default_rng(0)
        finished = 0
        for _ in range(7):
            actions = rng.random((copies, *reference.single_action_space.shape)).astype(np.float32)
            expected, actual = reference.step(actions), sharded.step(actions)
            assert_same_step(expected, actual)
            finished += int(expected[3].sum())
        assert finished == 2 * copies  # two autoresets of every copy were compared


def test_copies_finishing_in_one_shard_only_merge_with_false_masks():
    """Copy 2 (the second shard) restarts a round later, so the first shard finishes alone."""
    copies = 3
    reference = BatchedEntanglementSchedulingEnv(copies, **SHORT)
    with ShardedBatchedEnv(copies, workers=2, **SHORT) as sharded:
        reference.reset(seed=1)
        sharded.reset(seed=1)
        rng = np.random.default_rng(1)
        shape = (copies, *reference.single_action_space.shape)
        first = rng.random(shape).astype(np.float32)
        assert_same_step(reference.step(first), sharded.step(first))
        mask = {"reset_mask": np.array([False, False, True])}
        expected_observation, _ = reference.reset(seed=[None, None, 30], options=mask)
        observation, _ = sharded.reset(seed=[None, None, 30], options=mask)
        for key in expected_observation:
            assert_same_value(key, expected_observation[key], observation[key])
        truncated_alone = False
        for _ in range(3):
            actions = rng.random(shape).astype(np.float32)
            expected, actual = reference.step(actions), sharded.step(actions)
            assert_same_step(expected, actual)
            truncated_alone |= bool(expected[3][:2].all() and not expected[3][2])
        assert truncated_alone
        assert actual[4]["final_obs"][2] is not None  # and copy 2 finished a step later


def test_bad_arguments_and_worker_errors_are_reported():
    with pytest.raises(ConfigError, match="workers = 3: expected an integer from 1 to num_envs = 2"):
        ShardedBatchedEnv(2, workers=3)
    with pytest.raises(ConfigError, match="num_envs"):
        ShardedBatchedEnv(0, workers=1)
    with pytest.raises(ConfigError, match="max_rund"):  # the configuration is checked before any worker starts
        ShardedBatchedEnv(2, workers=2, max_rund=3)
    sharded = ShardedBatchedEnv(2, workers=2, **SHORT)
    sharded.reset(seed=0)
    with pytest.raises(ValueError, match="expected 2 rows"):
        sharded.step(np.zeros((3, *sharded.single_action_space.shape), dtype=np.float32))
    with pytest.raises(RuntimeError, match="worker 0 failed"):  # an action row of the wrong length fails in a worker
        sharded.step(np.zeros((2, 1), dtype=np.float32))
    processes = list(sharded._processes)
    sharded.close()
    sharded.close()  # idempotent
    assert not any(process.is_alive() for process in processes)


def test_stable_baselines3_adapter_and_hyperparameter_key():
    venv = make_batched_vec_env("ceas_gym/EntanglementScheduling-Small-v0", 2, workers=2, **SHORT)
    reference = make_batched_vec_env("ceas_gym/EntanglementScheduling-Small-v0", 2, **SHORT)
    assert isinstance(venv, BatchedVecEnv) and isinstance(venv.env, ShardedBatchedEnv)
    try:
        for env in (venv, reference):
            env.seed(5)
        expected_observation, observation = reference.reset(), venv.reset()
        assert np.array_equal(expected_observation["trust"], observation["trust"])
        actions = np.full((2, *venv.action_space.shape), 0.5, dtype=np.float32)
        for _ in range(3):
            expected, actual = reference.step(actions), venv.step(actions)
        assert np.array_equal(expected[1], actual[1]) and actual[2].all()
        assert actual[3][0]["episode"]["r"] == expected[3][0]["episode"]["r"]
    finally:
        venv.close()
    assert not any(process.is_alive() for process in venv.env._processes)
    assert hp.batch_workers(None, "dummy", 4) == 1
    assert hp.batch_workers(2, "batched", 4) == 2
    with pytest.raises(hp.HyperparameterError, match="needs vec_env batched"):
        hp.batch_workers(2, "dummy", 4)
    with pytest.raises(hp.HyperparameterError, match="from 1 to n_envs = 4"):
        hp.batch_workers(5, "batched", 4)
