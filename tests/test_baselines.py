"""Baseline policies: their plans are what they claim, and EEF beats random on the small preset."""

from __future__ import annotations

import numpy as np
import pytest

from agents.base import Policy
from agents.baselines import EarliestExpiringFirst, GreedyByDemand, UniformRandom
from agents.scheduling import allocate_in_order
from ceas_gym.envs.lite import EntanglementSchedulingLiteEnv


def run_episode(env, policy, seed):
    policy.reset(seed)
    observation, info = env.reset(seed=seed)
    total = 0.0
    while True:
        observation, reward, terminated, truncated, info = env.step(policy.act(observation, info))
        total += reward
        if terminated or truncated:
            return total, info


def test_policies_implement_the_protocol():
    env = EntanglementSchedulingLiteEnv(preset="tiny")
    for policy in (EarliestExpiringFirst(env), GreedyByDemand(env), UniformRandom(env)):
        assert isinstance(policy, Policy)


def test_allocate_in_order_hand_computed():
    needed = np.array([3, 5, 2, 4])
    order = np.array([2, 0, 3, 1])  # link 2 first, then 0, 3, 1
    assert allocate_in_order(needed, order, budget=8).tolist() == [3, 0, 2, 3]


def test_eef_action_round_trips_through_the_env_budget_split():
    env = EntanglementSchedulingLiteEnv(preset="small")
    policy = EarliestExpiringFirst(env)
    observation, info = env.reset(seed=0)
    for _ in range(20):
        action = policy.act(observation, info)
        attempts, freshest = env.decode_action(action)
        view = policy.interface.read(observation)
        deficit = np.maximum(view["demand_pairs"] - view["inventory"].sum(axis=1), 0)
        # Attempts go only to links with a deficit, within budget; oldest-first everywhere.
        assert np.all(attempts[deficit == 0] == 0)
        assert attempts.sum() <= env.config.budget
        assert not freshest.any()
        observation, _, _, _, info = env.step(action)


def test_eef_gives_earliest_deadline_first_when_budget_is_short():
    env = EntanglementSchedulingLiteEnv(preset="small", budget=1)
    policy = EarliestExpiringFirst(env)
    observation, _ = env.reset(seed=0)
    view = {key: np.array(value, copy=True) for key, value in observation.items()}
    view["inventory"][:] = 0
    view["demand_pairs"][:] = 0
    view["demand_pairs"][[1, 2]] = 1
    view["demand_deadline"][:] = 4
    view["demand_deadline"][2] = 1
    attempts, _ = env.decode_action(policy.act(view, {}))
    assert attempts.tolist() == [1 if link == 2 else 0 for link in range(env.num_links)]


def test_eef_beats_random_on_small_over_20_seeds():
    env = EntanglementSchedulingLiteEnv(preset="small")
    results = {}
    for policy in (EarliestExpiringFirst(env), UniformRandom(env)):
        served, utilisation = [], []
        for seed in range(20):
            _, info = run_episode(env, policy, seed)
            served.append(info["served_on_time"])
            utilisation.append(info["utilisation"])
        results[policy.name] = (np.mean(served), np.mean(utilisation))
    assert results["eef"][0] > results["random"][0]
    assert results["eef"][1] > results["random"][1]


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_greedy_serves_more_than_doing_nothing(preset):
    env = EntanglementSchedulingLiteEnv(preset=preset)
    greedy = GreedyByDemand(env)
    _, greedy_info = run_episode(env, greedy, seed=1)

    class Idle:
        name = "idle"

        def reset(self, seed=None):
            pass

        def act(self, observation, info):
            return np.zeros(env.action_space.shape, dtype=np.float32)

    _, idle_info = run_episode(env, Idle(), seed=1)
    assert idle_info["requests_served_total"] == 0
    assert greedy_info["requests_served_total"] > 0


def test_eef_plan_hand_computed_cases():
    from agents.baselines import plan_earliest_expiring_first as plan

    # Equal deadlines: every link's first pair (cheapest link first) before any second pair.
    # Costs 1/p: link 1 -> 1, link 0 -> 2, link 2 -> 4; budget 7 covers exactly the three first units.
    assert plan(np.array([2.0, 2.0, 2.0]), np.array([1.0, 1.0, 1.0]), np.array([0.5, 1.0, 0.25]), 7).tolist() == [
        2,
        1,
        4,
    ]
    # Earlier deadline wins over the cheaper link.
    assert plan(np.array([3.0, 0.0, 1.0]), np.array([2.0, 1.0, 1.0]), np.array([1.0, 1.0, 1.0]), 2).tolist() == [
        1,
        0,
        1,
    ]
    # Budget too small for the expected cost: the first unit is still started with what is there.
    assert plan(np.array([1.0, 1.0]), np.array([1.0, 1.0]), np.array([0.2, 0.1]), 3).tolist() == [3, 0]
    # No deficit, no attempts.
    assert plan(np.zeros(3), np.ones(3), np.ones(3), 10).tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    "env_id", ["ceas_gym/EntanglementScheduling-Small-v0", "ceas_gym/EntanglementScheduling-Lite-v0"]
)
def test_idle_generates_no_pair_so_no_consensus_message_travels(env_id: str) -> None:
    import gymnasium as gym

    from agents.registry import make_policy

    env = gym.make(env_id, max_rounds=6) if "Small" in env_id else gym.make(env_id)
    policy = make_policy("idle", env)
    assert isinstance(policy, Policy) and policy.name == "idle"
    observation, info = env.reset(seed=0)
    action = policy.act(observation, info)
    attempts, _ = env.unwrapped.decode_action(action)
    assert attempts.sum() == 0
    for _ in range(6):
        observation, _, terminated, truncated, info = env.step(policy.act(observation, info))
        assert info["attempts"] == 0 and info["generated"] == 0
        assert info.get("consumed", 0) == 0 and info.get("exchanges_granted_fraction", 0.0) == 0.0
        if terminated or truncated:
            break
