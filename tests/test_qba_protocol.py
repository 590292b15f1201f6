"""The ``qba`` consensus protocol: committee, score-rule aggregation, QBA key demand, ledger, environment."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from agents.baselines import EarliestExpiringFirst
from ceas_gym.config import ConfigError
from ceas_gym.consensus.committee import select_committee
from ceas_gym.consensus.ledger import GENESIS_PREVIOUS_HASH, Ledger
from ceas_gym.consensus.pairs import ScriptedPairs, UnlimitedPairs
from ceas_gym.consensus.protocol import CONSENSUS_PROTOCOLS, ConsensusProtocol
from ceas_gym.consensus.qba import qds_operation_count
from ceas_gym.consensus.qba_protocol import (
    PairBackedKeySource,
    QBAConfig,
    QBAProtocol,
    member_signatures,
    model_hash,
    qds_key_bits_per_member_pair,
)
from ceas_gym.consensus.qds import KeySource
from ceas_gym.envs.ceas import EntanglementSchedulingEnv

# A ring of 9 with two chords: connected, several shortest-path lengths.
EDGES = np.array([[i, i + 1] for i in range(8)] + [[0, 8], [0, 4], [2, 6]])
NUM_NODES = 9


def honest_params(seed: int = 0, num_nodes: int = NUM_NODES, size: int = 5) -> torch.Tensor:
    """Updates scattered around one point (honest clients), float64."""
    rng = np.random.default_rng(seed)
    return torch.as_tensor(1.0 + 0.1 * rng.normal(size=(num_nodes, size)))


def by_hand_score_rule(updates: np.ndarray, stakes: np.ndarray, f: int, direction: np.ndarray | None) -> tuple:
    """Eq. 7-10 of the second paper written out with numpy (reference implementation)."""
    n = updates.shape[0]
    if direction is None:
        v1 = np.zeros(n)
    else:
        v1 = updates @ direction / (np.linalg.norm(updates, axis=1) * np.linalg.norm(direction))
    distances = np.sqrt(((updates[:, None, :] - updates[None, :, :]) ** 2).sum(-1))
    v2 = np.array([np.sort(np.delete(distances[i], i))[: n - f - 1].sum() for i in range(n)])

    def z(x):
        spread = x.std()
        return np.zeros_like(x) if spread <= 1e-12 * (1 + np.abs(x).max()) else (x - x.mean()) / spread

    score = z(v1) - z(v2)
    keep = np.sort(np.argsort(-score, kind="stable")[: n - f - 2])
    return keep, stakes[keep] @ updates[keep] / stakes[keep].sum()


class DenyLargeRequests:
    """Grants requests of fewer than ``limit`` pairs per exchange at fidelity 0.9, denies the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.served = 0

    def request(self, edge_ids: np.ndarray, pairs_per_exchange: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(edge_ids)
        ok = pairs_per_exchange < self.limit
        self.served += int(ok) * ids.size * pairs_per_exchange
        return np.full(ids.size, ok), np.full(ids.size, 0.9 if ok else math.nan)


def test_registered_under_the_common_interface_and_configs_are_strict():
    protocol = CONSENSUS_PROTOCOLS.get("qba")(NUM_NODES, EDGES, {"committee_size": 5, "committee_faulty": 2})
    assert isinstance(protocol, QBAProtocol) and isinstance(protocol, ConsensusProtocol)
    assert protocol.config == QBAConfig(committee_size=5, committee_faulty=2)
    with pytest.raises(ConfigError, match=r"committee_faulty = 2 is out of range .*allowed: \[0, 1\]"):
        QBAConfig(committee_size=4, committee_faulty=2)
    with pytest.raises(ConfigError, match="byzantine_strategy"):
        QBAConfig(byzantine_strategy="sneaky")
    with pytest.raises(ConfigError, match="minimum_stake"):
        QBAConfig(minimum_stake=0.0)
    with pytest.raises(ConfigError, match="committee_size = 12 is out of range"):
        QBAProtocol(NUM_NODES, EDGES, {"committee_size": 12})
    with pytest.raises(ConfigError, match="unknown key"):
        QBAProtocol(NUM_NODES, EDGES, {"comittee_size": 3})
    assert isinstance(PairBackedKeySource(np.random.default_rng(0), 10, 1), KeySource)


@pytest.mark.parametrize(("size", "faulty"), [(2, 0), (3, 1), (4, 1), (5, 2), (7, 3)])
def test_key_bits_per_member_pair_add_up_to_eq_a1(size, faulty):
    bits = qds_key_bits_per_member_pair(size, faulty, hash_bits=8)
    assert np.array_equal(bits, bits.T) and np.all(np.diag(bits) == 0)
    assert bits.sum() == 2 * 6 * 8 * qds_operation_count(size, faulty)
    if faulty == 1:  # round 0 only: leader-member pairs, (N_c - 2) ops as Bob and as Charlie, 3n bits each
        assert np.all(bits[0, 1:] == 2 * (size - 2) * 3 * 8) and np.all(bits[1:, 1:] == 0)


def test_round_with_unlimited_pairs_commits_a_verified_block_and_every_node_adopts_it():
    protocol = QBAProtocol(NUM_NODES, EDGES)
    committee = select_committee(GENESIS_PREVIOUS_HASH, np.full(NUM_NODES, 10.0), 4)
    assert protocol.committee() == committee
    params = honest_params()
    result = protocol.run_round(params, None, None, UnlimitedPairs(0.95), 0, np.random.default_rng(1))
    assert result.committed and result.checkpoint
    assert len(protocol.ledger) == 1 and protocol.ledger.verify().ok
    block = protocol.ledger.blocks[0]
    assert block.model_hash == model_hash(result.consensus_params)
    assert block.participants == tuple(np.flatnonzero(result.participants))
    assert len(block.signatures) == 4  # all honest members sign
    assert torch.equal(result.params, result.consensus_params.expand(NUM_NODES, -1))
    # Alg. 3: every aggregated client +1, the others keep their stake.
    expected_stakes = 10.0 + result.participants.astype(float)
    np.testing.assert_array_equal(protocol.stakes, expected_stakes)
    assert block.stake_snapshot == tuple(expected_stakes)
    np.testing.assert_allclose(result.trust, expected_stakes / expected_stakes.max())
    # The next round elects from the new head hash.
    assert protocol.committee() == select_committee(block.block_hash, expected_stakes, 4)
    assert result.pairs_consumed == int(result.pairs_per_edge.sum()) > 0
    assert result.exchanges_granted == result.exchanges_attempted
    assert result.mean_delivered_fidelity == pytest.approx(0.95)


def test_a_committed_block_reaches_only_the_nodes_whose_update_travelled_over_granted_pairs():
    leaf = 6  # not a committee member; its links carry no member's key path
    assert leaf not in QBAProtocol(NUM_NODES, EDGES).committee().members
    protocol = QBAProtocol(NUM_NODES, EDGES)
    granted = ~((EDGES[:, 0] == leaf) | (EDGES[:, 1] == leaf))  # every link of the leaf denied
    params = honest_params()
    result = protocol.run_round(params, None, None, ScriptedPairs(granted, 0.95), 0, np.random.default_rng(1))
    assert result.committed
    assert torch.equal(result.params[leaf], params[leaf])  # no pairs: the block's model never reached it
    others = np.flatnonzero(np.arange(NUM_NODES) != leaf)
    assert torch.equal(result.params[others], result.consensus_params.expand(others.size, -1))


def test_committed_models_equal_the_score_rule_applied_by_hand_over_three_rounds():
    protocol = QBAProtocol(NUM_NODES, EDGES, {"update_faulty": 2})
    rng = np.random.default_rng(3)
    committed: list[np.ndarray] = []
    for round_index in range(3):
        params = honest_params(seed=10 + round_index)
        stakes = protocol.stakes.copy()
        result = protocol.run_round(params, None, None, UnlimitedPairs(), round_index, rng)
        assert result.committed
        reference = committed[-1] if committed else np.zeros(params.shape[1])
        direction = committed[-1] - committed[-2] if len(committed) >= 2 else None
        keep, mean_update = by_hand_score_rule(params.numpy() - reference, stakes, 2, direction)
        np.testing.assert_allclose(result.consensus_params.numpy(), reference + mean_update, atol=1e-12)
        assert np.array_equal(np.flatnonzero(result.participants), keep)
        committed.append(result.consensus_params.numpy().copy())
    assert len(protocol.ledger) == 3 and protocol.ledger.verify().ok
    head = protocol.ledger.head
    signers = protocol.last_round.signatures
    assert head.height == 3 and head.signatures == tuple(member_signatures(signers, head.message()))
    assert not Ledger(protocol.ledger.blocks[:2], head).verify().ok  # the last block dropped: caught by default


def test_without_pairs_nothing_is_committed_and_the_committee_is_penalised():
    protocol = QBAProtocol(NUM_NODES, EDGES)
    members = protocol.committee().members
    params = honest_params()
    provider = ScriptedPairs(np.zeros(EDGES.shape[0], dtype=bool))
    result = protocol.run_round(params, None, None, provider, 0, np.random.default_rng(0))
    assert not result.committed and len(protocol.ledger) == 0
    assert result.pairs_consumed == 0 and result.exchanges_granted == 0 and result.exchanges_attempted > 0
    assert torch.equal(result.params, params)
    expected = np.full(NUM_NODES, 10.0)
    expected[list(members)] -= 1.0
    np.testing.assert_array_equal(protocol.stakes, expected)
    assert not result.quarantined.any() and math.isnan(result.mean_delivered_fidelity)


def test_signatures_without_key_pairs_fail_and_the_block_is_not_committed():
    # Each leader-member key (12 n bits) needs 2 end-to-end pairs, so every key link asks for >= 2 pairs at once;
    # the provider grants the one-pair upload hops and denies those.
    n_bits = 64
    config = {"key_bits_per_pair": 6.0 * n_bits}  # 12 n bits per leader-member pair -> 2 pairs each
    protocol = QBAProtocol(NUM_NODES, EDGES, config)
    provider = DenyLargeRequests(limit=2)
    result = protocol.run_round(honest_params(), None, None, provider, 0, np.random.default_rng(0))
    details = protocol.last_round
    assert details is not None and details.qba is not None
    assert not result.committed and len(protocol.ledger) == 0
    assert details.arrived.all()  # uploads (one pair per hop) went through
    assert set(details.key_starved) == set(details.committee.members)
    assert details.signatures == () and details.key_pairs_per_edge.sum() == 0
    assert result.pairs_consumed == provider.served == details.upload_pairs_per_edge.sum()


def test_demand_forecast_matches_hand_count_and_unlimited_consumption():
    config = QBAConfig(pairs_per_exchange=2, key_bits_per_pair=12.0 * 64)  # one pair per leader-member key
    protocol = QBAProtocol(NUM_NODES, EDGES, config)
    graph = nx.Graph([tuple(edge) for edge in EDGES])
    hops = dict(nx.all_pairs_shortest_path_length(graph))
    rng = np.random.default_rng(5)
    for round_index in range(4):
        members = protocol.committee().members
        demand, deadline = protocol.expected_demand(EDGES, round_index)
        assert np.all(deadline == 1)
        uploads = sum(min(hops[node][m] for m in members) for node in range(NUM_NODES) if node not in members)
        keys = sum(hops[members[0]][m] for m in members[1:])
        assert demand.sum() == 2 * uploads + keys
        result = protocol.run_round(honest_params(seed=round_index), None, None, UnlimitedPairs(), round_index, rng)
        assert result.committed
        np.testing.assert_array_equal(result.pairs_per_edge, demand)


def test_same_seed_same_result_with_random_byzantine_behaviour():
    def run() -> tuple:
        protocol = QBAProtocol(NUM_NODES, EDGES, {"byzantine_members": (1, 4, 7), "byzantine_strategy": "random"})
        rng = np.random.default_rng(11)
        outputs = []
        for round_index in range(5):
            grants = rng.random(EDGES.shape[0]) < 0.8
            provider = ScriptedPairs(grants, fidelity=0.9)
            result = protocol.run_round(honest_params(seed=round_index), None, None, provider, round_index, rng)
            outputs.append((result.committed, result.params.numpy().copy(), result.pairs_per_edge.copy()))
        return outputs, protocol.stakes.copy(), protocol.ledger.head_hash

    first, second = run(), run()
    assert first[2] == second[2]
    np.testing.assert_array_equal(first[1], second[1])
    for a, b in zip(first[0], second[0], strict=True):
        assert a[0] == b[0]
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[2], b[2])


