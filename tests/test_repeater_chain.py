"""RepeaterChain-v0: configuration, API checkers, event order by hand, Werner physics, agreement with the model."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from agents.base import Policy
from agents.exact import DELIVERED, ExactRepeaterPolicy, RepeaterChainModel, feasible_swaps, solve_repeater_chain
from agents.repeater import SwapAsapPolicy, swap_asap_expected_delivery_time
from ceas_gym.config import ConfigError, from_dict
from ceas_gym.envs.repeater_chain import (
    RepeaterChainConfig,
    RepeaterChainEnv,
    chain_state_from_observation,
    node_pair_index,
    werner_fidelity,
    werner_swap_fidelity,
)


def make_env(**overrides):
    return RepeaterChainEnv(**overrides)


def swap_vector(n_nodes, nodes):
    action = np.zeros(max(n_nodes - 2, 1), dtype=np.int8)
    action[[node - 1 for node in nodes]] = 1
    return action


# ------------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_nodes", 1),
        ("p", 0.0),
        ("p", 1.5),
        ("p_s", 0.0),
        ("t_cut", -1),
        ("t_cut", 1.5),
        ("fidelity0", 0.25),
        ("fidelity0", 1.01),
        ("coherence_rounds", 0.0),
        ("max_steps", 0),
    ],
)
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"RepeaterChainConfig.{field}"):
        RepeaterChainConfig(**{field: value})


def test_config_from_dict_is_strict_and_env_accepts_mappings_and_overrides():
    with pytest.raises(ConfigError, match="unknown key 'pp'"):
        from_dict(RepeaterChainConfig, {"pp": 0.5})
    with pytest.raises(ConfigError, match="unknown key"):
        RepeaterChainEnv({"n_nodes": 3, "cutoff": 2})
    env = RepeaterChainEnv({"n_nodes": 3, "t_cut": 2}, p=0.25)
    assert (env.config.n_nodes, env.config.t_cut, env.config.p) == (3, 2, 0.25)
    assert RepeaterChainConfig(coherence_rounds=math.inf).coherence_rounds == math.inf
    with pytest.raises(ConfigError, match="render_mode"):
        RepeaterChainEnv(render_mode="human")


# ------------------------------------------------------------------------------------------ API checkers
@pytest.mark.parametrize("n_nodes", [2, 3, 5])
def test_gymnasium_and_sb3_env_checkers_pass(n_nodes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the "no spec, cannot test other render modes" notice
        check_env(RepeaterChainEnv(n_nodes=n_nodes, render_mode="ansi"), skip_render_check=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(RepeaterChainEnv(n_nodes=n_nodes), warn=True)


def test_same_seed_gives_the_same_trajectory_bit_for_bit():
    def rollout(seed):
        env = make_env(n_nodes=5, p=0.4, p_s=0.7, t_cut=3, max_steps=60)
        env.action_space.seed(seed)
        observation, _ = env.reset(seed=seed)
        trace = [observation["pair_age"].tobytes() + observation["pair_fidelity"].tobytes()]
        for _ in range(60):
            observation, _, terminated, truncated, _ = env.step(env.action_space.sample())
            trace.append(observation["pair_age"].tobytes() + observation["pair_fidelity"].tobytes())
            if terminated or truncated:
                break
        return trace

    assert rollout(7) == rollout(7)
    assert rollout(7) != rollout(8)


def test_bad_actions_are_rejected_with_the_expected_shape():
    env = make_env(n_nodes=4)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="expected 2 entries of 0 or 1"):
        env.step(np.array([1, 0, 1]))
    with pytest.raises(ValueError, match="expected 2 entries of 0 or 1"):
        env.step(np.array([2, 0]))


# -------------------------------------------------------------------------------------------- physics
def test_werner_swap_formula_by_hand():
    # 0.9 * 0.8 + 0.1 * 0.2 / 3 = 0.72 + 0.02/3
    assert float(werner_swap_fidelity(0.9, 0.8)) == pytest.approx(0.72 + 0.02 / 3, abs=1e-15)
    assert float(werner_swap_fidelity(1.0, 0.7)) == pytest.approx(0.7, abs=1e-15)
    assert float(werner_swap_fidelity(0.25, 0.93)) == pytest.approx(0.25, abs=1e-15)
    # Werner parameters w = (4F - 1)/3 multiply.
    f1, f2 = 0.83, 0.61
    w = (4 * f1 - 1) / 3 * (4 * f2 - 1) / 3
    assert float(werner_swap_fidelity(f1, f2)) == pytest.approx((3 * w + 1) / 4, abs=1e-15)


def test_stored_pair_fidelity_follows_the_decay_law():
    env = make_env(n_nodes=3, p=1.0, t_cut=6, fidelity0=0.9, coherence_rounds=7.0)
    env.reset(seed=0)
    env.set_chain_state([(0, 1, 0)])
    for age in range(1, 5):
        env.step(swap_vector(3, []))
        expected = 0.25 + (0.9 - 0.25) * math.exp(-age / 7.0)
        assert env.pair_fidelities()[(0, 1)] == pytest.approx(expected, rel=1e-12)
        assert float(werner_fidelity(age, 0.9, 7.0)) == pytest.approx(expected, rel=1e-12)


def test_swapped_pair_fidelity_is_the_swap_of_the_decayed_constituents_then_decays():
    env = make_env(n_nodes=4, p=1.0, p_s=1.0, t_cut=5, fidelity0=0.95, coherence_rounds=10.0)
    env.reset(seed=0)
    env.set_chain_state([(0, 1, 2), (1, 2, 0), (2, 3, 1)])
    _, _, terminated, _, info = env.step(swap_vector(4, [1, 2]))
    assert terminated and info["delivered"]
    f = [float(werner_fidelity(age, 0.95, 10.0)) for age in (2, 0, 1)]
    assert info["delivered_fidelity"] == pytest.approx(
        float(werner_swap_fidelity(werner_swap_fidelity(f[0], f[1]), f[2]))
    )


# ------------------------------------------------------------------------------------ event order by hand
def test_perfect_chain_delivers_in_the_first_step():
    env = make_env(n_nodes=5, p=1.0, p_s=1.0, t_cut=0)
    env.reset(seed=3)
    assert env.chain_state() == ((0, 1, 0), (1, 2, 0), (2, 3, 0), (3, 4, 0))
    _, reward, terminated, truncated, info = env.step(swap_vector(5, [1, 2, 3]))
    assert (reward, terminated, truncated, info["delivered"], info["round"]) == (-1.0, True, False, True, 1)
    assert info["delivered_fidelity"] == pytest.approx((3 * ((4 * 0.95 - 1) / 3) ** 4 + 1) / 4)


def test_cutoff_discards_past_t_cut_and_the_link_retries_in_the_same_round():
    env = make_env(n_nodes=3, p=1.0, t_cut=2)
    env.reset(seed=0)
    env.set_chain_state([(0, 1, 1)])
    env.step(swap_vector(3, []))
    assert env.chain_state() == ((0, 1, 2), (1, 2, 0))  # age 2 = t_cut still kept; link 1 generated
    _, _, _, _, info = env.step(swap_vector(3, []))  # (0,1) reaches age 3 > t_cut: discarded, regenerated
    assert env.chain_state() == ((0, 1, 0), (1, 2, 1))
    assert (info["pairs_expired"], info["pairs_generated"]) == (1, 1)


def test_swapped_pair_has_the_older_age_and_spanned_links_do_not_attempt():
    env = make_env(n_nodes=4, p=1.0, p_s=1.0, t_cut=5)
    env.reset(seed=0)
    env.set_chain_state([(0, 1, 2), (1, 2, 0)])
    _, _, terminated, _, info = env.step(swap_vector(4, [1, 2]))  # node 2 has no right pair: ignored
    assert not terminated
    assert info["ignored_swaps"] == 1 and info["swaps_succeeded"] == 1
    # (0,2) takes age 2, then ages to 3; links 0 and 1 are spanned, only link 2 generates.
    assert env.chain_state() == ((0, 2, 3), (2, 3, 0))


def test_failed_swap_loses_its_whole_group():
    env = make_env(n_nodes=5, p=1e-12, p_s=1e-12, t_cut=5)
    env.reset(seed=0)
    env.set_chain_state([(0, 1, 0), (1, 2, 1), (2, 3, 0), (3, 4, 2)])
    _, _, terminated, _, info = env.step(swap_vector(5, [1, 2]))
    assert not terminated
    assert (info["swaps_attempted"], info["swaps_succeeded"], info["pairs_lost"]) == (2, 0, 3)
    assert env.chain_state() == ((3, 4, 3),)


def test_truncation_after_max_steps():
    env = make_env(n_nodes=3, p=1e-12, max_steps=3)
    env.reset(seed=0)
    flags = [env.step(swap_vector(3, [1]))[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


def test_observation_encodes_the_chain_state_and_decodes_back():
    env = make_env(n_nodes=5, t_cut=4)
    env.reset(seed=0)
    observation = env.set_chain_state([(0, 2, 3), (3, 4, 1)])
    index = node_pair_index(5)
    assert observation["pair_age"][index[0, 2]] == 3 and observation["pair_age"][index[3, 4]] == 1
    assert np.sum(observation["pair_age"] >= 0) == 2 and np.sum(observation["pair_fidelity"] > 0) == 2
    assert chain_state_from_observation(observation, 5) == ((0, 2, 3), (3, 4, 1))
    with pytest.raises(ValueError, match="overlaps"):
        env.set_chain_state([(0, 2, 0), (1, 3, 0)])
    with pytest.raises(ValueError, match="t_cut"):
        env.set_chain_state([(0, 1, 5)])


def test_ansi_render_is_one_line_with_every_node():
    env = make_env(n_nodes=5, render_mode="ansi", t_cut=4)
    env.reset(seed=0)
    env.set_chain_state([(0, 2, 3), (3, 4, 1)])
    picture = env.render()
    assert "\n" not in picture
    assert picture.split("|")[0].count("o") == 5
    assert "3" in picture and "(0,2)" in picture


# ---------------------------------------------------------------------------- agreement with the exact model
def empirical_next_states(env, state, action_nodes, samples):
    counts = {}
    for _ in range(samples):
        env.set_chain_state(state)
        _, _, terminated, _, _ = env.step(swap_vector(env.config.n_nodes, action_nodes))
        key = DELIVERED if terminated else env.chain_state()
        counts[key] = counts.get(key, 0) + 1
    return counts


def assert_frequencies_match(counts, probabilities, samples):
    # Each count is Binomial(samples, prob): allow 4.5 standard deviations per outcome (plus 1 count for
    # discreteness); with ~30 outcomes a false alarm has probability below 1e-4, and the seed is fixed anyway.
    assert set(counts) <= set(probabilities), (
        f"outcomes outside the model's support: {set(counts) - set(probabilities)}"
    )
    for outcome, prob in probabilities.items():
        sigma = math.sqrt(samples * prob * (1 - prob))
        assert abs(counts.get(outcome, 0) - samples * prob) <= 4.5 * sigma + 1, (outcome, counts.get(outcome), prob)


@pytest.mark.parametrize(
    ("n_nodes", "state", "action"),
    [
        (4, ((0, 1, 1), (1, 2, 0), (2, 3, 2)), (1, 2)),
        (4, ((0, 1, 2), (2, 3, 0)), ()),
        (5, ((0, 1, 0), (1, 2, 1), (3, 4, 2)), (1,)),
    ],
)
def test_env_transition_frequencies_match_model_probabilities(n_nodes, state, action):
    config = RepeaterChainConfig(n_nodes=n_nodes, p=0.45, p_s=0.6, t_cut=2)
    env = RepeaterChainEnv(config)
    env.reset(seed=11)
    samples = 6000
    probabilities = {t.next_state: t.probability for t in RepeaterChainModel(config).transitions(state, action)}
    assert_frequencies_match(empirical_next_states(env, state, action, samples), probabilities, samples)


def test_reset_distribution_matches_model_start_distribution():
    config = RepeaterChainConfig(n_nodes=4, p=0.3)
    env = RepeaterChainEnv(config)
    env.reset(seed=5)
    samples = 6000
    counts = {}
    for _ in range(samples):
        env.reset()
        counts[env.chain_state()] = counts.get(env.chain_state(), 0) + 1
    probabilities = dict((s, p) for p, s in RepeaterChainModel(config).initial_distribution())
    assert_frequencies_match(counts, probabilities, samples)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_nodes=st.integers(2, 6), p_s=st.sampled_from([0.3, 1.0]))
def test_every_env_step_is_a_model_outcome_with_positive_probability(seed, n_nodes, p_s):
    config = RepeaterChainConfig(n_nodes=n_nodes, p=0.5, p_s=p_s, t_cut=2, max_steps=40)
    model = RepeaterChainModel(config)
    env = RepeaterChainEnv(config)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    for _ in range(40):
        state = env.chain_state()
        action = env.action_space.sample()
        nodes = tuple(int(i) + 1 for i in np.flatnonzero(action[: n_nodes - 2]))
        feasible = tuple(node for node in nodes if node in feasible_swaps(state))
        outcomes = {t.next_state: t.probability for t in model.transitions(state, feasible)}
        observation, _, terminated, truncated, _ = env.step(action)
        assert env.observation_space.contains(observation)
        assert outcomes.get(DELIVERED if terminated else env.chain_state(), 0.0) > 0.0
        if terminated or truncated:
            break


def run_episodes(env, policy, episodes, seed):
    lengths = np.empty(episodes)
    env.reset(seed=seed)
    for episode in range(episodes):
        observation, info = env.reset()
        policy.reset()
        steps = 0
        while True:
            observation, _, terminated, truncated, info = env.step(policy.act(observation, info))
            steps += 1
            assert not truncated
            if terminated:
                break
        lengths[episode] = steps
    return lengths


@pytest.mark.parametrize(("policy_name", "episodes"), [("exact", 2000), ("asap", 2000)])
def test_monte_carlo_delivery_time_agrees_with_exact_value(policy_name, episodes):
    config = RepeaterChainConfig(n_nodes=4, p=0.5, p_s=0.75, t_cut=2, max_steps=100_000)
    env = RepeaterChainEnv(config)
    if policy_name == "exact":
        policy = ExactRepeaterPolicy(config)
        expected = policy.expected_delivery_time
    else:
        policy = SwapAsapPolicy(config.n_nodes)
        expected = swap_asap_expected_delivery_time(config)
    assert isinstance(policy, Policy)
    lengths = run_episodes(env, policy, episodes, seed=2024)
    # CLT: the sample mean is within 4 standard errors of the true mean except with probability ~6e-5.
    standard_error = lengths.std(ddof=1) / math.sqrt(episodes)
    assert abs(lengths.mean() - expected) <= 4 * standard_error


def test_exact_policy_acts_as_the_solution_and_swap_asap_swaps_where_feasible():
    config = RepeaterChainConfig(n_nodes=4, p=0.5, p_s=1.0, t_cut=1)
    solution = solve_repeater_chain(config)
    exact = ExactRepeaterPolicy(config, solution=solution)
    asap = SwapAsapPolicy(4)
    env = RepeaterChainEnv(config)
    env.reset(seed=0)
    differs = 0
    for state in solution.mdp.states:
        observation = env.set_chain_state(state)
        expected = swap_vector(4, solution.action(state))
        assert np.array_equal(exact.act(observation, {}), expected)
        rights = {right for _, right, _ in state}
        lefts = {left for left, _, _ in state}
        feasible = [node for node in (1, 2) if node in rights and node in lefts]
        assert np.array_equal(asap.act(observation, {}), swap_vector(4, feasible))
        differs += not np.array_equal(expected, swap_vector(4, feasible))
    assert differs > 0  # on this instance the optimal policy waits somewhere swap-asap would swap


@pytest.mark.slow
@pytest.mark.parametrize(("n_nodes", "p_s", "t_cut"), [(5, 1.0, 2), (5, 0.7, 3)])
def test_monte_carlo_five_node_chain_agrees_with_exact_value(n_nodes, p_s, t_cut):
    config = RepeaterChainConfig(n_nodes=n_nodes, p=0.5, p_s=p_s, t_cut=t_cut, max_steps=100_000)
    policy = ExactRepeaterPolicy(config)
    episodes = 10_000
    lengths = run_episodes(RepeaterChainEnv(config), policy, episodes, seed=99)
    assert abs(lengths.mean() - policy.expected_delivery_time) <= 4 * lengths.std(ddof=1) / math.sqrt(episodes)
