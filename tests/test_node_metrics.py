"""The honest nodes' own models (``learning.evaluate_nodes``): the metrics by hand and against separate evaluations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from batch_equality import assert_same_value

from agents.registry import make_policy
from ceas_gym.envs.batched_ceas import BatchedEntanglementSchedulingEnv
from ceas_gym.envs.ceas import EntanglementSchedulingEnv
from ceas_gym.envs.ceas_outputs import NODE_METRICS, node_metrics
from ceas_gym.learning.training import evaluate


def test_metrics_by_hand_with_a_non_member_and_a_copy_without_members() -> None:
    accuracy = np.array([[0.9, 0.6, 0.1], [0.5, 0.5, 0.5]])
    params = np.array([[[0.0, 0.0], [3.0, 4.0], [100.0, 100.0]], [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]])
    weights = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    members = np.array([[True, True, False], [False, False, False]])  # node 2 of copy 0 is quarantined
    metrics = node_metrics(accuracy, params, weights, members)
    assert metrics["accuracy_honest_mean"][0] == pytest.approx(0.75)
    assert metrics["accuracy_honest_worst"][0] == pytest.approx(0.6)
    assert metrics["consensus_distance"][0] == pytest.approx(2.5)  # both at distance 2.5 from (1.5, 2)
    assert all(math.isnan(metrics[key][1]) for key in NODE_METRICS)
    weighted = node_metrics(accuracy, params, np.array([[3.0, 1.0, 1.0], [1.0, 1.0, 1.0]]), members)
    # centre (0.75, 1): distances 1.25 and 3.75
    assert weighted["consensus_distance"][0] == pytest.approx(2.5)
    assert node_metrics(accuracy, params, np.array([[1.0, 0.0, 1.0], [1.0] * 3]), members)[
        "consensus_distance"
    ][0] == pytest.approx(2.5)  # centre at node 0: distances 0 and 5


def test_the_env_reports_the_honest_nodes_own_models_as_separate_evaluations_find_them() -> None:
    env = EntanglementSchedulingEnv(preset="small", learning={"evaluate_nodes": True}, max_rounds=8)
    observation, info = env.reset(seed=3)
    assert info["consensus_distance"] == 0.0  # identical initial parameters on every node
    start = env.round
    first_honest = int(np.flatnonzero(~env.instance.byzantine)[0])
    at_start = evaluate(start.model, start.params[first_honest], start.test_features[0], start.test_labels[0])
    assert info["accuracy_honest_mean"] == info["accuracy_honest_worst"] == float(at_start.accuracy[0])
    policy = make_policy("eef", env)
    for _ in range(6):
        observation, _, _, _, info = env.step(policy.act(observation, info))
    state = env.round
    honest = ~env.instance.byzantine
    members = honest & env.active
    rows = state.params[torch.as_tensor(np.flatnonzero(members))]
    accuracy = [
        float(evaluate(state.model, row, state.test_features[0], state.test_labels[0]).accuracy[0]) for row in rows
    ]
    assert info["accuracy_honest_mean"] == pytest.approx(np.mean(accuracy), abs=1e-9)
    assert info["accuracy_honest_worst"] == pytest.approx(min(accuracy), abs=1e-9)
    phi = state.stamps[0][members]
    flat = rows.double().numpy()
    centre = (phi[:, None] * flat).sum(0) / phi.sum()
    distance = np.linalg.norm(flat - centre, axis=1).mean()
    assert info["consensus_distance"] == pytest.approx(distance, rel=1e-6)
    assert info["consensus_distance"] > 0


def test_the_keys_appear_only_when_asked_for_and_batches_match_single_environments() -> None:
    plain = EntanglementSchedulingEnv(preset="small")
    _, info = plain.reset(seed=0)
    assert not set(NODE_METRICS) & set(info)
    settings = {"learning": {"evaluate_nodes": True}, "max_rounds": 5}
    batched = BatchedEntanglementSchedulingEnv(2, preset="small", **settings)
    singles = [EntanglementSchedulingEnv(preset="small", **settings) for _ in range(2)]
    batched.reset(seed=[4, 5])
    for env, seed in zip(singles, (4, 5), strict=True):
        env.reset(seed=seed)
    actions = np.random.default_rng(0).random((3, 2, *batched.single_action_space.shape)).astype(np.float32)
    for step_actions in actions:
        _, _, _, _, infos = batched.step(step_actions)
        for copy, env in enumerate(singles):
            *_, info = env.step(step_actions[copy])
            for key in NODE_METRICS:
                assert_same_value(key, info[key], infos[key][copy], copy)
