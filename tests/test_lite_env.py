"""The learning-free scheduling environment: configuration errors, action decoding, reward and bookkeeping."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ceas_gym  # noqa: F401
from ceas_gym.config import ConfigError, from_dict
from ceas_gym.envs.link_layer import split_budget
from ceas_gym.envs.lite import EntanglementSchedulingLiteEnv
from ceas_gym.envs.lite_config import LiteConfig, make_lite_config


@settings(max_examples=100, deadline=None)
@given(
    weights=st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=2, max_size=12),
    budget=st.integers(0, 300),
)
def test_split_budget_spends_exactly_the_rounded_shares(weights, budget):
    weights = np.array(weights)
    attempts = split_budget(weights, budget)
    assert attempts.shape == (weights.size - 1,)
    assert np.all(attempts >= 0)
    if weights.sum() == 0 or budget == 0:
        assert attempts.sum() == 0
        return
    exact = budget * weights / weights.sum()
    # Largest remainder: every share is its exact value rounded down or up.
    assert np.all(attempts >= np.floor(exact[:-1]) - 1e-9)
    assert np.all(attempts <= np.ceil(exact[:-1]) + 1e-9)
    assert attempts.sum() <= budget


def test_split_budget_hand_computed_case():
    # Budget 10 over weights (1, 1, 1, 0): exact shares 3.33 each -> 3, 3, 3 plus one leftover to the lowest index.
    assert split_budget(np.array([1.0, 1.0, 1.0, 0.0]), 10).tolist() == [4, 3, 3]
    # Half left unspent.
    assert split_budget(np.array([1.0, 1.0, 2.0]), 8).tolist() == [2, 2]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(2, 12), st.integers(0, 300), st.integers(0, 2**31 - 1))
def test_split_budget_of_a_batch_equals_each_row_split_alone(rows, width, budget, seed):
    rng = np.random.default_rng(seed)
    weights = rng.random((rows, width)) * (rng.random((rows, width)) < 0.8)
    weights[0] = 0.0 if rows > 1 else weights[0]  # an all-zero row spends nothing
    weights[-1, ::2] = 0.5  # equal remainders: ties go to the lower index in every row
    batch = split_budget(weights, budget)
    assert batch.shape == (rows, width - 1)
    for row in range(rows):
        np.testing.assert_array_equal(batch[row], _split_one(weights[row], budget))


def _split_one(weights, budget):
    """Largest-remainder split of one row, written with a Python loop over the leftover attempts."""
    total = weights.sum()
    if total <= 0 or budget == 0:
        return np.zeros(weights.size - 1, dtype=np.int64)
    exact = budget * weights / total
    shares = np.floor(exact).astype(np.int64)
    remainders = exact - shares
    for _ in range(budget - int(shares.sum())):
        best = max(range(weights.size), key=lambda k: (remainders[k], -k))
        shares[best] += 1
        remainders[best] = -1.0
    return shares[:-1]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bugdet": 3}, "unknown key 'bugdet'.*Did you mean 'budget'"),
        ({"budget": -1}, r"LiteConfig.budget = -1 is out of range"),
        ({"links": {"fidelity0": 1.2}}, r"LinkConfig.fidelity0 = 1.2 is out of range; allowed: \(0.25, 1\]"),
        ({"links": {"fidelity0": 0.2}}, r"LinkConfig.fidelity0"),
        ({"links": {"cutoff_min": 5, "cutoff_max": 3}}, "cutoff_max = 3 must be >= cutoff_min = 5"),
        ({"links": {"capcity": 3}}, "unknown key 'capcity'"),
        ({"demand": {"rate": 1.5}}, r"StochasticDemandConfig.rate = 1.5 is out of range"),
        ({"demand": {"pairs_max": 9}}, "could never be served"),
        ({"serving_order": "newest"}, "serving_order = 'newest' is not allowed"),
        ({"reward": {"missed": -1.0}}, "RewardConfig.missed"),
        ({"links": {"hardware": ["quantum-toaster"]}}, "unknown hardware profile 'quantum-toaster'"),
    ],
)
def test_bad_configuration_raises_a_clear_error(overrides, message):
    with pytest.raises((ConfigError, KeyError), match=message):
        EntanglementSchedulingLiteEnv(preset="small", **overrides)


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(KeyError, match="Did you mean 'small'"):
        EntanglementSchedulingLiteEnv(preset="smal")


def test_config_from_mapping_is_strict_and_round_trips():
    config = from_dict(LiteConfig, {"budget": 7, "links": {"capacity": 3}, "demand": {"rate": 0.1}})
    assert config.budget == 7 and config.links.capacity == 3 and config.demand.rate == 0.1
    with pytest.raises(ConfigError, match="unknown key 'rewards'"):
        from_dict(LiteConfig, {"rewards": {}})


def test_invalid_actions_clip_or_raise():
    env = EntanglementSchedulingLiteEnv(preset="tiny")
    env.reset(seed=0)
    wide = np.full(env.action_space.shape, 2.0, dtype=np.float32)
    env.step(wide)  # clipped: fine
    with pytest.raises(ValueError, match="finite"):
        env.step(np.full(env.action_space.shape, np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="expected shape"):
        env.step(np.zeros(3, dtype=np.float32))
    strict = EntanglementSchedulingLiteEnv(preset="tiny", invalid_action="raise")
    strict.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        strict.step(wide)


def test_zero_weights_spend_nothing_and_generate_nothing():
    env = EntanglementSchedulingLiteEnv(preset="small")
    env.reset(seed=1)
    _, _, _, _, info = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    assert info["attempts"] == 0 and info["generated"] == 0


def test_reward_matches_info_and_the_documented_formula():
    env = EntanglementSchedulingLiteEnv(
        preset="small", reward={"served": 1.5, "fidelity": 0.5, "missed": 2.0, "wasted": 0.1, "attempt": 0.3}
    )
    env.reset(seed=2)
    env.action_space.seed(0)
    for _ in range(30):
        _, reward, _, _, info = env.step(env.action_space.sample())
        fidelity_sum = info["mean_delivered_fidelity"] * info["served"]
        expected = (
            1.5 * info["served"]
            + 0.5 * fidelity_sum
            - 2.0 * info["missed"]
            - 0.1 * info["wasted"]
            - 0.3 * info["attempts"] / env.config.budget
        )
        assert reward == pytest.approx(expected)


def test_pairs_are_conserved_through_env_steps_and_info_totals_agree():
    env = EntanglementSchedulingLiteEnv(preset="small")
    env.reset(seed=3)
    env.action_space.seed(3)
    generated = consumed = expired = 0.0
    for _ in range(50):
        _, _, _, _, info = env.step(env.action_space.sample())
        env.layer.inventory.check_conservation()
        generated += info["generated"]
        consumed += info["consumed"]
        expired += info["expired"]
    inventory = env.layer.inventory
    assert generated == inventory.generated.sum()
    assert consumed == inventory.consumed.sum()
    assert expired == inventory.expired.sum()
    assert info["utilisation"] == pytest.approx(consumed / generated)
    assert 0.0 <= info["served_on_time"] <= 1.0


def test_attempts_never_exceed_budget_and_successes_never_exceed_attempts():
    env = EntanglementSchedulingLiteEnv(preset="paper")
    env.reset(seed=0)
    env.action_space.seed(1)
    for _ in range(10):
        _, _, _, _, info = env.step(env.action_space.sample())
        assert info["attempts"] <= 250
        assert info["generated"] <= info["attempts"]


def test_generation_success_rate_matches_link_probability():
    # One link hammered with the whole budget: successes / attempts -> p.
    rounds = 200  # one episode (stepping past an episode's end raises ResetNeeded)
    env = EntanglementSchedulingLiteEnv(preset="small", budget=200, links={"capacity": 4}, max_rounds=rounds)
    env.reset(seed=4)
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    action[0] = 1.0
    successes = 0
    for _ in range(rounds):
        _, _, _, _, info = env.step(action)
        successes += info["generated"]
    p = env.instance.success_probability[0]
    mean = successes / (rounds * 200)
    std = np.sqrt(p * (1 - p) / (rounds * 200))
    assert abs(mean - p) < 5 * std


def test_flattened_variant_matches_dict_observation():
    dict_env = EntanglementSchedulingLiteEnv(preset="small")
    flat_env = EntanglementSchedulingLiteEnv(preset="small", flatten_observation=True)
    assert isinstance(flat_env.observation_space, gym.spaces.Box)
    observation, _ = dict_env.reset(seed=5)
    flat_observation, _ = flat_env.reset(seed=5)
    np.testing.assert_array_equal(gym.spaces.flatten(dict_env.observation_space, observation), flat_observation)


def test_fixed_serving_order_shrinks_the_action():
    env = EntanglementSchedulingLiteEnv(preset="small", serving_order="oldest-first")
    assert env.action_space.shape == (env.num_links + 1,)


def test_presets_match_their_documented_sizes():
    assert make_lite_config("tiny").topology.num_nodes in (3, 4)
    assert make_lite_config("small").topology.num_nodes == 8
    paper = make_lite_config("paper")
    assert paper.topology.num_nodes == 50 and paper.budget == 250
    assert (paper.links.cutoff_min, paper.links.cutoff_max) == (3, 6)
    env = EntanglementSchedulingLiteEnv(preset="paper")
    assert set(np.unique(env.instance.cutoff)) <= {3, 4, 5, 6}
