"""The distributed (unitary-level and circuit-level) density-matrix simulation against closed forms and the
monolithic state-vector circuit."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ceas_gym.learning.circuit import BatchedCircuit, CircuitConfig
from ceas_gym.learning.classifier import QuantumClassifier
from ceas_gym.learning.distributed_circuit import (
    ChannelTrainer,
    DensityMatrixCircuit,
    chain_expectations,
    layer_blocks,
    partitioned_expectations,
)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Small tensors: one intra-op thread avoids thread contention on loaded machines (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _random(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize(("qubits", "layers", "nodes"), [(1, 2, 2), (2, 3, 3), (3, 4, 2), (4, 5, 5), (4, 3, 2)])
def test_chain_with_perfect_pairs_equals_monolithic_circuit(qubits: int, layers: int, nodes: int) -> None:
    config = CircuitConfig(qubits, layers, "all", "complex128")
    angles, features = _random((layers, qubits, 2), 1), _random((9, qubits), 2)
    reference = BatchedCircuit(config).expectations(angles[None], features[None])[0]
    chain = chain_expectations(
        DensityMatrixCircuit(config), angles, features, layer_blocks(layers, nodes), np.zeros((nodes - 1, qubits))
    )
    assert torch.allclose(chain, reference, atol=1e-6)


@pytest.mark.parametrize(("qubits", "layers"), [(2, 2), (3, 3), (4, 2)])
def test_partitioned_with_every_gate_perfect_equals_monolithic_circuit(qubits: int, layers: int) -> None:
    config = CircuitConfig(qubits, layers, "all", "complex128")
    simulator = DensityMatrixCircuit(config)
    angles, features = _random((layers, qubits, 2), 3), _random((6, qubits), 4)
    reference = BatchedCircuit(config).expectations(angles[None], features[None])[0]
    gates = len(simulator.ring)
    result = partitioned_expectations(
        simulator, angles, features, np.ones((layers, gates), dtype=bool), np.zeros((layers, gates))
    )
    assert torch.allclose(result, reference, atol=1e-6)


def test_layer_blocks_share_layers_evenly() -> None:
    assert layer_blocks(10, 4).tolist() == [0, 3, 6, 8, 10]
    assert layer_blocks(4, 4).tolist() == [0, 1, 2, 3, 4]


@settings(max_examples=25, deadline=None)
@given(fidelity=st.floats(0.25, 1.0), angle=st.floats(-3.0, 3.0))
def test_one_qubit_teleported_through_werner_pair_shrinks_z_by_4f_minus_1_over_3(fidelity: float, angle: float) -> None:
    config = CircuitConfig(1, 2, "first", "complex128")
    simulator = DensityMatrixCircuit(config)
    angles = torch.zeros(2, 1, 2, dtype=torch.float64)
    features = torch.tensor([[angle]], dtype=torch.float64)
    strength = 4 * (1 - fidelity) / 3
    noisy = chain_expectations(simulator, angles, features, layer_blocks(2, 2), np.array([[strength]]))
    # RY(x)|0> has <Z> = cos x; zero angles leave it; the Werner pair shrinks it by (4F - 1) / 3.
    assert noisy.item() == pytest.approx(math.cos(angle) * (4 * fidelity - 1) / 3, abs=1e-9)


def test_missing_pairs_leave_the_chain_output_maximally_mixed() -> None:
    config = CircuitConfig(3, 3, "all", "complex128")
    angles, features = _random((3, 3, 2), 5), _random((4, 3), 6)
    result = chain_expectations(DensityMatrixCircuit(config), angles, features, layer_blocks(3, 3), np.ones((2, 3)))
    assert torch.allclose(result, torch.zeros_like(result), atol=1e-12)


def test_one_missing_qubit_on_the_last_hop_erases_only_that_qubit() -> None:
    config = CircuitConfig(3, 2, "all", "complex128")
    simulator = DensityMatrixCircuit(config)
    angles = torch.zeros(2, 3, 2, dtype=torch.float64)
    angles[1] = _random((3, 2), 7)  # the last block only rotates (its CNOT ring acts after the hop)
    features = _random((5, 3), 8)
    perfect = chain_expectations(simulator, angles, features, layer_blocks(2, 2), np.zeros((1, 3)))
    # With zero first-block angles the state before the hop is the CNOT ring of the encoded product state; erasing
    # qubit 1 there and then applying block 2 differs from the perfect run, while erasing nothing does not.
    erased = chain_expectations(simulator, angles, features, layer_blocks(2, 2), np.array([[0.0, 1.0, 0.0]]))
    assert not torch.allclose(erased, perfect, atol=1e-3)
    rho = simulator.encode(features)
    unitaries = simulator.layer_unitaries(angles)
    rho = simulator.apply_unitary(rho, unitaries[0])
    rho = simulator.fully_mix(rho, 1)
    rho = simulator.apply_unitary(rho, unitaries[1])
    assert torch.allclose(erased, simulator.readout(rho), atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(strength=st.floats(0.0, 1.0))
def test_non_local_cnot_with_depolarising_pair_shrinks_both_qubits_by_one_minus_p(strength: float) -> None:
    config = CircuitConfig(2, 1, "all", "complex128")
    simulator = DensityMatrixCircuit(config)
    angles, features = _random((1, 2, 2), 9), _random((7, 2), 10)
    applied = np.ones((1, 1), dtype=bool)
    perfect = partitioned_expectations(simulator, angles, features, applied, np.zeros((1, 1)))
    noisy = partitioned_expectations(simulator, angles, features, applied, np.array([[strength]]))
    assert torch.allclose(noisy, (1 - strength) * perfect, atol=1e-10)


def test_skipped_non_local_cnot_leaves_the_product_state() -> None:
    config = CircuitConfig(2, 1, "all", "complex128")
    simulator = DensityMatrixCircuit(config)
    angles, features = _random((1, 2, 2), 11), _random((5, 2), 12)
    skipped = partitioned_expectations(simulator, angles, features, np.zeros((1, 1), dtype=bool), np.zeros((1, 1)))
    # Without the CNOT each qubit is RZ(b) RY(a) RY(x)|0>: <Z_q> = cos(x_q + a_q) (RZ does not change Z).
    expected = torch.cos(features + angles[0, :, 0][None, :])
    assert torch.allclose(skipped, expected, atol=1e-10)


def test_fully_mixing_preserves_trace_and_hermiticity() -> None:
    simulator = DensityMatrixCircuit(CircuitConfig(3, 1, "all", "complex128"))
    rho = simulator.encode(_random((4, 3), 13))
    for qubit in range(3):
        mixed = simulator.fully_mix(rho, qubit)
        assert torch.allclose(torch.diagonal(mixed, dim1=-2, dim2=-1).sum(-1).real, torch.ones(4, dtype=torch.float64))
        assert torch.allclose(mixed, mixed.conj().transpose(-1, -2))
        assert torch.linalg.eigvalsh(mixed).min() > -1e-12


def test_gradients_vanish_through_a_fully_erased_chain_and_flow_through_a_perfect_one() -> None:
    config = CircuitConfig(2, 2, "first", "complex128")
    simulator = DensityMatrixCircuit(config)
    features = _random((6, 2), 14)
    for strength, vanishes in ((1.0, True), (0.0, False)):
        angles = _random((2, 2, 2), 15).requires_grad_(True)
        chain_expectations(simulator, angles, features, layer_blocks(2, 2), np.full((1, 2), strength)).sum().backward()
        assert angles.grad is not None
        if vanishes:
            assert torch.allclose(angles.grad[0], torch.zeros(2, 2, dtype=torch.float64))
        else:
            assert angles.grad[0].abs().sum() > 1e-6


def test_channel_trainer_reduces_loss_with_perfect_channel_and_is_deterministic() -> None:
    config = CircuitConfig(2, 2, "first", "complex128")
    model = QuantumClassifier(config)
    simulator = DensityMatrixCircuit(config)
    rng = np.random.default_rng(0)
    signs = rng.choice([-1.0, 1.0], size=64)
    features = torch.as_tensor(signs[:, None] * 1.2 + 0.3 * rng.standard_normal((64, 2)))
    labels = torch.as_tensor((signs > 0).astype(np.int64))

    def forward(angles: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return chain_expectations(simulator, angles, inputs, layer_blocks(2, 2), np.zeros((1, 2)))

    losses = []
    for _ in range(2):
        trainer = ChannelTrainer(model, learning_rate=0.1)
        trainer.reset(model.init_parameters(1, torch.Generator().manual_seed(3))[0])
        losses.append([trainer.step(forward, features, labels) for _ in range(30)])
        accuracy, _ = trainer.evaluate(trainer.params, forward, features, labels)
    assert losses[0] == losses[1]
    assert losses[0][-1] < losses[0][0] - 0.1
    assert accuracy > 0.8


@settings(max_examples=15, deadline=None)
@given(strength=st.floats(0.0, 1.0), qubit=st.integers(0, 2))
def test_single_qubit_depolarising_matches_the_partial_trace_form(strength: float, qubit: int) -> None:
    simulator = DensityMatrixCircuit(CircuitConfig(3, 1, "all", "complex128"))
    rho = simulator.apply_unitary(
        simulator.encode(_random((4, 3), 16)), simulator.layer_unitaries(_random((1, 3, 2), 17))[0]
    )
    expected = (1 - strength) * rho + strength * simulator.fully_mix(rho, qubit)
    assert torch.allclose(simulator.depolarise(rho, (qubit,), strength), expected, atol=1e-12)


@pytest.mark.parametrize("qubits", [(0, 1), (2, 0), (1, 2)])
def test_two_qubit_depolarising_matches_the_partial_trace_form(qubits: tuple[int, int]) -> None:
    simulator = DensityMatrixCircuit(CircuitConfig(3, 1, "all", "complex128"))
    rho = simulator.apply_unitary(
        simulator.encode(_random((4, 3), 18)), simulator.layer_unitaries(_random((1, 3, 2), 19))[0]
    )
    mixed = simulator.fully_mix(simulator.fully_mix(rho, qubits[0]), qubits[1])
    for strength in (0.3, 1.0):
        expected = (1 - strength) * rho + strength * mixed
        assert torch.allclose(simulator.depolarise(rho, qubits, strength), expected, atol=1e-12)


def test_cnot_gather_matches_the_permutation_matrix() -> None:
    simulator = DensityMatrixCircuit(CircuitConfig(3, 1, "all", "complex128"))
    rho = simulator.apply_unitary(
        simulator.encode(_random((2, 3), 20)), simulator.layer_unitaries(_random((1, 3, 2), 21))[0]
    )
    for gate, (control, target) in enumerate(simulator.ring):
        matrix = torch.zeros(8, 8, dtype=torch.complex128)
        for index in range(8):
            bits = [(index >> (2 - q)) & 1 for q in range(3)]
            bits[target] ^= bits[control]
            matrix[bits[0] * 4 + bits[1] * 2 + bits[2], index] = 1
        assert torch.allclose(simulator.apply_cnot(rho, gate), matrix @ rho @ matrix.T, atol=1e-12)