def test_a_planted_attacker_is_excluded_by_the_score_rule_and_gains_no_stake():
    params = honest_params()
    attacker = 3
    params[attacker] = -50.0
    protocol = QBAProtocol(NUM_NODES, EDGES, {"exclusion_penalty": 2.0})
    result = protocol.run_round(params, None, None, UnlimitedPairs(), 0, np.random.default_rng(0))
    assert result.committed
    assert not result.participants[attacker] and result.quarantined[attacker]
    assert np.array_equal(result.quarantined, ~result.participants)  # all arrived; excluded = quarantined
    assert protocol.stakes[attacker] == 8.0  # excluded in a committed block: -2
    assert bool(torch.all(result.consensus_params > 0.5))  # the poison did not enter
    assert protocol.active.all()


def test_byzantine_leader_is_detected_and_a_byzantine_member_is_outvoted():
    leader = QBAProtocol(NUM_NODES, EDGES).committee().leader
    protocol = QBAProtocol(NUM_NODES, EDGES, {"byzantine_members": (leader,), "byzantine_strategy": "conflicting"})
    result = protocol.run_round(honest_params(), None, None, UnlimitedPairs(), 0, np.random.default_rng(0))
    assert protocol.last_round.qba.leader_faulty_detected
    assert not result.committed and len(protocol.ledger) == 0
    assert protocol.stakes[leader] == 8.0  # committee penalty and detected-faulty penalty

    member = QBAProtocol(NUM_NODES, EDGES).committee().members[2]
    protocol = QBAProtocol(NUM_NODES, EDGES, {"byzantine_members": (member,), "byzantine_strategy": "forge"})
    result = protocol.run_round(honest_params(), None, None, UnlimitedPairs(), 0, np.random.default_rng(0))
    assert result.committed and member not in protocol.last_round.signatures
    assert len(protocol.last_round.signatures) == 3  # 3 > 4 / 2
    assert len(set(protocol.ledger.blocks[0].signatures)) == 3


