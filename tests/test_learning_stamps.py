import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ceas_gym.config import ConfigError
from ceas_gym.learning.circuit import BatchedCircuit, CircuitConfig
from ceas_gym.learning.classifier import QuantumClassifier
from ceas_gym.learning.noise import NodeNoise
from ceas_gym.learning.stamps import (
    StampConfig,
    compute_stamps,
    fidelity_stamp,
    normalised_qfi_trace,
    qfi_trace_score,
    quantum_fisher_information,
    shifted_state_derivatives,
)

ONE_QUBIT = BatchedCircuit(CircuitConfig(num_qubits=1, num_layers=1, dtype="complex128"))
THREE_QUBITS = BatchedCircuit(CircuitConfig(num_qubits=3, num_layers=2, dtype="complex128"))


@pytest.mark.parametrize("theta", [0.0, 0.4, 1.3, math.pi / 2, 2.9])
def test_single_qubit_qfi_hand_computed(theta):
    # RY(theta)|0>: F_theta = 1; then RZ(phi): F_phi = 4 Var(Z/2) = 1 - cos^2(theta) = sin^2(theta); F_theta_phi = 0
    phi = 0.7
    qfi = quantum_fisher_information(
        ONE_QUBIT, torch.tensor([[[[theta, phi]]]], dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    )[0]
    expected = torch.tensor([[1.0, 0.0], [0.0, math.sin(theta) ** 2]], dtype=torch.float64)
    torch.testing.assert_close(qfi, expected, atol=1e-12, rtol=0)


def _qfi_by_autograd(circuit, angles, probes):
    """Independent QFI: autograd Jacobian of the state (real and imaginary parts), one node."""

    def state(flat):
        return circuit.states(flat.reshape(1, *angles.shape), probes[None])[0]  # (M, D)

    flat = angles.reshape(-1)
    real = torch.autograd.functional.jacobian(lambda f: state(f).real, flat)
    imag = torch.autograd.functional.jacobian(lambda f: state(f).imag, flat)
    derivative = torch.complex(real, imag)  # (M, D, P)
    psi = state(flat)
    gram = torch.einsum("mdi,mdj->mij", derivative.conj(), derivative)
    overlap = torch.einsum("mdi,md->mi", derivative.conj(), psi)
    return (4 * (gram - overlap[:, :, None] * overlap.conj()[:, None, :]).real).mean(0)


def test_qfi_matches_autograd_jacobian():
    generator = torch.Generator().manual_seed(0)
    angles = torch.randn(2, 2, 3, 2, generator=generator, dtype=torch.float64)
    probes = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    qfi = quantum_fisher_information(THREE_QUBITS, angles, probes)
    for node in range(2):
        torch.testing.assert_close(qfi[node], _qfi_by_autograd(THREE_QUBITS, angles[node], probes), atol=1e-10, rtol=0)
    torch.testing.assert_close(qfi, qfi.transpose(-1, -2))
    assert torch.linalg.eigvalsh(qfi).min() > -1e-10  # positive semidefinite


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 100_000))
def test_normalised_trace_in_unit_interval(seed):
    generator = torch.Generator().manual_seed(seed)
    angles = torch.randn(3, 2, 3, 2, generator=generator, dtype=torch.float64) * 3
    probes = torch.randn(3, 2, 3, generator=generator, dtype=torch.float64) * 3
    q = normalised_qfi_trace(quantum_fisher_information(THREE_QUBITS, angles, probes))
    assert torch.all((q >= 0) & (q <= 1))
    # The trace without the matrix: the same score from the P norms and overlaps alone.
    torch.testing.assert_close(qfi_trace_score(THREE_QUBITS, angles, probes), q, atol=1e-12, rtol=0)


def test_stamp_hand_values():
    stamp = fidelity_stamp(torch.tensor([1.0, 0.0, 0.5]), torch.tensor([0.0, 0.5, 0.2]), torch.tensor([1.0, 0.8, 0.9]))
    # (1 + q)/2 * (1 - D) * F
    torch.testing.assert_close(stamp, torch.tensor([1.0, 0.5 * 0.5 * 0.8, 0.75 * 0.8 * 0.9], dtype=torch.float64))
    custom = fidelity_stamp(
        torch.tensor([0.0]), torch.tensor([0.5]), torch.tensor([0.5]), StampConfig(3.0, 2.0, 0.5)
    ).item()
    assert custom == pytest.approx(0.75 * 0.25 * math.sqrt(0.5))


unit = st.floats(0.0, 1.0)
infidelity = st.floats(0.0, 0.999)
pair = st.floats(0.01, 1.0)


@settings(max_examples=80, deadline=None)
@given(unit, unit, infidelity, infidelity, pair, pair, st.floats(0.05, 5.0))
def test_stamp_range_and_monotonicity(q1, q2, d1, d2, f1, f2, offset):
    config = StampConfig(qfi_offset=offset)

    def stamp(q, d, f):
        as64 = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
        return fidelity_stamp(as64(q), as64(d), as64(f), config).item()

    value = stamp(q1, d1, f1)
    assert 0 < value <= 1
    low_q, high_q = sorted((q1, q2))
    assert stamp(low_q, d1, f1) <= stamp(high_q, d1, f1)
    low_d, high_d = sorted((d1, d2))
    assert stamp(q1, low_d, f1) >= stamp(q1, high_d, f1)
    low_f, high_f = sorted((f1, f2))
    assert stamp(q1, d1, low_f) <= stamp(q1, d1, high_f)
    if high_q - low_q > 1e-9:  # strict where the difference is above rounding
        assert stamp(low_q, d1, f1) < stamp(high_q, d1, f1)
    if high_d - low_d > 1e-9:
        assert stamp(q1, low_d, f1) > stamp(q1, high_d, f1)


