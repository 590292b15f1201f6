"""Link outages: the Gilbert-Elliott chain per link, and what a down link does to a CEAS round."""

from __future__ import annotations

import numpy as np
import pytest

from agents.baselines import EarliestExpiringFirst, GreedyByDemand, UniformSplit
from agents.value_aware import ValueAware
from ceas_gym.config import ConfigError
from ceas_gym.envs.ceas import EntanglementSchedulingEnv
from ceas_gym.network.outages import OutageConfig, next_outages

SMALL = {"preset": "small", "max_rounds": 8}


def test_one_transition_by_hand():
    config = OutageConfig(rate=0.1, mean_rounds=4.0)  # down -> up below 0.25, up -> down below 0.1
    down = np.array([True, True, False, False])
    uniforms = np.array([0.2, 0.3, 0.05, 0.5])
    assert next_outages(down, uniforms, config).tolist() == [False, True, True, False]


def test_long_run_down_fraction_and_outage_length_match_the_closed_form():
    config = OutageConfig(rate=0.05, mean_rounds=8.0)
    rng = np.random.default_rng(0)
    down = np.zeros(400, dtype=bool)
    history = []
    for _ in range(3000):
        down = next_outages(down, rng.random(down.size), config)
        history.append(down)
    states = np.array(history[500:])  # past the start from all-up
    assert config.down_fraction == pytest.approx(0.05 / (0.05 + 1 / 8))
    assert states.mean() == pytest.approx(config.down_fraction, abs=0.01)
    starts = (states[1:] & ~states[:-1]).sum()
    assert states[1:].sum() / starts == pytest.approx(8.0, rel=0.05)  # rounds down per outage


@pytest.mark.parametrize(
    ("settings", "field"), [({"rate": 1.5}, "OutageConfig.rate"), ({"mean_rounds": 0.5}, "OutageConfig.mean_rounds")]
)
def test_bad_settings_name_the_field(settings, field):
    with pytest.raises(ConfigError, match=field):
        EntanglementSchedulingEnv(**SMALL, outages=settings)


def test_down_links_generate_nothing_and_show_zero_success_probability():
    env = EntanglementSchedulingEnv(**SMALL, outages={"rate": 1.0, "mean_rounds": 1e9})
    observation, _ = env.reset(seed=0)
    assert (observation["success_probability"] > 0).all()  # every link starts up
    uniform = UniformSplit(env)
    observation, _, _, _, info = env.step(uniform.act(observation, {}))
    assert info["generated"] > 0  # round 1 ran with every link up; then every link went down
    assert (observation["success_probability"] == 0).all()
    held = observation["inventory"].sum(axis=1)
    for _ in range(3):
        observation, _, _, _, info = env.step(uniform.act(observation, {}))
        assert info["attempts"] == env.config.budget and info["generated"] == 0
        assert (observation["inventory"].sum(axis=1) <= held).all()  # stored pairs are used or age, never added
        held = observation["inventory"].sum(axis=1)


def test_no_outages_draw_nothing_and_leave_the_episode_unchanged():
    rows = []
    for settings in ({}, {"outages": {"rate": 0.0, "mean_rounds": 3.0}}):
        env = EntanglementSchedulingEnv(**SMALL, **settings)
        policy = EarliestExpiringFirst(env)
        observation, info = env.reset(seed=3)
        trace = []
        for _ in range(4):
            observation, reward, _, _, info = env.step(policy.act(observation, info))
            trace.append((reward, info["generated"], info["accuracy"]))
        rows.append((trace, env.np_random.random()))  # the stream is where it was: nothing was drawn for outages
    assert rows[0] == rows[1]


@pytest.mark.parametrize("policy_class", [EarliestExpiringFirst, GreedyByDemand, ValueAware])
def test_demand_aware_heuristics_spend_nothing_on_a_down_link(policy_class):
    env = EntanglementSchedulingEnv(**SMALL, outages={"rate": 0.2, "mean_rounds": 1e9})
    policy = policy_class(env)
    observation, info = env.reset(seed=1)
    for _ in range(3):  # about half the 13 links are down by the third round, and outages never end
        observation, _, _, _, info = env.step(policy.act(observation, info))
        down = observation["success_probability"] == 0
        assert down.any() and not down.all()
        weights = policy.act(observation, info)[: env.num_links]  # attempts / budget per link (SchedulingInterface)
        attempts = np.rint(weights * env.config.budget)
        assert (attempts[down] == 0).all()
        assert attempts[~down].sum() > 0
