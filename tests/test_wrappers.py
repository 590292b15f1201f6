"""Framework wrappers: every registered environment passes SB3's checker through them, and they change nothing else."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.env_checker import check_env

import ceas_gym  # noqa: F401  (registers the environments)
from ceas_gym.envs.repeater_chain import RepeaterChainEnv
from ceas_gym.wrappers import FlatKeysObservation, MultiBinaryAsMultiDiscrete, for_frameworks

REGISTERED = sorted(env_id for env_id in gym.registry if env_id.startswith("ceas_gym/"))


def test_every_registered_id_is_covered() -> None:
    assert len(REGISTERED) >= 10


@pytest.mark.parametrize("env_id", REGISTERED)
def test_sb3_checker_passes_without_a_warning_through_the_wrappers(env_id: str) -> None:
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as unwrapped_warnings:
        warnings.simplefilter("always")
        check_env(env.unwrapped, warn=True)
    wrapped = for_frameworks(gym.make(env_id))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning of the checker fails the test
        check_env(wrapped, warn=True)
    if not isinstance(env.action_space, spaces.MultiBinary):  # the checker had something to say before wrapping
        assert unwrapped_warnings


@pytest.mark.parametrize(
    "env_id", ["ceas_gym/EntanglementScheduling-Small-v0", "ceas_gym/EntanglementScheduling-Lite-v0"]
)
def test_wrapped_steps_are_the_raw_steps_with_the_rescaled_action(env_id: str) -> None:
    raw, wrapped = gym.make(env_id), for_frameworks(gym.make(env_id))
    raw_observation, _ = raw.reset(seed=3)
    observation, _ = wrapped.reset(seed=3)
    for key, value in raw_observation.items():
        assert np.array_equal(observation[key], value.reshape(-1))
    low, high = raw.action_space.low, raw.action_space.high
    for symmetric in np.random.default_rng(0).uniform(-1, 1, (3, *raw.action_space.shape)).astype(np.float32):
        raw_step = raw.step(low + (symmetric + 1) / 2 * (high - low))
        step = wrapped.step(symmetric)
        assert step[1] == raw_step[1] and step[2:4] == raw_step[2:4]
        for key, value in raw_step[0].items():
            np.testing.assert_allclose(step[0][key], value.reshape(-1), rtol=0, atol=1e-6)


def test_flattening_everything_gives_one_box_that_unflattens_to_the_observation() -> None:
    raw = gym.make("ceas_gym/EntanglementScheduling-Small-v0")
    wrapped = for_frameworks(gym.make("ceas_gym/EntanglementScheduling-Small-v0"), flatten=True)
    assert isinstance(wrapped.observation_space, spaces.Box) and wrapped.observation_space.shape[0] == sum(
        int(np.prod(space.shape)) for space in raw.observation_space.spaces.values()
    )
    raw_observation, _ = raw.reset(seed=1)
    flat, _ = wrapped.reset(seed=1)
    restored = spaces.unflatten(raw.observation_space, flat)
    for key, value in raw_observation.items():
        assert np.array_equal(restored[key], value)


def test_multibinary_becomes_multidiscrete_and_the_trajectory_is_unchanged() -> None:
    raw = gym.make("ceas_gym/RepeaterChain-v0", n_nodes=5)
    wrapped = for_frameworks(gym.make("ceas_gym/RepeaterChain-v0", n_nodes=5))
    assert wrapped.action_space == spaces.MultiDiscrete([2, 2, 2])
    raw.reset(seed=4)
    wrapped.reset(seed=4)
    for action in np.random.default_rng(1).integers(0, 2, (6, 3)):
        raw_step, step = raw.step(action.astype(np.int8)), wrapped.step(action)
        assert step[1:4] == raw_step[1:4] and step[4] == raw_step[4]
        if raw_step[2]:
            break


def test_wrappers_refuse_spaces_they_do_not_convert() -> None:
    with pytest.raises(TypeError, match="MultiBinary"):
        MultiBinaryAsMultiDiscrete(gym.make("ceas_gym/EntanglementScheduling-Lite-Tiny-v0"))
    with pytest.raises(TypeError, match="Dict observation space"):
        FlatKeysObservation(gym.make("CartPole-v1"))


def test_repeater_action_masks_allow_a_swap_only_where_a_node_holds_a_pair_to_each_side() -> None:
    env = RepeaterChainEnv(n_nodes=5)
    env.reset(seed=0)
    env.set_chain_state([(0, 1, 0), (1, 2, 0), (3, 4, 1)])  # node 1 can swap; nodes 2 (no right pair) and 3 cannot
    assert env.action_masks().tolist() == [True, True, True, False, True, False]
    env.set_chain_state([(0, 2, 0), (2, 3, 0), (3, 4, 0)])  # nodes 2 and 3 can swap, node 1 is inside a span
    assert env.action_masks().tolist() == [True, False, True, True, True, True]
    two = RepeaterChainEnv(n_nodes=2)
    two.reset(seed=0)
    assert two.action_masks().tolist() == [True, False]  # the ignored bit of a 2-node chain


def test_masks_pass_through_the_wrappers() -> None:
    wrapped = for_frameworks(gym.make("ceas_gym/RepeaterChain-v0", n_nodes=5))
    wrapped.reset(seed=2)
    assert np.array_equal(wrapped.get_wrapper_attr("action_masks")(), wrapped.unwrapped.action_masks())


def test_maskable_ppo_trains_on_the_repeater_chain_and_never_asks_for_an_ignored_swap() -> None:
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    env = RepeaterChainEnv(n_nodes=5, p=0.5, max_steps=50)
    model = MaskablePPO("MultiInputPolicy", env, n_steps=128, batch_size=64, n_epochs=2, seed=0, verbose=0)
    model.learn(256)
    observation, _ = env.reset(seed=11)
    ignored = 0
    for _ in range(100):
        action, _ = model.predict(observation, action_masks=get_action_masks(env), deterministic=False)
        observation, _, terminated, truncated, info = env.step(action)
        ignored += info["ignored_swaps"]
        if terminated or truncated:
            observation, _ = env.reset()
    assert ignored == 0
    # without masks, random swaps are often ignored: the masks are what keeps the count at zero
    unmasked = RepeaterChainEnv(n_nodes=5, p=0.5, max_steps=50)
    unmasked.reset(seed=11)
    unmasked.action_space.seed(0)
    unmasked_ignored = 0
    for _ in range(100):
        _, _, terminated, truncated, info = unmasked.step(unmasked.action_space.sample())
        unmasked_ignored += info["ignored_swaps"]
        if terminated or truncated:
            unmasked.reset()
    assert unmasked_ignored > 0