def test_received_fidelity_composes_werner_parameters_along_the_route():
    protocol = QBAProtocol(NUM_NODES, EDGES)
    result = protocol.run_round(honest_params(), None, None, UnlimitedPairs(0.85), 0, np.random.default_rng(0))
    details = protocol.last_round
    members = list(details.committee.members)
    graph = nx.Graph([tuple(edge) for edge in EDGES])
    w = (4 * 0.85 - 1) / 3
    for node in range(NUM_NODES):
        if node in members:
            assert details.arrival_fidelity[node] == 1.0
        else:
            distance = min(nx.shortest_path_length(graph, node, m) for m in members)
            assert details.arrival_fidelity[node] == pytest.approx((1 + 3 * w**distance) / 4)
    assert np.all(np.isnan(result.received_fidelity[[i for i in range(NUM_NODES) if i not in members]]))


def test_runs_twenty_rounds_in_the_small_environment_with_eef():
    env = EntanglementSchedulingEnv(preset="small", protocol="qba")
    policy = EarliestExpiringFirst(env)
    observation, info = env.reset(seed=0)
    committed = 0
    for _ in range(20):
        observation, reward, _, _, info = env.step(policy.act(observation, info))
        assert np.isfinite(reward)
        # The env sizes the demand box from round 0's demand; the committee's demand moves, bounded by max_demand.
        inside = [space.contains(observation[key]) for key, space in env.observation_space.items()]
        keys = list(env.observation_space.keys())
        assert all(ok for key, ok in zip(keys, inside, strict=True) if key != "demand_pairs")
        assert observation["demand_pairs"].max() <= env.protocol.max_demand()
        committed += info["committed"]
    assert committed >= 1 and len(env.protocol.ledger) == committed
    assert env.protocol.ledger.verify().ok


