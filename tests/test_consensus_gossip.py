"""Fidelity-weighted gossip: the mixing matrix, convergence, pair gating, conservation, quarantine."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ceas_gym.config import ConfigError
from ceas_gym.consensus.gossip import default_mixing_steps, gossip_round, mixing_step
from ceas_gym.consensus.pairs import InventoryPairs, ScriptedPairs, UnlimitedPairs
from ceas_gym.network.inventory import PairInventory

DOUBLE = torch.float64


def dense_reference_matrix(num_nodes, edges, stamps, granted):
    """W built entry by entry from the definition, with plain loops (independent of the code under test)."""
    degree = [0] * num_nodes
    for (u, v), ok in zip(edges, granted, strict=True):
        if ok:
            degree[u] += 1
            degree[v] += 1
    w = np.zeros((num_nodes, num_nodes))
    for (u, v), ok in zip(edges, granted, strict=True):
        if ok:
            scale = 1.0 / (1 + max(degree[u], degree[v]))
            w[u, v] = stamps[v] * scale
            w[v, u] = stamps[u] * scale
    for i in range(num_nodes):
        w[i, i] = 1.0 - w[i].sum()
    return w


def matrix_of_code(num_nodes, edges, stamps, granted):
    """The code's W: one mixing step applied to the identity returns W itself (row i = sum_j W_ij e_j)."""
    granted_edges = np.asarray(edges)[np.asarray(granted, dtype=bool)].reshape(-1, 2)
    return mixing_step(torch.eye(num_nodes, dtype=DOUBLE), granted_edges, torch.as_tensor(stamps)).numpy()


def connected_graph(num_nodes, p, seed):
    graph = nx.connected_watts_strogatz_graph(num_nodes, 4, p, seed=seed)
    return np.array(sorted((min(u, v), max(u, v)) for u, v in graph.edges()), dtype=np.int64)


def pi_norm(x, pi):
    return math.sqrt(float((pi[:, None] * x**2).sum()))


@st.composite
def graph_cases(draw):
    num_nodes = draw(st.integers(2, 9))
    pairs = [(u, v) for u in range(num_nodes) for v in range(u + 1, num_nodes)]
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=len(pairs), unique=True))
    edges = np.array(sorted(chosen), dtype=np.int64)
    stamps = np.array(draw(st.lists(st.floats(0.05, 1.0), min_size=num_nodes, max_size=num_nodes)))
    granted = np.array(draw(st.lists(st.booleans(), min_size=len(edges), max_size=len(edges))))
    return num_nodes, edges, stamps, granted


@settings(max_examples=60, deadline=None)
@given(graph_cases())
def test_mixing_matrix_is_row_stochastic_reversible_with_pi_proportional_to_phi(case):
    num_nodes, edges, stamps, granted = case
    w = matrix_of_code(num_nodes, edges, stamps, granted)
    np.testing.assert_allclose(w, dense_reference_matrix(num_nodes, edges, stamps, granted), atol=1e-14)
    assert np.all(w >= -1e-15)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-13)
    pi = stamps / stamps.sum()
    np.testing.assert_allclose(pi @ w, pi, atol=1e-13)  # stationary
    flow = pi[:, None] * w
    np.testing.assert_allclose(flow, flow.T, atol=1e-13)  # detailed balance phi_i W_ij = phi_j W_ji


def test_two_node_step_by_hand():
    # phi = (1, 0.5), one link, degrees 1: W01 = 0.5 / 2 = 0.25, W10 = 1 / 2 = 0.5.
    params = torch.tensor([[0.0], [1.0]], dtype=DOUBLE)
    result = gossip_round(
        np.array([[0, 1]]), params, np.array([1.0, 0.5]), np.ones(2, bool), UnlimitedPairs(), mixing_steps=1
    )
    np.testing.assert_allclose(result.params.numpy().ravel(), [0.25, 0.5])
    # The phi-weighted mean 1/3 is preserved: (1 * 0.25 + 0.5 * 0.5) / 1.5.
    assert (1.0 * 0.25 + 0.5 * 0.5) / 1.5 == pytest.approx(1 / 3)