def test_stamp_rejects_out_of_range_inputs():
    with pytest.raises(ValueError, match="pair_fidelity"):
        fidelity_stamp(torch.tensor([0.5]), torch.tensor([0.1]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="channel_infidelity"):
        fidelity_stamp(torch.tensor([0.5]), torch.tensor([1.0]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="qfi_score"):
        fidelity_stamp(torch.tensor([1.5]), torch.tensor([0.1]), torch.tensor([1.0]))
    with pytest.raises(ConfigError, match=r"StampConfig\.qfi_offset"):
        StampConfig(qfi_offset=0.0)


def test_compute_stamps_orders_nodes_by_noise_and_pairs():
    model = QuantumClassifier()
    params = model.init_parameters(4, torch.Generator().manual_seed(1))
    probes = torch.tensor(np.random.default_rng(0).normal(size=(8, 4)), dtype=torch.float32)
    noise = NodeNoise([0.0, 0.01, 0.2, 0.01], [0.0, 0.01, 0.2, 0.01], [0.0, 0.01, 0.05, 0.01])
    stamps = compute_stamps(model, params, probes, noise, torch.tensor([1.0, 1.0, 1.0, 0.8]))
    assert stamps.shape == (4,)
    assert stamps[0] > stamps[1] > stamps[2] > 0
    assert stamps[3] == pytest.approx(0.8 * stamps[1].item(), rel=1e-6)  # same QFI and channel, pairs 0.8


@pytest.mark.parametrize(("n", "layers"), [(1, 1), (2, 2), (3, 2), (4, 3)])
def test_shifted_state_derivatives_equal_simulated_pi_shifts(n, layers):
    # d_j psi = psi(theta + pi e_j) / 2, simulated here circuit by circuit as the independent reference
    circuit = BatchedCircuit(CircuitConfig(num_qubits=n, num_layers=layers, dtype="complex128"))
    generator = torch.Generator().manual_seed(n)
    angles = torch.randn(2, layers, n, 2, generator=generator, dtype=torch.float64)
    probes = torch.randn(2, 3, n, generator=generator, dtype=torch.float64)
    psi, derivatives = shifted_state_derivatives(circuit, angles, probes)
    torch.testing.assert_close(psi, circuit.states(angles, probes), atol=1e-12, rtol=0)
    count = 2 * n * layers
    for j in range(count):
        shift = torch.zeros(count, dtype=torch.float64)
        shift[j] = math.pi
        shifted = angles + shift.reshape(layers, n, 2)
        torch.testing.assert_close(derivatives[:, j], circuit.states(shifted, probes) / 2, atol=1e-12, rtol=0)


@pytest.mark.parametrize("theta", [0.0, 0.4, 1.3, math.pi / 2, 2.9])
@pytest.mark.parametrize("feature", [0.0, 0.8])
def test_closed_form_trace_hand_computed(theta, feature):
    # RY(feature)|0> then RY(theta) RZ(phi): F_theta = 1 (the RY acts on a real state, <Y> = 0) and
    # F_phi = 1 - <Z>^2 = sin^2(feature + theta), so q = (1 + sin^2(feature + theta)) / 2
    angles = torch.tensor([[[[theta, 0.7]]]], dtype=torch.float64)
    q = qfi_trace_score(ONE_QUBIT, angles, torch.tensor([[feature]], dtype=torch.float64))
    torch.testing.assert_close(q, torch.tensor([(1 + math.sin(feature + theta) ** 2) / 2], dtype=torch.float64))


@pytest.mark.parametrize(("n", "layers"), [(1, 2), (2, 2), (4, 3), (5, 2)])
def test_closed_form_trace_equals_the_trace_of_the_full_qfi(n, layers):
    # Independent: the full QFI from the pi-shifted derivative states, its trace normalised
    circuit = BatchedCircuit(CircuitConfig(num_qubits=n, num_layers=layers, dtype="complex128"))
    generator = torch.Generator().manual_seed(10 + n)
    angles = torch.randn(3, layers, n, 2, generator=generator, dtype=torch.float64) * 2
    probes = torch.randn(3, 4, n, generator=generator, dtype=torch.float64) * 2
    expected = normalised_qfi_trace(quantum_fisher_information(circuit, angles, probes))
    torch.testing.assert_close(qfi_trace_score(circuit, angles, probes), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("n", "layers"), [(1, 1), (3, 2), (4, 3)])
def test_prefix_states_run_the_layers_one_by_one(n, layers):
    circuit = BatchedCircuit(CircuitConfig(num_qubits=n, num_layers=layers, dtype="complex128"))
    generator = torch.Generator().manual_seed(20 + n)
    angles = torch.randn(2, layers, n, 2, generator=generator, dtype=torch.float64)
    features = torch.randn(2, 5, n, generator=generator, dtype=torch.float64)
    real, imag = circuit.prefix_states(angles, features)
    states = torch.complex(real, imag)  # (B, L + 1, S, D)
    assert states.shape == (2, layers + 1, 5, 2**n)
    torch.testing.assert_close(states[:, 0], circuit.encode(features), atol=0, rtol=0)
    expected = circuit.encode(features)
    for layer, unitary in enumerate(circuit.layer_unitaries(angles).unbind(1)):
        expected = expected @ unitary.transpose(-1, -2)
        torch.testing.assert_close(states[:, layer + 1], expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(states[:, -1], circuit.states(angles, features), atol=1e-12, rtol=0)
