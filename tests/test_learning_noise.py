import numpy as np
import pytest
import torch

from ceas_gym.config import ConfigError
from ceas_gym.learning.circuit import BatchedCircuit, CircuitConfig, gate_counts
from ceas_gym.learning.noise import (
    NodeNoise,
    apply_white_noise,
    expectation_shrink,
    gate_survival,
    process_infidelity,
)

PAULI_Z = np.diag([1.0, -1.0]).astype(complex)


def _ry(a):
    c, s = np.cos(a / 2), np.sin(a / 2)
    return np.array([[c, -s], [s, c]], dtype=complex)


def _rz(b):
    return np.diag([np.exp(-0.5j * b), np.exp(0.5j * b)])


def _depolarise(rho, p):
    return (1 - p) * rho + p * np.trace(rho) * np.eye(rho.shape[0]) / rho.shape[0]


def _density_matrix_single_qubit(params, x, p1, readout_error):
    """Exact density-matrix run of the 1-qubit classifier circuit, depolarising after every gate."""
    rho = np.array([[1, 0], [0, 0]], dtype=complex)
    gates = [_ry(x)]
    for layer in params:
        gates += [_ry(layer[0, 0]), _rz(layer[0, 1])]
    for gate in gates:
        rho = _depolarise(gate @ rho @ gate.conj().T, p1)
    probability_one = rho[1, 1].real
    # symmetric readout flip
    measured_one = probability_one * (1 - readout_error) + (1 - probability_one) * readout_error
    return 1 - 2 * measured_one


@pytest.mark.parametrize("layers", [1, 3])
def test_single_qubit_closed_form_matches_density_matrix(layers):
    config = CircuitConfig(num_qubits=1, num_layers=layers, dtype="complex128")
    circuit = BatchedCircuit(config)
    rng = np.random.default_rng(0)
    params = rng.normal(size=(3, layers, 1, 2))
    features = rng.normal(size=(3, 4, 1))
    noise = NodeNoise(torch.tensor([0.0, 0.02, 0.3]), torch.tensor([0.0, 0.5, 0.9]), torch.tensor([0.0, 0.05, 0.4]))
    ideal = circuit.expectations(torch.tensor(params), torch.tensor(features))
    noisy = apply_white_noise(ideal, expectation_shrink(noise, config))[..., 0].numpy()
    for node in range(3):
        for s in range(4):
            exact = _density_matrix_single_qubit(
                params[node],
                features[node, s, 0],
                noise.single_qubit_error[node].item(),
                noise.readout_error[node].item(),
            )
            assert noisy[node, s] == pytest.approx(exact, abs=1e-12)


def test_shrink_factor_hand_computed():
    config = CircuitConfig()  # n1 = 28, n2 = 12
    noise = NodeNoise([0.01], [0.02], [0.1])
    n1, n2 = gate_counts(config)
    expected = 0.99**n1 * 0.98**n2 * 0.8
    assert expectation_shrink(noise, config).item() == pytest.approx(expected, rel=1e-12)
    assert gate_survival(noise, config).item() == pytest.approx(0.99**28 * 0.98**12, rel=1e-12)


def _process_fidelity_numeric(g, num_qubits):
    """<Phi| (Lambda x I)(|Phi><Phi|) |Phi> for Lambda(rho) = g rho + (1 - g) tr(rho) I / D."""
    d = 2**num_qubits
    phi = np.eye(d).reshape(-1) / np.sqrt(d)  # maximally entangled state on system x reference
    rho = np.outer(phi, phi)
    reduced_reference = np.einsum("ijik->jk", rho.reshape(d, d, d, d))
    choi = g * rho + (1 - g) * np.kron(np.eye(d) / d, reduced_reference)
    return float(phi @ choi @ phi)


@pytest.mark.parametrize("num_qubits", [1, 2, 3])
@pytest.mark.parametrize("g", [0.0, 0.3, 0.95, 1.0])
def test_process_infidelity_matches_choi_state(num_qubits, g):
    value = process_infidelity(torch.tensor([g], dtype=torch.float64), num_qubits).item()
    assert value == pytest.approx(1 - _process_fidelity_numeric(g, num_qubits), abs=1e-12)


def test_validation_names_field_and_range():
    with pytest.raises(ConfigError, match=r"NodeNoise.readout_error must lie in \[0, 0.5\]"):
        NodeNoise(torch.zeros(2), torch.zeros(2), torch.tensor([0.1, 0.7]))
    with pytest.raises(ConfigError, match="one entry per node"):
        NodeNoise(torch.zeros(2), torch.zeros(3), torch.zeros(2))
    assert NodeNoise.noiseless(4).num_nodes == 4
    assert torch.all(expectation_shrink(NodeNoise.noiseless(4), CircuitConfig()) == 1)