def test_converges_to_fidelity_weighted_mean_with_unlimited_pairs():
    rng = np.random.default_rng(0)
    num_nodes = 12
    edges = connected_graph(num_nodes, 0.3, seed=1)
    stamps = rng.uniform(0.1, 1.0, num_nodes)
    params = torch.as_tensor(rng.normal(size=(num_nodes, 5)))
    target = (stamps[:, None] * params.numpy()).sum(axis=0) / stamps.sum()
    result = gossip_round(edges, params, stamps, np.ones(num_nodes, bool), UnlimitedPairs(), mixing_steps=400)
    np.testing.assert_allclose(result.params.numpy(), np.broadcast_to(target, (num_nodes, 5)), atol=1e-9)


def test_error_bounded_by_spectral_gap_in_pi_norm():
    rng = np.random.default_rng(3)
    num_nodes = 10
    edges = connected_graph(num_nodes, 0.5, seed=4)
    stamps = rng.uniform(0.2, 1.0, num_nodes)
    pi = stamps / stamps.sum()
    w = dense_reference_matrix(num_nodes, edges, stamps, np.ones(len(edges), bool))
    # Reversible W is similar to the symmetric D^1/2 W D^-1/2 (D = diag(pi)): real spectrum.
    sqrt_pi = np.sqrt(pi)
    eigenvalues = np.sort(np.abs(np.linalg.eigvalsh(sqrt_pi[:, None] * w / sqrt_pi[None, :])))
    lambda_star = eigenvalues[-2]
    assert lambda_star < 1.0
    params = torch.as_tensor(rng.normal(size=(num_nodes, 3)))
    mean = pi @ params.numpy()
    e0 = pi_norm(params.numpy() - mean, pi)
    for steps in range(1, 15):
        result = gossip_round(edges, params, stamps, np.ones(num_nodes, bool), UnlimitedPairs(), mixing_steps=steps)
        assert pi_norm(result.params.numpy() - mean, pi) <= lambda_star**steps * e0 + 1e-12


def test_skipped_exchange_is_counted_and_leaves_its_nodes_untouched():
    # Path 0-1-2 plus a separate link 3-4 whose pairs are never granted.
    edges = np.array([[0, 1], [1, 2], [3, 4]])
    granted = np.array([True, True, False])
    provider = ScriptedPairs(granted, fidelity=0.9)
    params = torch.arange(10.0, dtype=DOUBLE).reshape(5, 2)
    stamps = np.array([1.0, 0.8, 0.6, 0.9, 0.7])
    result = gossip_round(edges, params, stamps, np.ones(5, bool), provider, mixing_steps=3, pairs_per_exchange=2)
    np.testing.assert_array_equal(result.attempted_per_step, [3, 3, 3])
    np.testing.assert_array_equal(result.granted_per_step, [2, 2, 2])
    np.testing.assert_array_equal(result.skipped_per_step, [1, 1, 1])
    assert (result.attempted, result.granted, result.skipped) == (9, 6, 3)
    np.testing.assert_array_equal(result.granted_per_edge, [3, 3, 0])
    assert result.pairs_consumed == 6 * 2 == provider.pairs_served
    np.testing.assert_array_equal(result.params[3:].numpy(), params[3:].numpy())
    # The rest mixes exactly as on the graph without the skipped link.
    alone = gossip_round(edges[:2], params, stamps, np.ones(5, bool), UnlimitedPairs(0.9), mixing_steps=3)
    np.testing.assert_allclose(result.params.numpy(), alone.params.numpy(), atol=0)


def test_denied_link_drops_out_of_the_step_and_degrees_are_over_granted_links():
    # Triangle where link (0, 2) is denied in the only step: W is the path 0-1-2's Metropolis matrix.
    edges = np.array([[0, 1], [0, 2], [1, 2]])
    stamps = np.array([1.0, 1.0, 1.0])
    params = torch.tensor([[3.0], [0.0], [6.0]], dtype=DOUBLE)
    result = gossip_round(
        edges, params, stamps, np.ones(3, bool), ScriptedPairs(np.array([True, False, True])), mixing_steps=1
    )
    # Degrees (1, 2, 1): W01 = W12 = 1/3, W00 = W22 = 2/3, W11 = 1/3.
    expected = [2 / 3 * 3 + 1 / 3 * 0, 1 / 3 * 3 + 1 / 3 * 0 + 1 / 3 * 6, 1 / 3 * 0 + 2 / 3 * 6]
    np.testing.assert_allclose(result.params.numpy().ravel(), expected, atol=1e-14)


