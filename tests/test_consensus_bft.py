"""BFT checkpoints: KL divergence, fidelity-dependent threshold, quarantine, readmission, quorum; trust scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ceas_gym.config import ConfigError, from_dict
from ceas_gym.consensus.bft import (
    BatchedBFTMonitor,
    BFTConfig,
    BFTMonitor,
    bernoulli_kl,
    divergence_threshold,
    is_checkpoint_round,
    masked_quantile,
    quorum_size,
)
from ceas_gym.consensus.ceas_protocol import CEASProtocol
from ceas_gym.consensus.pairs import UnlimitedPairs
from ceas_gym.consensus.trust import TrustConfig, update_trust

DOUBLE = torch.float64


def test_bernoulli_kl_matches_hand_computation():
    consensus = torch.tensor([0.5, 0.9], dtype=DOUBLE)
    nodes = torch.tensor([[0.25, 0.9], [0.5, 0.9]], dtype=DOUBLE)
    first = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    np.testing.assert_allclose(bernoulli_kl(consensus, nodes).numpy(), [first / 2, 0.0], atol=1e-12)


def test_bernoulli_kl_clips_certain_predictions():
    consensus = torch.tensor([1.0], dtype=DOUBLE)
    nodes = torch.tensor([[0.0]], dtype=DOUBLE)
    eps = 1e-6
    expected = (1 - eps) * math.log((1 - eps) / eps) + eps * math.log(eps / (1 - eps))
    assert bernoulli_kl(consensus, nodes, clip=eps).item() == pytest.approx(expected, rel=1e-9)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3), st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3))
def test_bernoulli_kl_is_nonnegative_and_zero_on_equal(p, q):
    p_tensor = torch.tensor(p, dtype=DOUBLE)
    kl = bernoulli_kl(p_tensor, torch.tensor([q, p], dtype=DOUBLE))
    assert kl[0] >= 0.0
    assert kl[1] == pytest.approx(0.0, abs=1e-12)


def test_threshold_grows_as_fidelity_falls():
    np.testing.assert_allclose(divergence_threshold(np.array([1.0, 0.5, 0.0]), 0.6, 2.0), [0.6, 1.2, 1.8])


@pytest.mark.parametrize(("active", "quorum"), [(1, 1), (3, 1), (4, 3), (6, 3), (7, 5), (10, 7), (50, 33)])
def test_quorum_is_two_f_plus_one(active, quorum):
    assert quorum_size(active) == quorum


def test_checkpoint_every_fourth_round_zero_based():
    assert [t for t in range(13) if is_checkpoint_round(t, 4)] == [3, 7, 11]


def fill(monitor, per_round, rounds):
    for _ in range(rounds):
        monitor.record(np.asarray(per_round, dtype=float))


def test_noisy_honest_low_fidelity_node_is_not_quarantined_but_same_divergence_at_full_fidelity_is():
    # The fixed threshold form (relative scale off): Theta(F) = theta0 (1 + kappa (1 - F)).
    monitor = BFTMonitor(
        BFTConfig(threshold_base=0.6, threshold_slope=2.0, min_active=1, relative_factor=0.0), num_nodes=3
    )
    fill(monitor, [1.0 / 6, 1.0 / 6, 0.01], rounds=6)  # rolling sums 1.0, 1.0, 0.06 nats
    outcome = monitor.checkpoint(fidelity=np.array([0.5, 1.0, 1.0]))
    # Theta(0.5) = 0.6 * (1 + 2 * 0.5) = 1.2 > 1.0 > Theta(1) = 0.6.
    np.testing.assert_allclose(outcome.threshold, [1.2, 0.6, 0.6])
    assert outcome.committed
    np.testing.assert_array_equal(outcome.quarantined, [False, True, False])
    np.testing.assert_array_equal(monitor.active, [True, False, True])


def test_rolling_window_keeps_only_the_last_w_rounds():
    monitor = BFTMonitor(BFTConfig(rolling_window=3), num_nodes=1)
    for value in [5.0, 1.0, 2.0, 3.0]:
        monitor.record(np.array([value]))
    assert monitor.rolling_divergence()[0] == pytest.approx(6.0)


def test_partial_window_scales_threshold():
    monitor = BFTMonitor(
        BFTConfig(threshold_base=0.6, threshold_slope=0.0, rolling_window=6, relative_factor=0.0), num_nodes=1
    )
    fill(monitor, [0.1], rounds=2)
    assert monitor.threshold(np.array([1.0]))[0] == pytest.approx(0.6 * 2 / 6)


def test_readmission_at_min_active_takes_lowest_divergence_first():
    config = BFTConfig(threshold_base=0.6, threshold_slope=0.0, min_active=4)
    monitor = BFTMonitor(config, num_nodes=6)
    fill(monitor, np.array([0.01, 0.01, 0.01, 0.5, 0.3, 0.4]), rounds=6)  # nodes 3, 4, 5 exceed 0.6
    outcome = monitor.checkpoint(np.ones(6))
    # Nodes 3, 4, 5 (rolling 3.0, 1.8, 2.4) are flagged; 3 active < 4, so the lowest of them (node 4) stays.
    np.testing.assert_array_equal(monitor.active, [True, True, True, False, True, False])
    np.testing.assert_array_equal(outcome.quarantined, [False, False, False, True, False, True])
    assert not outcome.readmitted.any()
    # Later an honest node goes bad too: the quarantined node with the lowest divergence is readmitted.
    fill(monitor, np.array([0.01, 0.01, 2.0, 0.3, 0.01, 0.4]), rounds=6)
    outcome = monitor.checkpoint(np.ones(6))
    np.testing.assert_array_equal(monitor.active, [True, True, False, True, True, False])
    np.testing.assert_array_equal(outcome.readmitted, [False, False, False, True, False, False])
    np.testing.assert_array_equal(outcome.quarantined, [False, False, True, False, False, False])
    assert int(monitor.active.sum()) == 4


def test_readmission_when_fidelity_and_divergence_recover():
    config = BFTConfig(threshold_base=0.6, threshold_slope=1.0, min_active=1, readmit_fidelity=0.9)
    monitor = BFTMonitor(config, num_nodes=3)
    fill(monitor, [0.01, 0.01, 1.0], rounds=6)
    monitor.checkpoint(np.ones(3))
    np.testing.assert_array_equal(monitor.active, [True, True, False])
    fill(monitor, [0.01, 0.01, 0.02], rounds=6)  # recovered divergence 0.12 <= 0.5 * Theta
    low_fidelity = monitor.checkpoint(np.array([1.0, 1.0, 0.8]))
    assert not low_fidelity.readmitted.any()
    recovered = monitor.checkpoint(np.array([1.0, 1.0, 0.95]))
    np.testing.assert_array_equal(recovered.readmitted, [False, False, True])
    assert monitor.active.all()


def test_checkpoint_without_quorum_is_not_committed_and_counted():
    monitor = BFTMonitor(BFTConfig(min_active=1), num_nodes=7)
    fill(monitor, [0.0] * 6 + [5.0], rounds=6)
    votes = np.array([True, True, True, True, False, False, False])  # 4 of 7 < 2 * 2 + 1
    outcome = monitor.checkpoint(np.ones(7), votes=votes)
    assert not outcome.committed and (outcome.votes, outcome.quorum) == (4, 5)
    assert monitor.active.all() and not outcome.quarantined.any()
    assert (monitor.checkpoints_failed, monitor.checkpoints_committed) == (1, 0)
    votes[4] = True
    assert monitor.checkpoint(np.ones(7), votes=votes).committed
    assert not monitor.active[6] and monitor.checkpoints_committed == 1


def test_low_trust_quarantines_when_enabled():
    monitor = BFTMonitor(BFTConfig(trust_min=0.5, min_active=1), num_nodes=3)
    fill(monitor, [0.0, 0.0, 0.0], rounds=6)
    outcome = monitor.checkpoint(np.ones(3), trust=np.array([1.0, 0.4, 0.6]))
    np.testing.assert_array_equal(outcome.quarantined, [False, True, False])


def predict_logistic(probe):
    def predict(params):
        return torch.sigmoid(params @ probe.T)

    return predict


def test_planted_attacker_is_isolated_in_five_node_network():
    generator = torch.Generator().manual_seed(7)
    probe = torch.randn(40, 3, generator=generator, dtype=DOUBLE)
    truth = torch.tensor([1.5, -2.0, 0.7], dtype=DOUBLE)
    honest = truth + 0.05 * torch.randn(5, 3, generator=generator, dtype=DOUBLE)
    submitted = honest.clone()
    submitted[2] = -1.05 * truth  # weight-reversal attacker
    edges = np.array([[u, v] for u in range(5) for v in range(u + 1, 5)])
    protocol = CEASProtocol(5, edges, {"bft": {"min_active": 1}})
    stamps = np.full(5, 0.95)
    predict = predict_logistic(probe)
    for round_index in range(4):
        result = protocol.run_round(submitted, stamps, predict, UnlimitedPairs(0.95), round_index)
        assert result.checkpoint == (round_index == 3)
    assert result.committed
    np.testing.assert_array_equal(result.quarantined, [False, False, True, False, False])
    np.testing.assert_array_equal(protocol.active, [True, True, False, True, True])
    assert result.divergence[2] > 10 * result.divergence[[0, 1, 3, 4]].max()
    # From now on the attacker's update no longer enters the consensus.
    result = protocol.run_round(submitted, stamps, predict, UnlimitedPairs(0.95), 4)
    honest_mean = submitted[[0, 1, 3, 4]].mean(dim=0)
    np.testing.assert_allclose(result.consensus_params.numpy(), honest_mean.numpy(), atol=1e-12)
    np.testing.assert_array_equal(result.params[2].numpy(), submitted[2].numpy())


def test_noisy_honest_node_with_low_stamp_is_not_quarantined_by_protocol():
    generator = torch.Generator().manual_seed(11)
    probe = torch.randn(40, 3, generator=generator, dtype=DOUBLE)
    truth = torch.tensor([1.5, -2.0, 0.7], dtype=DOUBLE)
    submitted = truth + 0.02 * torch.randn(5, 3, generator=generator, dtype=DOUBLE)
    submitted[4] = truth + torch.tensor([0.6, -0.6, 0.6], dtype=DOUBLE)  # noisy hardware, honest direction
    edges = np.array([[u, v] for u in range(5) for v in range(u + 1, 5)])
    stamps = np.array([1.0, 1.0, 1.0, 1.0, 0.4])
    config = {"bft": {"min_active": 1, "threshold_base": 0.05, "threshold_slope": 2.0}}
    noisy = CEASProtocol(5, edges, config)
    for round_index in range(4):
        result = noisy.run_round(submitted, stamps, predict_logistic(probe), UnlimitedPairs(), round_index)
    rolling = noisy.monitor.rolling_divergence()[4]
    # Above the threshold at full fidelity, below Theta(0.4) = 0.05 * (1 + 2 * 0.6) (both scaled by 4 / 6 rounds).
    assert 0.05 * 4 / 6 < rolling < 0.05 * (1 + 2.0 * 0.6) * 4 / 6
    assert result.committed and noisy.active.all()
    # The same node claiming full fidelity would be quarantined.
    confident = CEASProtocol(5, edges, config)
    for round_index in range(4):
        result = confident.run_round(submitted, np.ones(5), predict_logistic(probe), UnlimitedPairs(), round_index)
    assert result.quarantined[4] and result.quarantined.sum() == 1


def test_trust_update_matches_closed_form_over_rounds():
    alpha = 0.7
    outcomes = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 0], [1, 1, 0]], dtype=float)
    tau0 = np.array([1.0, 0.5, 0.2])
    tau = tau0.copy()
    for v in outcomes:
        tau = update_trust(tau, v, alpha)
    rounds = len(outcomes)
    closed = alpha**rounds * tau0 + (1 - alpha) * sum(alpha ** (rounds - 1 - t) * outcomes[t] for t in range(rounds))
    np.testing.assert_allclose(tau, closed, atol=1e-15)
    # By hand for node 1: 0.5 -> 0.35 -> 0.245 -> 0.1715 -> 0.42005.
    assert tau[1] == pytest.approx(0.42005)


def test_trust_keeps_unobserved_nodes():
    tau = update_trust(np.array([0.5, 0.5]), np.array([1.0, 1.0]), 0.5, observed=np.array([True, False]))
    np.testing.assert_allclose(tau, [0.75, 0.5])


@pytest.mark.parametrize(
    ("config_class", "values", "field"),
    [
        (BFTConfig, {"checkpoint_every": 0}, "BFTConfig.checkpoint_every"),
        (BFTConfig, {"threshold_base": 0.0}, "BFTConfig.threshold_base"),
        (BFTConfig, {"readmit_fraction": 1.5}, "BFTConfig.readmit_fraction"),
        (BFTConfig, {"probability_clip": 0.5}, "BFTConfig.probability_clip"),
        (BFTConfig, {"min_active": 0}, "BFTConfig.min_active"),
        (TrustConfig, {"alpha": 1.0}, "TrustConfig.alpha"),
        (BFTConfig, {"min_activ": 3}, "min_active"),
    ],
)
def test_bad_config_names_the_field(config_class, values, field):
    with pytest.raises(ConfigError, match=field):
        from_dict(config_class, values)


def test_bad_trust_input_is_rejected():
    with pytest.raises(ConfigError, match="verified"):
        update_trust(np.ones(3), np.ones(2), 0.5)
    with pytest.raises(ConfigError, match="alpha"):
        update_trust(np.ones(3), np.ones(3), 1.0)


def test_paper_like_fifty_node_network_isolates_every_attacker_and_no_honest_node():
    """N = 50, 40 % Byzantine (reversal, scaling, Gaussian attacks in turn), honest stamps ~0.9, Byzantine ~0.5."""
    import networkx as nx

    num_nodes, dim = 50, 8
    generator = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    graph = nx.random_regular_graph(4, num_nodes, seed=1)
    edges = np.array(sorted((min(u, v), max(u, v)) for u, v in graph.edges()))
    probe = torch.randn(200, dim, generator=generator, dtype=DOUBLE)
    truth = torch.randn(dim, generator=generator, dtype=DOUBLE)
    byzantine = np.zeros(num_nodes, bool)
    byzantine[rng.choice(num_nodes, 20, replace=False)] = True
    stamps = np.where(byzantine, rng.uniform(0.4, 0.6, num_nodes), rng.uniform(0.85, 0.95, num_nodes))
    protocol = CEASProtocol(num_nodes, edges)
    mask = torch.as_tensor(byzantine)
    for round_index in range(8):
        honest = truth + 0.1 * torch.randn(num_nodes, dim, generator=generator, dtype=DOUBLE)
        submitted = honest.clone()
        if round_index % 3 == 0:
            submitted[mask] = -1.05 * honest[mask]
        elif round_index % 3 == 1:
            submitted[mask] = 1.6 * honest[mask]
        else:
            noise = torch.randn(20, dim, generator=generator, dtype=DOUBLE)
            submitted[mask] = honest[mask] + 0.6 * truth.std() * noise
        result = protocol.run_round(submitted, stamps, predict_logistic(probe), UnlimitedPairs(0.95), round_index)
        if result.checkpoint:
            assert result.committed
            np.testing.assert_array_equal(protocol.active, ~byzantine)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(1, 15),
    st.integers(0, 2**31 - 1),
)
def test_committed_checkpoints_keep_min_active_and_report_consistent_changes(num_nodes, min_active, seed):
    rng = np.random.default_rng(seed)
    monitor = BFTMonitor(BFTConfig(min_active=min_active, threshold_base=0.3), num_nodes)
    for _ in range(4):
        fill(monitor, rng.exponential(0.1, num_nodes), rounds=int(rng.integers(1, 7)))
        before = monitor.active.copy()
        outcome = monitor.checkpoint(rng.uniform(0.5, 1.0, num_nodes))
        assert outcome.committed  # every active node votes by default
        assert monitor.active.sum() >= min(min_active, num_nodes)
        np.testing.assert_array_equal(outcome.quarantined, before & ~monitor.active)
        np.testing.assert_array_equal(outcome.readmitted, ~before & monitor.active)
        flagged = before & (outcome.rolling_divergence > outcome.threshold)
        assert not (outcome.quarantined & ~flagged).any()  # only nodes over their threshold are quarantined


def test_threshold_scale_follows_a_low_quantile_of_active_divergences():
    """Scale = max(theta0 w/W, c Q_q(R_active)); quarantined nodes and a Byzantine minority do not raise it."""
    config = BFTConfig(threshold_base=0.1, threshold_slope=1.0, rolling_window=2, relative_factor=4.0,
                       relative_quantile=0.25, min_active=1)  # fmt: skip
    monitor = BFTMonitor(config, num_nodes=5)
    monitor.record(np.array([0.2, 0.3, 0.4, 0.5, 9.0]))
    monitor.record(np.array([0.2, 0.3, 0.4, 0.5, 9.0]))
    rolling = np.array([0.4, 0.6, 0.8, 1.0, 18.0])
    np.testing.assert_allclose(monitor.rolling_divergence(), rolling)
    # Q_0.25 of the five active rolling sums (numpy's linear interpolation): 0.6; 4 x 0.6 = 2.4 > theta0 = 0.1.
    fidelity = np.array([1.0, 1.0, 1.0, 0.5, 1.0])
    np.testing.assert_allclose(monitor.threshold(fidelity), 2.4 * (1.0 + (1.0 - fidelity)))
    outcome = monitor.checkpoint(fidelity)
    assert outcome.quarantined.tolist() == [False, False, False, False, True]
    # With node 4 quarantined the quantile is over the four active nodes: Q_0.25 of (0.4, 0.6, 0.8, 1.0) = 0.55.
    np.testing.assert_allclose(monitor.threshold(np.ones(5)), 4.0 * 0.55)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 9), st.integers(1, 12), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]),
       st.integers(0, 2**31 - 1))  # fmt: skip
def test_masked_quantile_equals_numpy_quantile_bit_for_bit(rows, width, quantile, seed):
    rng = np.random.default_rng(seed)
    values = rng.exponential(1.0, (rows, width)) * rng.integers(0, 3, (rows, width))  # ties and zeros included
    mask = rng.random((rows, width)) < 0.7
    result = masked_quantile(values, mask, quantile)
    for row in range(rows):
        if mask[row].any():
            assert result[row] == np.quantile(values[row][mask[row]], quantile)  # exact, not approximate
        else:
            assert np.isnan(result[row])


def reference_checkpoint(config, active, rolling, threshold, fidelity, voters, trust):
    """The per-network checkpoint rule written out with Python loops (the module docstring, step by step)."""
    n = active.size
    active_count = int(active.sum())
    quorum = 2 * max(0, (active_count - 1) // 3) + 1
    if sum(1 for k in range(n) if voters[k] and active[k]) < quorum:
        return False, active.copy()
    new_active = active.copy()
    for k in range(n):
        trusted = trust[k] >= config.trust_min
        if active[k] and (rolling[k] > threshold[k] or not trusted):
            new_active[k] = False
        if (not active[k] and fidelity[k] >= config.readmit_fidelity
                and rolling[k] <= config.readmit_fraction * threshold[k] and trusted):  # fmt: skip
            new_active[k] = True
    while new_active.sum() < min(config.min_active, n):
        candidates = [k for k in range(n) if not new_active[k]]
        new_active[min(candidates, key=lambda k: (rolling[k], k))] = True
    return True, new_active


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 10), st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_batched_monitor_matches_the_per_network_rule_in_every_network(networks, num_nodes, min_active, seed):
    rng = np.random.default_rng(seed)
    config = BFTConfig(min_active=min_active, threshold_base=0.3, rolling_window=3, trust_min=0.3)
    batch = BatchedBFTMonitor(config, num_nodes, networks)
    singles = [BFTMonitor(config, num_nodes) for _ in range(networks)]
    for _ in range(6):
        divergence = rng.exponential(0.1, (networks, num_nodes)) * rng.integers(1, 20, (networks, 1))
        batch.record(divergence)
        for single, row in zip(singles, divergence, strict=True):
            single.record(row)
        fidelity = rng.uniform(0.5, 1.0, (networks, num_nodes))
        voters = rng.random((networks, num_nodes)) < 0.8
        trust = rng.uniform(0.0, 1.0, (networks, num_nodes))
        due = rng.random(networks) < 0.7
        before = batch.active.copy()
        rolling, threshold = batch.rolling_divergence(), batch.threshold(fidelity)
        outcome = batch.checkpoint(fidelity, votes=voters, trust=trust, networks=due)
        for index, single in enumerate(singles):
            np.testing.assert_array_equal(single.threshold(fidelity[index]), threshold[index])
            if not due[index]:
                np.testing.assert_array_equal(batch.active[index], before[index])
                continue
            committed, expected = reference_checkpoint(config, before[index], rolling[index], threshold[index],
                                                       fidelity[index], voters[index], trust[index])  # fmt: skip
            assert outcome.committed[index] == committed
            np.testing.assert_array_equal(batch.active[index], expected)
            single_outcome = single.checkpoint(fidelity[index], votes=voters[index], trust=trust[index])
            assert single_outcome.committed == committed
            np.testing.assert_array_equal(single.active, expected)
        assert not (outcome.committed & ~due).any()
    np.testing.assert_array_equal(batch.checkpoints_committed + batch.checkpoints_failed,
                                  [s.checkpoints_committed + s.checkpoints_failed for s in singles])  # fmt: skip
