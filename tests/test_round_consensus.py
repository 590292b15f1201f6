"""The batched consensus phases against the protocols' own ``run_round`` (independent implementations), per copy.

Each test builds a two-copy round, trains it a little so the submissions differ, and then runs one consensus
round twice from the same state: once through the round's batched phase, once through one protocol object per
copy. Pair inventories, parameters, consensus models, pair accounting, quarantine and trust must agree.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from batch_equality import FLOAT32_RTOL

from ceas_gym.consensus.pairs import InventoryPairs
from ceas_gym.envs import round_phases
from ceas_gym.envs.ceas_config import RolesConfig, make_ceas_config
from ceas_gym.envs.ceas_round import CEASRound
from ceas_gym.envs.round_committee import CommitteeConsensus
from ceas_gym.envs.round_consensus import PerCopyConsensus, RoundInputs, ShiftedPairs
from ceas_gym.envs.round_gossip import GossipCheckpointConsensus
from ceas_gym.envs.round_phases import build_protocol
from ceas_gym.envs.round_selection import RandomSelectionConsensus
from ceas_gym.envs.round_streams import CopyStreams


def _trained_round(protocol: str, rounds: int, byzantine_fraction: float = 0.4) -> CEASRound:
    checkpoints = {"ceas": {"bft": {"min_active": 5, "checkpoint_every": 2}}}  # the preset's min_active, kept
    roles = RolesConfig(byzantine_fraction=byzantine_fraction)
    config = make_ceas_config("small", protocol=protocol, protocol_config=checkpoints, roles=roles)
    state = CEASRound(config, copies=2)
    state.reset(np.arange(2), [np.random.default_rng(seed) for seed in (3, 4)])
    budget = np.full((2, state.num_links), config.budget // state.num_links)
    for _ in range(rounds):
        state.step(budget, np.zeros((2, state.num_links), dtype=bool))
    return state


def _streams(seed: int) -> CopyStreams:
    streams = CopyStreams(2)
    for index in range(2):
        streams.start_episode(index, np.random.default_rng(seed + index))
    return streams


def _stocked_inventories(state: CEASRound, most: int = 3) -> tuple:
    """Two equal copies of the round's inventory with up to ``most - 1`` fresh pairs per link (some stay empty)."""
    inventory = copy.deepcopy(state.layer.inventory)
    inventory.add(np.random.default_rng(0).integers(0, most, size=inventory.num_links))
    return inventory, copy.deepcopy(inventory)


def _inputs(state: CEASRound, streams: CopyStreams, inventory, transport: bool) -> RoundInputs:
    submitted = state._local_round()
    receiver = state.learning.transport_receiver
    return RoundInputs(
        submitted=submitted,
        stamps=state._stamps(submitted),
        provider=InventoryPairs(inventory, np.zeros(inventory.num_links, dtype=bool)),
        round_index=state.round_index.copy(),
        streams=streams,
        probes=state.probes,
        transport=(lambda copies: streams.transport(copies, receiver)) if transport else None,
    )


def _reference(state: CEASRound, inputs: RoundInputs, protocols: list, inventory, streams: CopyStreams):
    """One protocol object per copy, through the common run_round interface (a per-copy phase)."""
    phase = PerCopyConsensus(protocols, state.instance.edges)
    reference_inputs = RoundInputs(
        submitted=inputs.submitted,
        stamps=inputs.stamps,
        provider=InventoryPairs(inventory, np.zeros(inventory.num_links, dtype=bool)),
        round_index=inputs.round_index,
        streams=streams,
        probes=inputs.probes,
        transport=(lambda copies: streams.transport(copies, state.learning.transport_receiver))
        if inputs.transport is not None
        else None,
    )
    return phase, phase.run(reference_inputs)