@settings(max_examples=40, deadline=None)
@given(graph_cases(), st.integers(0, 2**31 - 1))
def test_phi_weighted_mass_is_invariant_without_perturbation(case, seed):
    num_nodes, edges, stamps, _ = case
    rng = np.random.default_rng(seed)
    grants = rng.random((4, len(edges))) < 0.6
    params = torch.as_tensor(rng.normal(size=(num_nodes, 3)))
    result = gossip_round(edges, params, stamps, np.ones(num_nodes, bool), ScriptedPairs(grants), mixing_steps=4)
    before = stamps @ params.numpy()
    after = stamps @ result.params.numpy()
    np.testing.assert_allclose(after, before, atol=1e-12)


def test_inactive_nodes_neither_send_nor_receive():
    num_nodes = 6
    edges = np.array([[0, 1], [0, 2], [1, 2], [2, 3], [3, 4], [4, 5], [0, 5]])
    active = np.array([True, True, True, False, True, True])
    stamps = np.array([0.9, 0.8, 1.0, 0.7, 0.6, 0.95])
    params = torch.as_tensor(np.random.default_rng(5).normal(size=(num_nodes, 2)))
    provider = ScriptedPairs(np.ones(len(edges), bool))
    result = gossip_round(edges, params, stamps, active, provider, mixing_steps=3)
    touches_3 = (edges == 3).any(axis=1)
    for requested in provider.requested:
        assert not touches_3[requested].any()
    np.testing.assert_array_equal(result.params[3].numpy(), params[3].numpy())
    assert result.messages_received[3] == 0 and math.isnan(result.received_fidelity[3])
    # The other nodes mix as if node 3's links did not exist, whatever node 3 holds.
    changed = params.clone()
    changed[3] = 1e6
    without = gossip_round(
        edges[~touches_3], changed, stamps, np.ones(num_nodes, bool), UnlimitedPairs(), mixing_steps=3
    )
    np.testing.assert_allclose(result.params[active].numpy(), without.params[active].numpy(), atol=0)


def test_received_fidelity_pairs_and_mean_delivered_fidelity_by_hand():
    edges = np.array([[0, 1], [1, 2], [2, 3]])
    fidelity = np.array([0.9, 0.7, 0.8])
    granted = np.array([True, True, False])
    params = torch.zeros(4, 1, dtype=DOUBLE)
    result = gossip_round(
        edges,
        params,
        np.ones(4),
        np.ones(4, bool),
        ScriptedPairs(granted, fidelity),
        mixing_steps=2,
        pairs_per_exchange=3,
    )
    # Node 1 received 2 messages on (0,1) at 0.9 and 2 on (1,2) at 0.7.
    np.testing.assert_allclose(result.received_fidelity[:3], [0.9, 0.8, 0.7])
    assert math.isnan(result.received_fidelity[3])
    np.testing.assert_array_equal(result.messages_received, [2, 4, 2, 0])
    assert result.mean_delivered_fidelity == pytest.approx(0.8)
    assert result.pairs_consumed == 4 * 3


def test_perturb_hook_sees_every_message_with_its_fidelity():
    seen = {}

    def shift(messages, fidelity):
        seen["shape"] = tuple(messages.shape)
        seen["fidelity"] = fidelity.clone()
        return messages + 10.0

    params = torch.tensor([[0.0], [1.0]], dtype=DOUBLE)
    provider = ScriptedPairs(np.array([True]), fidelity=0.85)
    result = gossip_round(
        np.array([[0, 1]]), params, np.array([1.0, 0.5]), np.ones(2, bool), provider, mixing_steps=1, perturb=shift
    )
    assert seen["shape"] == (2, 1)
    np.testing.assert_allclose(seen["fidelity"].numpy(), [0.85, 0.85])
    # theta_i + W_ij (m_ji - theta_i) with W01 = 0.25, W10 = 0.5 and messages shifted by 10.
    np.testing.assert_allclose(result.params.numpy().ravel(), [0.25 * 11.0, 1.0 + 0.5 * (10.0 - 1.0)])


@pytest.mark.parametrize(("num_nodes", "steps"), [(1, 1), (2, 1), (3, 2), (8, 3), (50, 6), (64, 6), (65, 7)])
def test_default_mixing_steps_is_ceil_log2(num_nodes, steps):
    assert default_mixing_steps(num_nodes) == steps


def test_default_round_uses_log2_steps():
    provider = UnlimitedPairs()
    edges = np.array([[i, i + 1] for i in range(9)])
    gossip_round(edges, torch.zeros(10, 1, dtype=DOUBLE), np.ones(10), np.ones(10, bool), provider)
    assert provider.calls == 4


