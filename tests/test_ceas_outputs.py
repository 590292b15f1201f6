"""The CEAS round's info and reward, computed once for E copies: hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from ceas_gym.envs.ceas_config import CEASRewardConfig
from ceas_gym.envs.ceas_outputs import INFO_METRICS, NODE_METRICS, RoundStats, info_row, round_infos, round_reward

NODE_VALUES = {"accuracy": 0.5, "loss": float(np.log(2.0)), "accuracy_worst": 0.5, "consensus_distance": 0.0}


def two_copies() -> dict[str, np.ndarray]:
    stats = RoundStats(
        attempts=np.array([10, 0]),
        generated=np.array([6, 0]),
        expired=np.array([2, 1]),
        overflow=np.array([1, 0]),
        attempted=np.array([8, 0]),
        granted=np.array([6, 0]),
        consumed=np.array([4, 0]),
        mean_delivered_fidelity=np.array([0.9, np.nan]),
        checkpoint=np.array([True, False]),
        committed=np.array([True, False]),
    )
    active = np.array([[True, False, True, False], [True, True, True, True]])
    return round_infos(
        stats,
        round_index=np.array([3, 0]),
        node={
            "accuracy": np.array([0.75, 0.5]),
            "loss": np.array([0.4, 0.69]),
            "accuracy_worst": np.array([0.6, 0.5]),
            "consensus_distance": np.array([0.3, 0.0]),
        },
        ideal_accuracy=np.array([0.8, 0.5]),
        generated_total=np.array([20, 0]),
        consumed_total=np.array([15, 0]),
        active=active,
        byzantine=np.array([False, True, False, True]),
    )


def test_infos_match_hand_computed_values_per_copy() -> None:
    infos = two_copies()
    first, second = info_row(infos, 0), info_row(infos, 1)
    assert first["utilisation"] == 15 / 20 and second["utilisation"] == 0.0  # nothing generated yet: 0, not NaN
    assert first["isolation_rate"] == 1.0 and second["isolation_rate"] == 0.0  # both Byzantine nodes quarantined
    assert first["false_quarantine_rate"] == 0.0 and first["active_nodes"] == 2 and second["active_nodes"] == 4
    assert first["exchanges_granted_fraction"] == 6 / 8 and second["exchanges_granted_fraction"] == 0.0
    assert first["requests_missed"] == 2 and first["wasted"] == 3 and second["wasted"] == 1
    assert first["mean_delivered_fidelity"] == 0.9 and second["mean_delivered_fidelity"] == 0.0  # NaN -> 0
    assert first["round"] == 3 and first["checkpoint"] is True and second["committed"] is False
    assert {type(value) for value in first.values()} <= {int, float, bool}
    assert first["accuracy"] == 0.75 and first["accuracy_worst"] == 0.6 and first["accuracy_ideal_aggregate"] == 0.8
    assert first["consensus_distance"] == 0.3 and second["loss"] == 0.69
    assert set(NODE_METRICS) <= set(INFO_METRICS) <= set(first)


def test_default_reward_is_learning_only() -> None:
    infos = two_copies()
    reward = round_reward(CEASRewardConfig(), infos["accuracy"], np.array([0.7, 0.6]), infos, budget=40)
    # level + gain of the honest nodes' accuracy; exchanges, waste and attempts weigh 0 by default
    np.testing.assert_allclose(reward, [0.75 + 0.05, 0.5 - 0.1], rtol=0, atol=1e-15)


def test_reward_is_the_documented_formula() -> None:
    infos = two_copies()
    weights = CEASRewardConfig(accuracy=1.0, accuracy_gain=2.0, exchanges=0.5, wasted=0.1, attempt=0.2)
    reward = round_reward(weights, infos["accuracy"], np.array([0.7, 0.5]), infos, budget=40)
    expected_first = 1.0 * 0.75 + 2.0 * (0.75 - 0.7) + 0.5 * 0.75 - 0.1 * 3 - 0.2 * 10 / 40
    expected_second = 1.0 * 0.5 + 0.0 + 0.0 - 0.1 * 1 - 0.0
    np.testing.assert_allclose(reward, [expected_first, expected_second], rtol=0, atol=1e-15)
    assert reward.dtype == np.float64


def test_an_empty_round_reports_zeros() -> None:
    stats = RoundStats.empty(3)
    assert stats.attempts.shape == (3,) and not stats.checkpoint.any()
    infos = round_infos(
        stats,
        round_index=np.zeros(3, dtype=np.int64),
        node={key: np.full(3, value) for key, value in NODE_VALUES.items()},
        ideal_accuracy=np.full(3, 0.5),
        generated_total=np.zeros(3, dtype=np.int64),
        consumed_total=np.zeros(3, dtype=np.int64),
        active=np.ones((3, 5), dtype=bool),
        byzantine=np.zeros(5, dtype=bool),
    )
    row = info_row(infos, 2)
    assert row["isolation_rate"] == 0.0 and row["exchanges_granted_fraction"] == 0.0 and row["wasted"] == 0
    assert row["loss"] == pytest.approx(np.log(2.0))
