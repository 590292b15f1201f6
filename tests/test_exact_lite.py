"""Tests of the exact finite-horizon solver for the Lite scheduling env's ``tiny`` preset."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.base import Policy
from agents.baselines import EarliestExpiringFirst, GreedyByDemand, UniformSplit
from agents.exact_lite import (
    ExactLitePolicy,
    LiteTinyModel,
    budget_splits,
    deterministic_row_weights,
    evaluate_finite_horizon,
    policy_action_indices,
    solve_lite,
    uniform_row_weights,
)
from agents.scheduling import SchedulingInterface
from ceas_gym.envs.lite import EntanglementSchedulingLiteEnv
from ceas_gym.envs.lite_config import make_lite_config

EMPTY = ((), ())


@pytest.fixture(scope="module")
def env():
    environment = EntanglementSchedulingLiteEnv(preset="tiny")
    environment.reset(seed=0)
    return environment


@pytest.fixture(scope="module")
def solved(env):
    return solve_lite(env)


def expected_reward(model, state, action):
    return sum(outcome.probability * outcome.reward for outcome in model.transitions(state, action))


def run_episode(env, policy, seed):
    policy.reset(seed)
    observation, info = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        observation, reward, terminated, truncated, info = env.step(policy.act(observation, info))
        total += reward
        done = terminated or truncated
    return total


def test_tiny_preset_is_small_and_registered_length_unchanged(env):
    config = make_lite_config("tiny")
    assert config.topology.num_nodes in (3, 4) and config.max_rounds == 30
    assert config.serving_order == "oldest-first" and config.queue_capacity == 1 and config.links.capacity == 1


def test_budget_splits_count_and_round_trip_through_the_env_split(env):
    splits = budget_splits(env.num_links, env.config.budget)
    assert len(splits) == math.comb(env.config.budget + env.num_links, env.num_links)  # stars and bars: 10
    assert len(set(splits)) == len(splits) and all(sum(s) <= env.config.budget for s in splits)
    interface = SchedulingInterface.from_env(env)
    for split in splits:
        attempts, freshest = env.decode_action(interface.action(np.asarray(split)))
        assert tuple(attempts.tolist()) == split and not freshest.any()


def test_one_step_rewards_hand_computed(env):
    model = LiteTinyModel.from_env(env)
    p = float(env.instance.success_probability[0])
    f0 = float(env.instance.fidelity0[0])
    t_coh = float(env.instance.coherence_rounds[0])
    due_now = (((), ((1, 1),)), EMPTY, EMPTY)  # link 0: no pair, one request due this round
    # Two attempts: served with a fresh pair when at least one succeeds; the second success overflows (capacity 1).
    two = (1 - (1 - p) ** 2) * (1 + f0) - (1 - p) ** 2 - 0.05 * p**2
    assert expected_reward(model, due_now, (2, 0, 0)) == pytest.approx(two, abs=1e-12)
    assert expected_reward(model, due_now, (1, 0, 0)) == pytest.approx(p * (1 + f0) - (1 - p), abs=1e-12)
    # Attempts elsewhere: the request is missed; pairs made on links 1 and 2 survive ageing (age 1 < tau_c = 2).
    assert expected_reward(model, due_now, (0, 1, 1)) == pytest.approx(-1.0, abs=1e-12)
    stored_on_link_1 = sum(t.probability for t in model.transitions(due_now, (0, 1, 1)) if t.next_state[1][0] == (1,))
    assert stored_on_link_1 == pytest.approx(p)
    # A stored pair of age 1 serves the request at fidelity F(1) = 1/4 + (F0 - 1/4) e^{-1/T}.
    stored = (((1,), ((1, 1),)), EMPTY, EMPTY)
    assert expected_reward(model, stored, (0, 0, 0)) == pytest.approx(1 + 0.25 + (f0 - 0.25) * math.exp(-1 / t_coh))
    # An unused pair of age 1 reaches the cutoff tau_c = 2 and expires: -w_wasted.
    assert expected_reward(model, (((1,), ()), EMPTY, EMPTY), (0, 0, 0)) == pytest.approx(-0.05)
    # Next state after serving or missing: link queues hold only the new Bernoulli(0.3) arrivals.
    outcomes = {t.next_state: t.probability for t in model.transitions(due_now, (1, 0, 0))}
    assert outcomes[(EMPTY, EMPTY, EMPTY)] == pytest.approx(0.7**3)
    assert outcomes[(((), ((2, 1),)), EMPTY, EMPTY)] == pytest.approx(0.15 * 0.7**2)
    assert sum(outcomes.values()) == pytest.approx(1.0)


def test_last_round_value_is_the_best_one_step_reward(env, solved):
    model, solution = solved
    last = solution.horizon - 1
    for state in solution.mdp.states[:40]:
        best = max(expected_reward(model, state, action) for action in model.splits)
        assert solution.value(state, last) == pytest.approx(best, abs=1e-12)


@pytest.mark.parametrize(
    ("state", "action"),
    [
        ((((), ((1, 1),)), ((1,), ((2, 1),)), EMPTY), (1, 0, 1)),
        ((((1,), ()), ((), ((2, 1),)), ((1,), ((1, 1),))), (0, 2, 0)),
        ((EMPTY, EMPTY, ((), ((1, 1),))), (1, 1, 0)),
    ],
)
def test_transition_probabilities_match_env_frequencies(state, action):
    env = EntanglementSchedulingLiteEnv(preset="tiny")
    model = LiteTinyModel.from_env(env)
    interface = SchedulingInterface.from_env(env)
    env.reset(seed=2024)
    samples = 4000
    counts: dict = {}
    rewards = np.zeros(samples)
    for i in range(samples):
        model.load_into_env(env, state, round_index=0)
        _, rewards[i], _, _, _ = env.step(interface.action(np.asarray(action)))
        next_state = model.state_from_env(env)
        counts[next_state] = counts.get(next_state, 0) + 1
    transitions = model.transitions(state, action)
    predicted = {t.next_state: t.probability for t in transitions}
    assert set(counts) <= set(predicted)  # the env never reaches a state the model calls impossible
    # Each count is Binomial(n, p): 4.5 standard deviations keeps the family-wise false-alarm rate over the
    # <= 216 outcomes of a test below 216 * 7e-6 = 1.5e-3 (and the run is seeded).
    for next_state, probability in predicted.items():
        frequency = counts.get(next_state, 0) / samples
        assert abs(frequency - probability) <= 4.5 * math.sqrt(probability * (1 - probability) / samples) + 1e-12
    mean_reward = sum(t.probability * t.reward for t in transitions)
    assert abs(rewards.mean() - mean_reward) <= 4.5 * rewards.std(ddof=1) / math.sqrt(samples) + 1e-12


@pytest.mark.parametrize("serving_order", ["oldest-first", "freshest-first"])
def test_transition_frequencies_on_a_larger_instance_with_blocking_and_serving_order(serving_order):
    """Two-pair memories and queues: EDF order, no overtaking, rejection at a full queue, pair choice by order."""
    links = {"capacity": 2, "cutoff_min": 3, "cutoff_max": 3}
    env = EntanglementSchedulingLiteEnv(
        preset="tiny", links=links, demand={"pairs_max": 2}, queue_capacity=2, budget=3, serving_order=serving_order
    )
    model = LiteTinyModel.from_env(env)
    interface = SchedulingInterface.from_env(env)
    state = (
        ((1, 2), ((2, 2), (1, 1))),  # the later-arrived deadline-1 request is served first
        ((2,), ((1, 2), (2, 1))),  # a two-pair request blocks the one behind it
        ((), ((2, 1), (2, 1))),  # full queue: an arrival is rejected
    )
    action = (1, 1, 1)
    env.reset(seed=7)
    samples = 4000
    counts: dict = {}
    rewards = np.zeros(samples)
    for i in range(samples):
        model.load_into_env(env, state)
        _, rewards[i], _, _, _ = env.step(interface.action(np.asarray(action)))
        next_state = model.state_from_env(env)
        counts[next_state] = counts.get(next_state, 0) + 1
    transitions = model.transitions(state, action)
    predicted = {t.next_state: t.probability for t in transitions}
    assert set(counts) <= set(predicted)
    for next_state, probability in predicted.items():  # 4.5 binomial standard deviations, as above
        frequency = counts.get(next_state, 0) / samples
        assert abs(frequency - probability) <= 4.5 * math.sqrt(probability * (1 - probability) / samples) + 1e-12
    mean_reward = sum(t.probability * t.reward for t in transitions)
    assert abs(rewards.mean() - mean_reward) <= 4.5 * rewards.std(ddof=1) / math.sqrt(samples) + 1e-12


def test_policy_reads_the_env_state_when_the_queue_is_longer_than_one():
    env = EntanglementSchedulingLiteEnv(preset="tiny", queue_capacity=2, max_rounds=10)
    policy = ExactLitePolicy(env)
    assert not policy.model.observation_identifies_state
    returns = np.array([run_episode(env, policy, seed) for seed in range(300)])
    # i.i.d. episodes: the mean lies within 4 standard errors of the exact optimum (99.99 % normal interval).
    assert abs(returns.mean() - policy.expected_return) <= 4 * returns.std(ddof=1) / math.sqrt(returns.size)


def test_observation_identifies_the_state(env):
    model = LiteTinyModel.from_env(env)
    rng = np.random.default_rng(5)
    observation, _ = env.reset(seed=5)
    for _ in range(60):  # two episodes of 30 rounds
        assert model.state_from_observation(observation) == model.state_from_env(env)
        action = rng.uniform(0, 1, env.action_space.shape).astype(np.float32)
        observation, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:  # stepping past the end raises ResetNeeded
            observation, _ = env.reset()


def test_optimum_dominates_exact_baseline_values_in_every_state_and_round(env, solved):
    model, solution = solved
    mdp, horizon = solution.mdp, solution.horizon
    baselines = [
        deterministic_row_weights(mdp, policy_action_indices(model, mdp, env, policy))
        for policy in (EarliestExpiringFirst(env), GreedyByDemand(env), UniformSplit(env))
    ]
    baselines.append(uniform_row_weights(mdp))
    for weights in baselines:
        values = evaluate_finite_horizon(mdp, horizon, weights)
        assert np.all(solution.values >= values - 1e-9)
    # The optimal policy evaluated as a sequence of stationary one-round policies reproduces the optimal values.
    values = np.zeros(mdp.n_states)
    for t in range(horizon - 1, -1, -1):
        weights = deterministic_row_weights(mdp, solution.policy[t])
        values = (
            evaluate_finite_horizon(mdp, 1, weights)[0]
            + (mdp.transition_matrix @ values)[mdp.action_offset[:-1] + solution.policy[t]]
        )
    assert np.allclose(values, solution.values[0])


def test_exact_policy_monte_carlo_return_matches_the_solved_value(env, solved):
    _, solution = solved
    policy = ExactLitePolicy(env)
    assert isinstance(policy, Policy) and policy.name == "exact-optimal"
    returns = np.array([run_episode(env, policy, seed) for seed in range(300)])
    standard_error = returns.std(ddof=1) / math.sqrt(returns.size)
    # Episodes are i.i.d.; 4 standard errors is a 99.99 % normal confidence interval for the mean.
    assert abs(returns.mean() - policy.expected_return) <= 4 * standard_error
    assert policy.expected_return == pytest.approx(solution.initial_value)


def test_optimum_beats_eef_exactly_and_in_monte_carlo(env, solved):
    model, solution = solved
    mdp = solution.mdp
    eef = EarliestExpiringFirst(env)
    eef_value = (
        mdp.initial
        @ evaluate_finite_horizon(
            mdp, solution.horizon, deterministic_row_weights(mdp, policy_action_indices(model, mdp, env, eef))
        )[0]
    )
    assert solution.initial_value > eef_value + 1.0  # EEF is not optimal here (it bets both attempts on one link)
    seeds = range(40)
    optimal = np.array([run_episode(env, ExactLitePolicy(env), seed) for seed in seeds])
    baseline = np.array([run_episode(env, eef, seed) for seed in seeds])
    difference = optimal - baseline
    assert difference.mean() > 2 * difference.std(ddof=1) / math.sqrt(difference.size)


def test_agent_chosen_serving_order_is_rejected():
    env = EntanglementSchedulingLiteEnv(preset="tiny", serving_order="agent")
    with pytest.raises(ValueError, match="serving_order"):
        LiteTinyModel.from_env(env)