@pytest.mark.parametrize(
    ("edges", "stamps", "message"),
    [
        (np.array([[1, 0]]), np.ones(3), "u < v"),
        (np.array([[0, 1], [0, 1]]), np.ones(3), "more than once"),
        (np.array([[0, 3]]), np.ones(3), "endpoints"),
        (np.array([[0, 1]]), np.array([1.0, 0.0, 0.5]), "stamps"),
        (np.array([[0, 1]]), np.array([1.0, 1.5, 0.5]), "stamps"),
        (np.array([[0, 1]]), np.ones(2), "stamps"),
    ],
)
def test_bad_input_is_named(edges, stamps, message):
    with pytest.raises(ConfigError, match=message):
        gossip_round(edges, torch.zeros(3, 1, dtype=DOUBLE), stamps, np.ones(3, bool), UnlimitedPairs(), mixing_steps=1)


def test_provider_with_wrong_shapes_is_rejected():
    class Broken:
        def request(self, edge_ids, pairs_per_exchange):
            return np.ones(1, bool), np.ones(1)

    with pytest.raises(ConfigError, match="pair_provider"):
        gossip_round(
            np.array([[0, 1], [1, 2]]),
            torch.zeros(3, 1, dtype=DOUBLE),
            np.ones(3),
            np.ones(3, bool),
            Broken(),
            mixing_steps=1,
        )


def test_scripted_pairs_answer_each_step_from_its_row_and_cycle():
    edges = np.array([[0, 1], [1, 2]])
    table = np.array([[True, False], [False, True]])
    provider = ScriptedPairs(table, fidelity=np.array([[0.9, 0.9], [0.6, 0.6]]))
    result = gossip_round(
        edges, torch.zeros(3, 1, dtype=DOUBLE), np.ones(3), np.ones(3, bool), provider, mixing_steps=3
    )
    np.testing.assert_array_equal(result.granted_per_edge, [2, 1])  # steps 0 and 2 use row 0
    assert result.mean_delivered_fidelity == pytest.approx((0.9 + 0.6 + 0.9) / 3)
    with pytest.raises(ConfigError, match="fidelity"):
        ScriptedPairs(table, fidelity=0.2)
    with pytest.raises(ConfigError, match=r"UnlimitedPairs\.fidelity"):
        UnlimitedPairs(1.5)
    with pytest.raises(ConfigError, match="pairs_per_exchange"):
        UnlimitedPairs().request(np.array([0]), 0)


def test_inventory_pairs_grant_only_where_enough_pairs_are_stored_and_conserve_them():
    # Path 0-1-2-3; link 0 stores 4 pairs aged 2 rounds, link 1 stores 1 fresh pair, link 2 stores 2 fresh pairs.
    inventory = PairInventory(
        capacity=np.full(3, 4), cutoff=np.full(3, 10), coherence_rounds=np.full(3, 5.0), fidelity0=np.full(3, 0.95)
    )
    inventory.add(np.array([4, 0, 0]))
    inventory.age_one_round()
    inventory.age_one_round()
    inventory.add(np.array([0, 1, 2]))
    provider = InventoryPairs(inventory)
    edges = np.array([[0, 1], [1, 2], [2, 3]])
    result = gossip_round(
        edges,
        torch.zeros(4, 1, dtype=DOUBLE),
        np.ones(4),
        np.ones(4, bool),
        provider,
        mixing_steps=2,
        pairs_per_exchange=2,
    )
    # Step 0: links 0 and 2 hold >= 2 pairs, link 1 only 1. Step 1: link 0 has 2 left, link 2 none.
    np.testing.assert_array_equal(result.granted_per_step, [2, 1])
    np.testing.assert_array_equal(result.granted_per_edge, [2, 0, 1])
    np.testing.assert_array_equal(inventory.held, [0, 1, 0])
    assert result.pairs_consumed == 6 == provider.pairs_served == int(inventory.consumed.sum())
    inventory.check_conservation()
    aged = 0.25 + (0.95 - 0.25) * math.exp(-2 / 5.0)
    assert result.mean_delivered_fidelity == pytest.approx((2 * aged + 0.95) / 3)
    np.testing.assert_allclose(result.received_fidelity[[0, 3]], [aged, 0.95])
    with pytest.raises(ConfigError, match="at most once"):
        provider.request(np.array([0, 0]), 1)