def test_attackers_end_twenty_rounds_with_less_stake_than_honest_nodes():
    """Pooled over five seeds: one seed's four attackers against six honest nodes is too noisy a comparison."""
    byzantine_means, honest_means = [], []
    for seed in range(5):
        env = EntanglementSchedulingEnv(preset="small", protocol="qba")
        policy = EarliestExpiringFirst(env)
        observation, info = env.reset(seed=seed)
        for _ in range(20):
            observation, _, _, _, info = env.step(policy.act(observation, info))
        stakes = env.protocol.stakes
        byzantine_means.append(stakes[env.instance.byzantine].mean())
        honest_means.append(stakes[~env.instance.byzantine].mean())
    assert np.mean(byzantine_means) < np.mean(honest_means)
    assert np.sum(np.less(byzantine_means, honest_means)) >= 4


def test_the_small_environment_with_qba_passes_the_gymnasium_env_checker():
    check_env(EntanglementSchedulingEnv(preset="small", protocol="qba"), skip_render_check=True)


def test_the_kept_election_and_routes_follow_stakes_and_head_changes() -> None:
    protocol = QBAProtocol(NUM_NODES, EDGES)
    first = protocol.committee()
    assert protocol.committee() is first  # asked twice in a round (demand, run): computed once
    protocol.stakes[first.members[0]] = 1.0  # an in-place stake change is seen
    after_stakes = protocol.committee()
    fresh = select_committee(protocol.ledger.head_hash, protocol.stakes, protocol.config.committee_size)
    assert after_stakes.members == fresh.members and after_stakes is not first
    protocol.run_round(honest_params(), None, None, UnlimitedPairs(1.0), 0, np.random.default_rng(0))
    assert len(protocol.ledger) == 1  # a new head: a new election
    expected = select_committee(protocol.ledger.head_hash, protocol.stakes, protocol.config.committee_size)
    assert protocol.committee().members == expected.members
    sources, targets, links = protocol.upload_routes(expected.members)
    with pytest.raises(ValueError, match="read-only"):
        links[0, 0] = 99  # the kept routes are shared: nobody may write into them
    other = QBAProtocol(NUM_NODES, EDGES)
    recomputed = other.upload_routes(expected.members)
    assert all(np.array_equal(a, b) for a, b in zip(recomputed, (sources, targets, links), strict=True))
    demand, _ = protocol.expected_demand(EDGES, 1)
    demand[0] += 1.0  # the caller's copy
    assert protocol.expected_demand(EDGES, 1)[0][0] == demand[0] - 1.0