def _assert_same_outcome(batched, reference, batched_inventory, reference_inventory) -> None:
    for key in ("pairs_per_edge", "attempted", "granted", "checkpoint", "committed"):
        assert np.array_equal(getattr(batched, key), getattr(reference, key)), key
    np.testing.assert_allclose(batched.received_fidelity, reference.received_fidelity, rtol=1e-12)
    np.testing.assert_allclose(batched.mean_delivered_fidelity, reference.mean_delivered_fidelity, rtol=1e-12)
    for key in ("params", "consensus"):
        torch.testing.assert_close(getattr(batched, key), getattr(reference, key), rtol=FLOAT32_RTOL, atol=1e-6)
    assert np.array_equal(batched_inventory.age, reference_inventory.age)
    assert np.array_equal(batched_inventory.consumed, reference_inventory.consumed)


@pytest.mark.parametrize("transport", [True, False])
def test_the_batched_ceas_phase_is_ceas_protocol_run_round_per_copy(transport: bool) -> None:
    state = _trained_round("ceas", rounds=3)  # round 3 of 0..: with checkpoint_every=2 the next round checks
    assert isinstance(state.consensus, GossipCheckpointConsensus)
    protocols = [copy.deepcopy(state.protocol) for _ in range(2)]
    batch = state.consensus.monitor
    for index, protocol in enumerate(protocols):  # the reference starts from the batched phase's state
        for name in ("active", "history", "rounds_recorded", "checkpoints_committed", "checkpoints_failed"):
            setattr(protocol.monitor._batch, name, getattr(batch, name)[index : index + 1].copy())
        protocol.trust = state.consensus.trust[index].copy()
    batched_inventory, reference_inventory = _stocked_inventories(state)
    inputs = _inputs(state, _streams(7), batched_inventory, transport)
    batched = state.consensus.run(inputs)
    phase, reference = _reference(state, inputs, protocols, reference_inventory, _streams(7))
    assert batched.attempted.sum() > batched.granted.sum() > 0  # some exchanges found pairs, some did not
    assert batched.checkpoint.all()
    _assert_same_outcome(batched, reference, batched_inventory, reference_inventory)
    assert np.array_equal(state.consensus.active, phase.active)
    np.testing.assert_allclose(state.consensus.trust, phase.trust, rtol=1e-12)


@pytest.mark.parametrize("transport", [True, False])
def test_the_batched_random_selection_phase_is_its_run_round_per_copy(transport: bool) -> None:
    state = _trained_round("random-selection", rounds=2)
    assert isinstance(state.consensus, RandomSelectionConsensus)
    protocols = [
        build_protocol("random-selection", state.num_nodes, state.instance.edges, {}, state.instance.byzantine)
        for _ in range(2)
    ]
    for index, protocol in enumerate(protocols):
        protocol.committed_params = state.consensus.committed_params[index].clone()
    batched_inventory, reference_inventory = _stocked_inventories(state)
    inputs = _inputs(state, _streams(9), batched_inventory, transport)
    batched = state.consensus.run(inputs)
    _, reference = _reference(state, inputs, protocols, reference_inventory, _streams(9))
    assert batched.granted.sum() > 0
    _assert_same_outcome(batched, reference, batched_inventory, reference_inventory)


