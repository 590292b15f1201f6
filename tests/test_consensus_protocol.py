"""Consensus protocols: registry, configuration, one round of CEAS and of the random-selection baseline."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from ceas_gym.config import ConfigError
from ceas_gym.consensus import CONSENSUS_PROTOCOLS, CEASConfig, CEASProtocol, ConsensusProtocol
from ceas_gym.consensus.bft import BFTConfig
from ceas_gym.consensus.pairs import PairProvider, ScriptedPairs, UnlimitedPairs
from ceas_gym.consensus.random_selection import RandomSelectionConfig, RandomSelectionProtocol
from ceas_gym.registry import UnknownNameError

DOUBLE = torch.float64
RING6 = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [0, 5]])


def probe_predict(params):
    probe = torch.linspace(-2.0, 2.0, 9, dtype=params.dtype)
    return torch.sigmoid(params[:, :1] * probe + params[:, 1:2])


def test_registry_holds_both_protocols_behind_one_interface():
    assert {"ceas", "random-selection"} <= set(CONSENSUS_PROTOCOLS.names())
    for name in CONSENSUS_PROTOCOLS.names():
        protocol = CONSENSUS_PROTOCOLS.get(name)(6, RING6, None)
        assert isinstance(protocol, ConsensusProtocol) and protocol.name == name
    with pytest.raises(UnknownNameError, match="random-selection"):
        CONSENSUS_PROTOCOLS.get("random-selecton")
    assert isinstance(UnlimitedPairs(), PairProvider) and isinstance(ScriptedPairs(np.ones(2, bool)), PairProvider)


def test_configs_load_strictly_from_mappings():
    protocol = CEASProtocol(6, RING6, {"mixing_steps": 2, "bft": {"checkpoint_every": 2}, "trust": {"alpha": 0.5}})
    assert protocol.config == CEASConfig(mixing_steps=2, bft=BFTConfig(checkpoint_every=2), trust=protocol.config.trust)
    with pytest.raises(ConfigError, match="pairs_per_exchange"):
        CEASProtocol(6, RING6, {"pairs_per_exchange": 0})
    with pytest.raises(ConfigError, match="unknown key 'mixing_step'"):
        CEASProtocol(6, RING6, {"mixing_step": 2})
    with pytest.raises(ConfigError, match="selection_fraction"):
        RandomSelectionProtocol(6, RING6, {"selection_fraction": 0.0})
    with pytest.raises(ConfigError, match="u < v"):
        CEASProtocol(6, np.array([[1, 0]]))


def test_ceas_round_with_unlimited_pairs_reaches_the_fidelity_weighted_mean_and_accounts_pairs():
    rng = np.random.default_rng(0)
    params = torch.as_tensor(rng.normal(size=(6, 2)))
    stamps = rng.uniform(0.3, 1.0, 6)
    protocol = CEASProtocol(6, RING6, {"pairs_per_exchange": 2})
    provider = UnlimitedPairs(0.9)
    result = protocol.run_round(params, stamps, probe_predict, provider, 0, rng)
    expected = stamps @ params.numpy() / stamps.sum()
    np.testing.assert_allclose(result.consensus_params.numpy(), expected, atol=1e-12)
    steps = 3  # ceil(log2 6)
    assert provider.calls == steps
    assert result.exchanges_attempted == result.exchanges_granted == steps * 6 and result.exchanges_skipped == 0
    assert result.pairs_consumed == steps * 6 * 2 == provider.pairs_served == result.pairs_per_edge.sum()
    np.testing.assert_allclose(result.received_fidelity, 0.9)
    assert not result.checkpoint and not result.committed


def test_expected_demand_matches_what_the_ceas_round_requests():
    protocol = CEASProtocol(6, RING6, {"pairs_per_exchange": 2, "bft": {"min_active": 1}})
    pairs, deadline = protocol.expected_demand(RING6, 0)
    np.testing.assert_array_equal(pairs, np.full(6, 3 * 2.0))
    np.testing.assert_array_equal(deadline, np.ones(6))
    protocol.monitor.active[2] = False  # node 2 quarantined: links (1, 2) and (2, 3) carry no demand
    pairs, _ = protocol.expected_demand(RING6, 5)
    np.testing.assert_array_equal(pairs, [6.0, 0.0, 0.0, 6.0, 6.0, 6.0])
    result = protocol.run_round(torch.zeros(6, 2, dtype=DOUBLE), np.ones(6), probe_predict, UnlimitedPairs(), 1)
    np.testing.assert_array_equal(result.pairs_per_edge, pairs)
    with pytest.raises(ConfigError, match="edges"):
        protocol.expected_demand(RING6[:3], 0)


def test_checkpoint_without_votes_is_not_committed_when_no_pairs_arrive():
    protocol = CEASProtocol(6, RING6, {"bft": {"checkpoint_every": 1}})
    starved = ScriptedPairs(np.zeros(6, bool))
    result = protocol.run_round(torch.zeros(6, 2, dtype=DOUBLE), np.ones(6), probe_predict, starved, 0)
    assert result.checkpoint and not result.committed
    assert result.exchanges_skipped == result.exchanges_attempted == 18 and result.pairs_consumed == 0
    assert math.isnan(result.mean_delivered_fidelity)
    assert protocol.monitor.checkpoints_failed == 1 and protocol.committed_params is None


def test_readmitted_node_keeps_its_parameters_since_no_pairs_carry_the_committed_model():
    protocol = CEASProtocol(3, np.array([[0, 1], [1, 2], [0, 2]]), {"bft": {"checkpoint_every": 1, "min_active": 3}})
    protocol.monitor.active[1] = False
    params = torch.tensor([[1.0, 0.0], [9.0, 9.0], [3.0, 0.0]], dtype=DOUBLE)
    result = protocol.run_round(params, np.ones(3), probe_predict, UnlimitedPairs(), 0)
    assert result.committed and result.readmitted[1]
    np.testing.assert_allclose(result.consensus_params.numpy(), [2.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(result.params[1].numpy(), [9.0, 9.0], atol=0)  # inactive in the gossip, not sent


def test_ceas_trust_falls_for_a_diverging_node():
    params = torch.tensor([[1.0, 0.0]] * 5 + [[-4.0, 2.0]], dtype=DOUBLE)
    protocol = CEASProtocol(6, RING6, {"trust": {"alpha": 0.5}, "bft": {"min_active": 1}})
    stamps = np.array([1.0] * 5 + [0.05])
    for round_index in range(2):
        result = protocol.run_round(params, stamps, probe_predict, UnlimitedPairs(), round_index)
    assert result.divergence[5] > 0.6 * (1 + 2 * 0.95) / 6 > 0.1 > result.divergence[:5].max()
    np.testing.assert_allclose(result.trust, [1.0] * 5 + [0.25])  # 1 -> 0.5 -> 0.25 with alpha 0.5


def test_predict_with_wrong_shape_is_rejected():
    protocol = CEASProtocol(6, RING6)
    with pytest.raises(ConfigError, match="predict"):
        protocol.run_round(torch.zeros(6, 2, dtype=DOUBLE), np.ones(6), lambda p: p[:, 0], UnlimitedPairs(), 0)
    with pytest.raises(ConfigError, match="params"):
        protocol.run_round(torch.zeros(5, 2, dtype=DOUBLE), np.ones(6), probe_predict, UnlimitedPairs(), 0)


def test_random_selection_expected_demand_matches_enumeration_of_draws():
    num_nodes, edges = 6, RING6
    protocol = RandomSelectionProtocol(num_nodes, edges, {"selection_fraction": 0.34, "pairs_per_exchange": 3})
    m = protocol.participants_per_round
    assert m == 2
    draws = list(itertools.combinations(range(num_nodes), m))
    touched = np.array([[u in draw or v in draw for u, v in edges] for draw in draws]).mean(axis=0)
    pairs, deadline = protocol.expected_demand(edges, 0)
    np.testing.assert_allclose(pairs, 3 * touched, atol=1e-15)
    np.testing.assert_array_equal(deadline, np.ones(6))


def test_random_selection_round_is_a_plain_mean_of_the_arrived_participants():
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 4]])  # path; node 4's only link is denied
    protocol = RandomSelectionProtocol(5, edges, {"selection_fraction": 1.0})
    params = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0], [6.0, 1.0], [100.0, 1.0]], dtype=DOUBLE)
    provider = ScriptedPairs(np.array([True, True, True, False]), fidelity=np.array([0.9, 0.8, 0.7, 0.6]))
    stamps = np.array([1.0, 0.1, 0.1, 0.1, 1.0])  # ignored by the baseline
    result = protocol.run_round(params, stamps, None, provider, 0, np.random.default_rng(1))
    np.testing.assert_array_equal(provider.requested[0], [0, 1, 2, 3])
    np.testing.assert_array_equal(result.participants, [True, True, True, True, False])
    np.testing.assert_allclose(result.consensus_params.numpy(), [3.0, 1.0])
    # the mean reaches the ends of granted exchanges only: node 4's one link was denied, so it keeps its model
    np.testing.assert_allclose(result.params.numpy(), [[3.0, 1.0]] * 4 + [[100.0, 1.0]])
    assert (result.exchanges_attempted, result.exchanges_granted, result.pairs_consumed) == (4, 3, 3)
    np.testing.assert_allclose(result.received_fidelity[:4], [0.9, 0.85, 0.75, 0.7])
    assert math.isnan(result.received_fidelity[4]) and result.committed and result.active.all()
    assert np.isnan(result.divergence).all()


def test_random_selection_without_pairs_changes_nothing():
    protocol = RandomSelectionProtocol(6, RING6)
    params = torch.as_tensor(np.random.default_rng(2).normal(size=(6, 2)))
    result = protocol.run_round(
        params, None, probe_predict, ScriptedPairs(np.zeros(6, bool)), 0, np.random.default_rng(0)
    )
    assert not result.committed and not result.participants.any() and result.pairs_consumed == 0
    np.testing.assert_array_equal(result.params.numpy(), params.numpy())
    np.testing.assert_allclose(result.consensus_params.numpy(), params.mean(dim=0).numpy())
    assert np.isfinite(result.divergence).all()


def test_random_selection_is_reproducible_from_the_seed_and_draws_m_nodes():
    params = torch.as_tensor(np.random.default_rng(3).normal(size=(6, 2)))
    runs = []
    for _ in range(2):
        protocol = RandomSelectionProtocol(6, RING6, RandomSelectionConfig(selection_fraction=0.5))
        rng = np.random.default_rng(42)
        runs.append([protocol.run_round(params, None, None, UnlimitedPairs(), t, rng) for t in range(5)])
    for first, second in zip(runs[0], runs[1], strict=True):
        np.testing.assert_array_equal(first.participants, second.participants)
        assert torch.equal(first.consensus_params, second.consensus_params)
        assert first.participants.sum() == 3
    assert len({tuple(np.flatnonzero(r.participants)) for r in runs[0]}) > 1
    with pytest.raises(ConfigError, match="rng"):
        RandomSelectionProtocol(6, RING6).run_round(params, None, None, UnlimitedPairs(), 0, None)


def test_ceas_rounds_are_reproducible_bit_for_bit():
    rng = np.random.default_rng(9)
    submissions = [torch.as_tensor(rng.normal(size=(6, 2))) for _ in range(8)]
    stamps = rng.uniform(0.3, 1.0, 6)
    grants = rng.random((30, 6)) < 0.7
    runs = []
    for _ in range(2):
        protocol = CEASProtocol(6, RING6, {"bft": {"min_active": 2}})
        provider = ScriptedPairs(grants, fidelity=0.9)
        runs.append([protocol.run_round(p, stamps, probe_predict, provider, t) for t, p in enumerate(submissions)])
    for first, second in zip(runs[0], runs[1], strict=True):
        assert torch.equal(first.params, second.params) and torch.equal(first.consensus_params, second.consensus_params)
        np.testing.assert_array_equal(first.divergence, second.divergence)
        np.testing.assert_array_equal(first.active, second.active)
        assert first.exchanges_skipped == first.exchanges_attempted - first.exchanges_granted


RING = np.array([[0, 1], [1, 2], [2, 3], [0, 3]])


@pytest.mark.parametrize("name", ["ceas", "random-selection", "qba"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"params": torch.zeros(3, 6)}, r"params: expected a tensor of shape \(4, P\), got torch.Size\(\[3, 6\]\)"),
        ({"params": torch.zeros(4, 6, dtype=torch.int64)}, "params: expected a floating-point tensor"),
        ({"round_index": -1}, "round_index"),
        ({"round_index": 1.5}, "round_index"),
    ],
)
def test_every_protocol_checks_a_rounds_inputs_the_same_way(name, change, message):
    protocol = CONSENSUS_PROTOCOLS.get(name)(4, RING, None if name != "qba" else {"committee_size": 3})
    inputs = {"params": torch.zeros(4, 6, dtype=torch.float64), "round_index": 0} | change
    with pytest.raises(ConfigError, match=message):
        protocol.run_round(
            inputs["params"],
            np.ones(4),
            probe_predict,
            UnlimitedPairs(),
            inputs["round_index"],
            np.random.default_rng(0),
        )


@pytest.mark.parametrize("name", ["random-selection", "qba"])
def test_protocols_that_draw_refuse_a_round_without_a_generator(name):
    protocol = CONSENSUS_PROTOCOLS.get(name)(4, RING, None if name != "qba" else {"committee_size": 3})
    with pytest.raises(ConfigError, match=r"rng: expected a numpy\.random\.Generator, got int"):
        protocol.run_round(torch.zeros(4, 6, dtype=torch.float64), np.ones(4), probe_predict, UnlimitedPairs(), 0, 7)


def test_the_deterministic_ceas_protocol_needs_no_generator():
    protocol = CEASProtocol(4, RING)
    result = protocol.run_round(
        torch.zeros(4, 6, dtype=torch.float64), np.ones(4), probe_predict, UnlimitedPairs(), 0, None
    )
    assert result.params.shape == (4, 6)
