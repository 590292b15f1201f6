"""The bracket's references and the value-aware scheduler: perfect communication, lookahead, value, cheap attackers."""

from __future__ import annotations

import numpy as np
import pytest

from agents.lookahead import Lookahead
from agents.registry import make_policy
from agents.value_aware import ValueAware, plan_exchanges
from ceas_gym.config import ConfigError
from ceas_gym.envs.ceas import EntanglementSchedulingEnv
from ceas_gym.envs.ceas_config import LearningConfig
from ceas_gym.learning.data import make_federated_data


def test_plan_exchanges_completes_whole_exchanges_by_tier_then_worth() -> None:
    demand, held = np.array([4.0, 4.0, 0.0]), np.array([0.0, 2.0, 0.0])
    p, worth = np.array([0.5, 1.0, 1.0]), np.array([1.0, 2.0, 1.0])
    # tier 0: link 1 (worth 2) needs nothing more (holds 2 = one exchange), link 0 needs 2 pairs / 0.5 = 4 attempts;
    # tier 1: link 1 needs 2 more pairs (2 attempts), link 0 4 more attempts; link 2 has no demand.
    np.testing.assert_array_equal(plan_exchanges(demand, held, p, worth, 2, 5), [4, 0, 0])
    np.testing.assert_array_equal(plan_exchanges(demand, held, p, worth, 2, 6), [4, 2, 0])
    np.testing.assert_array_equal(plan_exchanges(demand, held, p, worth, 2, 100), [8, 2, 0])
    # a link of worth 0 (a quarantined or distrusted end) gets nothing, whatever the budget
    np.testing.assert_array_equal(plan_exchanges(demand, held, p, np.array([0.0, 2.0, 1.0]), 2, 100), [0, 2, 0])
    assert plan_exchanges(demand, held, p, worth, 2, 0).sum() == 0


def test_value_policy_stays_in_budget_and_serves_no_quarantined_link() -> None:
    env = EntanglementSchedulingEnv(preset="small", max_rounds=30)
    policy = ValueAware(env)
    policy.reset(0)
    observation, info = env.reset(seed=0)
    edges = env.instance.edges
    for _ in range(30):
        action = policy.act(observation, info)
        attempts, _ = env.decode_action(action)
        assert attempts.sum() <= env.config.budget
        quarantined = observation["quarantined"] > 0
        assert attempts[quarantined[edges[:, 0]] | quarantined[edges[:, 1]]].sum() == 0
        observation, _, _, _, info = env.step(action)
    assert policy.waited.max() < 30  # every link it kept serving had an exchange granted at some point
    with pytest.raises(TypeError, match="CEAS environment"):
        ValueAware(gym_lite())


def gym_lite():
    from ceas_gym.envs.lite import EntanglementSchedulingLiteEnv

    return EntanglementSchedulingLiteEnv(preset="tiny")


def test_perfect_communication_grants_every_exchange_at_fidelity_one_whatever_the_actions() -> None:
    env = EntanglementSchedulingEnv(preset="small", communication="perfect", max_rounds=6)
    observation, info = env.reset(seed=2)
    idle = make_policy("idle", env)
    for _ in range(6):
        observation, _, _, _, info = env.step(idle.act(observation, info))
        assert info["generated"] == 0 and info["consumed"] > 0
        assert info["exchanges_granted_fraction"] == 1.0 and info["mean_delivered_fidelity"] == 1.0
    with pytest.raises(ConfigError, match="communication"):
        EntanglementSchedulingEnv(preset="small", communication="ideal")


def test_lookahead_with_one_candidate_plays_that_candidate_exactly() -> None:
    # Its rollouts run on deep copies: the environment it acts in must not feel them.
    infos = {}
    for name in ("eef", "lookahead"):
        env = EntanglementSchedulingEnv(preset="small", max_rounds=8)
        policy = Lookahead(env, candidates=("eef",), horizon=2) if name == "lookahead" else make_policy("eef", env)
        policy.reset(0)
        observation, info = env.reset(seed=4)
        trajectory = []
        for _ in range(8):
            observation, reward, _, _, info = env.step(policy.act(observation, info))
            trajectory.append((reward, info["accuracy"], info["consumed"]))
        infos[name] = trajectory
    assert infos["lookahead"] == infos["eef"]
    with pytest.raises(ConfigError, match="horizon"):
        Lookahead(env, horizon=0)
    with pytest.raises(ConfigError, match="candidates"):
        Lookahead(env, candidates=("lookahead",))


def test_cheap_attacker_links_change_only_the_links_of_byzantine_nodes() -> None:
    plain = EntanglementSchedulingEnv(preset="small")
    cheap = EntanglementSchedulingEnv(preset="small", roles={"byzantine_link_eta": 1.0})
    byzantine = plain.instance.byzantine
    edges = plain.instance.edges
    touched = byzantine[edges[:, 0]] | byzantine[edges[:, 1]]
    assert touched.any() and not touched.all()
    ratio = cheap.instance.success_probability / plain.instance.success_probability
    np.testing.assert_allclose(ratio[touched], 1.0 / plain.config.links.eta, rtol=1e-12)
    np.testing.assert_allclose(ratio[~touched], 1.0, rtol=0)
    with pytest.raises(ConfigError, match="byzantine_link_eta"):
        EntanglementSchedulingEnv(preset="small", roles={"byzantine_link_eta": 0.0})


def test_default_split_is_non_iid_with_the_configured_class_balance() -> None:
    data_config = LearningConfig().data
    alpha = data_config.dirichlet_alpha
    assert np.isfinite(alpha)
    mask = np.zeros(2000, dtype=bool)
    data = make_federated_data(data_config, mask, np.random.default_rng(0))
    balance = data.train.labels.double().mean(1).numpy()
    samples = data_config.samples_per_node
    # Beta(a, a) class balance, then binomial sampling: var = 1/(4(2a+1)) + (1 - 1/(2a+1)) / (4 S)
    spread = 1 / (4 * (2 * alpha + 1))
    assert balance.var() == pytest.approx(spread + (1 - 1 / (2 * alpha + 1)) / (4 * samples), rel=0.1)
    assert np.mean((balance < 0.1) | (balance > 0.9)) > 0.8  # most nodes hold nearly one class


@pytest.mark.slow
def test_lookahead_is_at_least_the_best_heuristic_over_20_seeds() -> None:
    accuracy: dict[str, list[float]] = {}
    for name in ("eef", "greedy", "uniform", "value", "lookahead"):
        env = EntanglementSchedulingEnv(preset="small", max_rounds=20)
        policy = make_policy(name, env)
        for seed in range(20):
            policy.reset(seed)
            observation, info = env.reset(seed=seed)
            scores = []
            for _ in range(20):
                observation, _, _, _, info = env.step(policy.act(observation, info))
                scores.append(info["accuracy"])
            accuracy.setdefault(name, []).append(float(np.mean(scores)))
    means = {name: np.mean(values) for name, values in accuracy.items()}
    best = max(means[name] for name in ("eef", "greedy", "uniform", "value"))
    assert means["lookahead"] >= best
