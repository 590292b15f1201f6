"""The outcome is what the honest nodes hold: the metrics by hand, against separate evaluations, and batched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from batch_equality import assert_same_value

from agents.registry import make_policy
from ceas_gym.envs.batched_ceas import BatchedEntanglementSchedulingEnv
from ceas_gym.envs.ceas import EntanglementSchedulingEnv
from ceas_gym.envs.ceas_outputs import NODE_METRICS, node_metrics
from ceas_gym.learning.training import evaluate


def test_metrics_by_hand() -> None:
    accuracy = np.array([[0.9, 0.6, 0.1], [0.5, 0.5, 0.5]])
    loss = np.array([[0.2, 0.4, 0.9], [0.7, 0.7, 0.7]])
    params = np.array([[[0.0, 0.0], [3.0, 4.0], [1.5, 2.0]], [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]])
    weights = np.ones((2, 3))
    metrics = node_metrics(accuracy, loss, params, weights)
    np.testing.assert_allclose(metrics["accuracy"], [1.6 / 3, 0.5])
    np.testing.assert_allclose(metrics["loss"], [0.5, 0.7])
    np.testing.assert_allclose(metrics["accuracy_worst"], [0.1, 0.5])
    # centre (1.5, 2): distances 2.5, 2.5 and 0; the second copy's nodes agree
    np.testing.assert_allclose(metrics["consensus_distance"], [5.0 / 3, 0.0])
    weighted = node_metrics(accuracy, loss, params, np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))
    # centre at node 0: distances 0, 5 and 2.5
    np.testing.assert_allclose(weighted["consensus_distance"], [2.5, 0.0])


def test_the_env_reports_the_honest_nodes_own_models_as_separate_evaluations_find_them() -> None:
    env = EntanglementSchedulingEnv(preset="small", max_rounds=8)
    observation, info = env.reset(seed=3)
    assert info["consensus_distance"] == 0.0  # identical initial parameters on every node
    start = env.round
    subset = env.config.learning.node_test_samples
    first_honest = int(np.flatnonzero(~env.instance.byzantine)[0])
    features, labels = start.test_features[0, :subset], start.test_labels[0, :subset]
    at_start = evaluate(start.model, start.params[first_honest], features, labels)
    assert info["accuracy"] == info["accuracy_worst"] == float(at_start.accuracy[0])
    assert observation["accuracy"][0] == np.float32(info["accuracy"])
    policy = make_policy("eef", env)
    for _ in range(6):
        observation, _, _, _, info = env.step(policy.act(observation, info))
    state = env.round
    honest = ~env.instance.byzantine  # every honest node, quarantined or not
    rows = state.params[torch.as_tensor(np.flatnonzero(honest))]
    accuracy = [float(evaluate(state.model, row, features, labels).accuracy[0]) for row in rows]
    assert info["accuracy"] == pytest.approx(np.mean(accuracy), abs=1e-9)
    assert info["accuracy_worst"] == pytest.approx(min(accuracy), abs=1e-9)
    phi = state.stamps[0][honest]
    flat = rows.double().numpy()
    centre = (phi[:, None] * flat).sum(0) / phi.sum()
    assert info["consensus_distance"] == pytest.approx(np.linalg.norm(flat - centre, axis=1).mean(), rel=1e-6)
    assert info["consensus_distance"] > 0
    ideal = evaluate(state.model, state.ideal_aggregate[0], state.test_features[0], state.test_labels[0])
    assert info["accuracy_ideal_aggregate"] == pytest.approx(float(ideal.accuracy[0]), abs=1e-9)


@pytest.mark.parametrize("protocol", ["ceas", "random-selection", "qba"])
def test_idle_leaves_every_node_with_its_own_locally_trained_model(protocol: str) -> None:
    env = EntanglementSchedulingEnv(preset="small", max_rounds=5, protocol=protocol)
    observation, info = env.reset(seed=1)
    idle = make_policy("idle", env)
    state = env.round
    for _ in range(4):
        before = state.params.clone()
        observation, _, _, _, info = env.step(idle.act(observation, info))
        honest = torch.as_tensor(np.flatnonzero(~env.instance.byzantine))
        assert torch.equal(state.params[honest], state._trained[honest])  # the local step, nothing mixed in
        assert not torch.equal(state.params[honest], before[honest])
        assert info["consumed"] == 0
    assert info["consensus_distance"] > 0  # non-IID data: alone, the nodes drift apart


def test_batches_match_single_environments() -> None:
    settings = {"max_rounds": 5}
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
            for key in (*NODE_METRICS, "accuracy_ideal_aggregate"):
                assert_same_value(key, info[key], infos[key][copy], copy)