@pytest.mark.parametrize("transport", [True, False])
@pytest.mark.parametrize(("byzantine_fraction", "most"), [(0.4, 3), (0.1, 12)])
def test_the_batched_committee_phase_is_qba_protocol_run_round_per_copy(
    transport: bool, byzantine_fraction: float, most: int
) -> None:
    state = _trained_round("qba", rounds=4, byzantine_fraction=byzantine_fraction)
    assert isinstance(state.consensus, CommitteeConsensus)
    protocols = [copy.deepcopy(protocol) for protocol in state.consensus.protocols]
    batched_inventory, reference_inventory = _stocked_inventories(state, most)
    inputs = _inputs(state, _streams(11), batched_inventory, transport)
    batched = state.consensus.run(inputs)
    phase, reference = _reference(state, inputs, protocols, reference_inventory, _streams(11))
    if most == 3:  # scarce pairs: some hops and key links refused, nothing committed
        assert batched.attempted.sum() > batched.granted.sum() > 0
    else:  # plenty, few attackers: a block commits on top of an earlier one
        assert batched.committed.any() and any(p.committed_params is not None for p in protocols)
    _assert_same_outcome(batched, reference, batched_inventory, reference_inventory)
    for mine, theirs in zip(state.consensus.protocols, phase.protocols, strict=True):
        assert np.array_equal(mine.stakes, theirs.stakes)
        assert mine.ledger.head_hash == theirs.ledger.head_hash
        assert mine.last_round.signatures == theirs.last_round.signatures
        assert np.array_equal(mine.last_round.arrived, theirs.last_round.arrived)
        if theirs.last_round.aggregation is not None:
            assert torch.equal(mine.last_round.aggregation.selected, theirs.last_round.aggregation.selected)
    np.testing.assert_allclose(state.consensus.trust, phase.trust, rtol=1e-12)


def test_a_copy_that_delivers_nothing_keeps_its_parameters_and_reports_its_last_committed_model() -> None:
    state = _trained_round("random-selection", rounds=1)
    inventory = copy.deepcopy(state.layer.inventory)
    inventory.clear_links(np.arange(state.num_links))  # copy 0 holds no pairs, copy 1 keeps its own
    inputs = _inputs(state, _streams(5), inventory, transport=False)
    committed_before = state.consensus.committed_params.clone()
    outcome = state.consensus.run(inputs)
    n = state.num_nodes
    assert not outcome.committed[0] and outcome.granted[0] == 0
    assert torch.equal(outcome.params[:n], inputs.submitted[:n])
    assert torch.equal(outcome.consensus[0], committed_before[0])
    assert outcome.committed[1]
    reached = ~np.isnan(outcome.received_fidelity[n:])  # the ends of copy 1's granted exchanges
    assert reached.any() and not reached.all()
    for node in range(n):  # the mean reaches a node only over a granted exchange; the others keep their model
        expected = outcome.consensus[1] if reached[node] else inputs.submitted[n + node]
        assert torch.equal(outcome.params[n + node], expected)


def test_a_shifted_provider_serves_a_copy_from_its_own_links() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.seen: list[list[int]] = []

        def request(self, edge_ids, pairs_per_exchange):
            self.seen.append(list(edge_ids))
            return np.ones(len(edge_ids), dtype=bool), np.ones(len(edge_ids))

    recorder = Recorder()
    ShiftedPairs(recorder, 10).request(np.array([0, 3]), 1)
    assert recorder.seen == [[10, 13]]


def test_per_copy_protocols_get_a_predictor_unless_it_only_fills_their_divergence_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(round_phases.BATCHED_CONSENSUS, "qba")  # qba run per copy, as a plug-in without a phase is
    state = _trained_round("qba", rounds=1)
    assert isinstance(state.consensus, PerCopyConsensus)
    seen: list = []
    for protocol in state.consensus.protocols:
        original = protocol.run_round

        def recording(*args, _original=original, **kwargs):
            seen.append(args[2])
            return _original(*args, **kwargs)

        protocol.run_round = recording
    budget = np.full((2, state.num_links), state.config.budget // state.num_links)
    state.step(budget, np.zeros((2, state.num_links), dtype=bool))
    assert seen == [None, None]  # qba's predictor only reports divergence
    monkeypatch.setattr(type(state.consensus.protocols[0]), "predict_reports_only", False)
    seen.clear()
    state.step(budget, np.zeros((2, state.num_links), dtype=bool))
    assert len(seen) == 2 and all(callable(predict) for predict in seen)
    rows = state.params[: state.num_nodes]
    assert seen[0](rows).shape == (state.num_nodes, state.learning.probe_samples)
