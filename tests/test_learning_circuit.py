import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ceas_gym.config import ConfigError
from ceas_gym.learning.circuit import BatchedCircuit, CircuitConfig, gate_counts
from ceas_gym.learning.circuit_tables import cnot_ring_pairs, gather_product, layer_entry_index
from ceas_gym.learning.parameter_shift import parameter_shift_jacobian
from ceas_gym.learning.reference import reference_expectations, reference_parameter_shift


def _circuit(n, layers, readout="all", dtype="complex128"):
    return BatchedCircuit(CircuitConfig(num_qubits=n, num_layers=layers, readout=readout, dtype=dtype))


def _random(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_batched_matches_dense_reference(n):
    circuit = _circuit(n, 3)
    nodes, samples = (3, 4) if n <= 4 else (2, 2)
    params, features = _random((nodes, 3, n, 2), n), _random((nodes, samples, n), 10 + n)
    batched = circuit.expectations(params, features).numpy()
    for node in range(nodes):
        reference = reference_expectations(params[node].numpy(), features[node].numpy())
        np.testing.assert_allclose(batched[node], reference, atol=1e-12)


def test_single_rotation_gives_cosine():
    # n = 1, L = 1: RY(theta) then RZ(phi) on RY(x)|0>; <Z> = cos(x + theta), independent of phi
    circuit = _circuit(1, 1)
    theta, phi, x = 0.83, -1.2, 0.4
    params = torch.tensor([[[[theta, phi]]]], dtype=torch.float64)
    value = circuit.expectations(params, torch.tensor([[[0.0], [x]]], dtype=torch.float64))
    assert value[0, 0, 0].item() == pytest.approx(math.cos(theta), abs=1e-14)
    assert value[0, 1, 0].item() == pytest.approx(math.cos(x + theta), abs=1e-14)


@pytest.mark.parametrize("n", [3, 4, 5])
def test_zero_parameters_one_layer_closed_form(n):
    # One CNOT ring maps bit b0 to b1 ^ ... ^ b_{n-1} (derived by hand), so Z0 -> Z1 Z2 ... Z_{n-1}
    # and on the product state <Z0> = prod_{q >= 1} cos(x_q).
    circuit = _circuit(n, 1)
    features = _random((1, 6, n), 3)
    value = circuit.expectations(torch.zeros(1, 1, n, 2, dtype=torch.float64), features)[0, :, 0]
    expected = torch.cos(features[0, :, 1:]).prod(-1)
    torch.testing.assert_close(value, expected, atol=1e-12, rtol=0)


def test_zero_parameters_two_qubits_keeps_qubit_zero():
    # For n = 2 the ring is CNOT(0, 1): Z0 commutes with it, <Z0> = cos(x0), <Z1> = cos(x0) cos(x1)
    circuit = _circuit(2, 1)
    features = _random((1, 5, 2), 4)
    value = circuit.expectations(torch.zeros(1, 1, 2, 2, dtype=torch.float64), features)[0]
    torch.testing.assert_close(value[:, 0], torch.cos(features[0, :, 0]), atol=1e-12, rtol=0)
    torch.testing.assert_close(value[:, 1], torch.cos(features[0]).prod(-1), atol=1e-12, rtol=0)


@pytest.mark.parametrize("layers", [1, 2, 3, 4])
def test_zero_parameters_many_layers_gf2_map(layers):
    # The ring is linear over GF(2): b' = A b. Then Z_q' = prod_{j: (A^L)[q, j] = 1} Z_j, and the product
    # state gives <Z_q> = prod over that support of cos(x_j).
    n = 4
    ring = np.eye(n, dtype=int)
    for control, target in cnot_ring_pairs(n):
        step = np.eye(n, dtype=int)
        step[target, control] = 1
        ring = (step @ ring) % 2
    power = np.linalg.matrix_power(ring, layers) % 2
    features = _random((1, 6, n), 5)
    value = _circuit(n, layers).expectations(torch.zeros(1, layers, n, 2, dtype=torch.float64), features)[0]
    for q in range(n):
        support = np.flatnonzero(power[q])
        expected = torch.cos(features[0][:, support]).prod(-1)
        torch.testing.assert_close(value[:, q], expected, atol=1e-12, rtol=0)


def test_autograd_parameter_shift_and_reference_agree():
    n, layers = 3, 2
    circuit = _circuit(n, layers)
    params, features = _random((2, layers, n, 2), 6), _random((2, 3, n), 7)
    shift = parameter_shift_jacobian(circuit, params, features)  # (B, S, R, P)
    flat = params.reshape(2, -1).clone().requires_grad_(True)
    values = circuit.expectations(flat.reshape(params.shape), features)
    autograd = torch.zeros_like(shift)
    for s in range(3):
        for q in range(n):
            (grad,) = torch.autograd.grad(values[:, s, q].sum(), flat, retain_graph=True)
            autograd[:, s, q] = grad
    torch.testing.assert_close(shift, autograd, atol=1e-6, rtol=0)
    for node in range(2):
        reference = reference_parameter_shift(params[node].numpy(), features[node].numpy())
        np.testing.assert_allclose(shift[node].numpy(), reference, atol=1e-6)


def test_fused_unitary_is_unitary_and_single_precision_agrees():
    params, features = _random((4, 3, 4, 2), 8), _random((4, 8, 4), 9)
    unitary = _circuit(4, 3).unitary(params)
    identity = torch.eye(16, dtype=unitary.dtype).expand_as(unitary)
    torch.testing.assert_close(unitary @ unitary.conj().transpose(-1, -2), identity, atol=1e-12, rtol=0)
    single = _circuit(4, 3, dtype="complex64").expectations(params.float(), features.float())
    double = _circuit(4, 3).expectations(params, features)
    torch.testing.assert_close(single.double(), double, atol=2e-5, rtol=0)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_expectations_are_bounded_and_first_readout_is_qubit_zero(seed):
    params, features = _random((2, 2, 3, 2), seed), _random((2, 4, 3), seed + 1)
    all_readouts = _circuit(3, 2).expectations(params, features)
    first = _circuit(3, 2, readout="first").expectations(params, features)
    assert first.shape == (2, 4, 1)
    assert torch.all(all_readouts.abs() <= 1 + 1e-12)
    torch.testing.assert_close(first[..., 0], all_readouts[..., 0])


def test_gate_counts_and_ring():
    assert cnot_ring_pairs(4) == [(0, 1), (1, 2), (2, 3), (3, 0)]
    assert cnot_ring_pairs(2) == [(0, 1)]
    assert cnot_ring_pairs(1) == []
    assert gate_counts(CircuitConfig()) == (4 + 2 * 4 * 3, 3 * 4)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ConfigError, match=r"CircuitConfig\.readout"):
        CircuitConfig(readout="middle")
    with pytest.raises(ConfigError, match=r"CircuitConfig\.dtype"):
        CircuitConfig(dtype="float32")
    circuit = _circuit(3, 2)
    with pytest.raises(ValueError, match="params must have shape"):
        circuit.unitary(torch.zeros(1, 3, 3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="num_qubits = 3"):
        circuit.encode(torch.zeros(1, 2, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    config = CircuitConfig(num_qubits=4, num_layers=3, readout="all")
    params, features = _random((5, 3, 4, 2), 1).float(), _random((5, 7, 4), 2).float()
    cpu = BatchedCircuit(config).expectations(params, features)
    gpu = BatchedCircuit(config, device="cuda").expectations(params.cuda(), features.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=0)


def _kron_reference_unitary(params):
    """Independent fused unitary from dense per-gate matrices (numpy, complex128), one node ``(L, n, 2)``."""
    layers, n = params.shape[:2]
    dimension = 2**n
    ring = np.zeros((dimension, dimension))
    bits = (np.arange(dimension)[:, None] >> (n - 1 - np.arange(n))) & 1
    for column in range(dimension):
        image = bits[column].copy()
        for control, target in cnot_ring_pairs(n):
            image[target] ^= image[control]
        ring[int(image @ (2 ** (n - 1 - np.arange(n)))), column] = 1
    unitary = np.eye(dimension, dtype=complex)
    for layer in range(layers):
        kron = np.ones((1, 1), dtype=complex)
        for qubit in range(n):
            a, b = params[layer, qubit]
            ry = np.array([[math.cos(a / 2), -math.sin(a / 2)], [math.sin(a / 2), math.cos(a / 2)]])
            rz = np.diag([np.exp(-0.5j * b), np.exp(0.5j * b)])
            kron = np.kron(kron, rz @ ry)
        unitary = ring @ kron @ unitary
    return unitary


@pytest.mark.parametrize(("n", "layers"), [(1, 2), (2, 1), (3, 2), (4, 3), (5, 1)])
def test_closed_form_unitary_matches_dense_kronecker_reference(n, layers):
    params = _random((3, layers, n, 2), 40 + n)
    unitary = _circuit(n, layers).unitary(params).numpy()
    for node in range(3):
        np.testing.assert_allclose(unitary[node], _kron_reference_unitary(params[node].numpy()), atol=1e-12)


def test_closed_form_unitary_gradient_matches_finite_differences():
    circuit = _circuit(3, 2, readout="first")
    params = _random((2, 2, 3, 2), 7).requires_grad_(True)
    features = _random((2, 5, 3), 8)
    assert torch.autograd.gradcheck(lambda p: circuit.expectations(p, features), (params,), atol=1e-7)


def test_encoding_cache_follows_in_place_changes_and_distinct_tensors():
    circuit = _circuit(3, 1)
    features = _random((2, 4, 3), 9)
    first = circuit.encode_real(features)
    torch.testing.assert_close(first.to(torch.complex128), circuit.encode(features))
    assert circuit.encode_real(features) is first  # cached: same tensor object
    features.mul_(0.5)  # in-place change bumps the version counter: must re-encode
    halved = circuit.encode_real(features)
    expected = torch.cos(features[..., 0] / 2)[..., None]  # amplitude of |000> = prod_q cos(x_q / 2)
    expected = expected * torch.cos(features[..., 1] / 2)[..., None] * torch.cos(features[..., 2] / 2)[..., None]
    torch.testing.assert_close(halved[..., :1], expected, atol=1e-14, rtol=0)
    other = features.clone()  # equal values, other storage: a fresh entry, same result
    torch.testing.assert_close(circuit.encode_real(other), halved)
    torch.testing.assert_close(halved.square().sum(-1), torch.ones(2, 4, dtype=torch.float64))  # normalised


@pytest.mark.parametrize(("n", "layers"), [(1, 2), (2, 1), (3, 2), (4, 3), (5, 2)])
def test_real_layer_factors_closed_form_backward_equals_autograd_through_the_construction(n, layers):
    """The analytic backward of ``RealLayerFactors`` against autograd differentiating the gathers and products."""
    circuit = _circuit(n, layers)
    ry = _random((3, layers, n), 60 + n).requires_grad_(True)
    cotangent = _random((3, layers, 2**n, 2**n), 70)
    (closed_form,) = torch.autograd.grad((circuit.real_layer_factors(ry) * cotangent).sum(), ry)
    through_construction = ry.detach().clone().requires_grad_(True)
    factors = circuit._real_layer_factors_forward(through_construction)
    (reference,) = torch.autograd.grad((factors * cotangent).sum(), through_construction)
    torch.testing.assert_close(closed_form, reference, atol=1e-12, rtol=0)
    params = _random((2, layers, n, 2), 75).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: torch.view_as_real(circuit.layer_unitaries(p)), (params,))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_pairwise_kronecker_factors_equal_the_one_stage_gather(n):
    circuit = _circuit(n, 2)
    ry = _random((3, 2, n), 80 + n)
    half = ry / 2
    table = torch.stack([torch.cos(half), -torch.sin(half), torch.sin(half), torch.cos(half)], dim=-1).flatten(-2)
    one_stage = gather_product(table, torch.as_tensor(layer_entry_index(n)), n).unflatten(-1, (2**n, 2**n))
    torch.testing.assert_close(circuit._real_layer_factors_forward(ry), one_stage, atol=1e-14, rtol=0)


@pytest.mark.parametrize("readout", ["first", "all"])
def test_a_row_computes_the_same_bits_alone_and_in_a_batch(readout):
    """The batched vector environment relies on it: a network's numbers must not depend on the batch around it."""
    circuit = _circuit(4, 3, readout=readout, dtype="complex64")
    params = _random((5, 3, 4, 2), 90).float()
    features = _random((5, 40, 4), 91).float()
    batched = circuit.expectations(params, features)
    for row in range(5):
        alone = circuit.expectations(params[row : row + 1], features[row : row + 1])
        assert torch.equal(batched[row], alone[0])


def test_first_readout_through_the_folded_observable_equals_qubit_zero_of_all_readouts():
    params, features = _random((4, 3, 5, 2), 92), _random((4, 7, 5), 93)
    first = _circuit(5, 3, readout="first").expectations(params, features)
    every = _circuit(5, 3, readout="all").expectations(params, features)
    torch.testing.assert_close(first[..., 0], every[..., 0], atol=1e-12, rtol=0)


def test_encoding_cache_keeps_the_per_round_sets_when_one_off_tensors_pass_through(monkeypatch):
    """A round encodes the same three sets, and every few rounds a fresh probe tensor: that must not evict them."""
    import ceas_gym.learning.circuit as circuit_module

    circuit = _circuit(3, 1)
    encoded_shapes = []
    original = circuit_module.real_product_states

    def counting(features, index):
        encoded_shapes.append(tuple(features.shape))
        return original(features, index)

    monkeypatch.setattr(circuit_module, "real_product_states", counting)
    train, probe, test = _random((2, 4, 3), 1), _random((2, 5, 3), 2), _random((1, 6, 3), 3)
    for round_index in range(12):
        circuit.encode_real(train)
        if round_index % 4 == 0:
            circuit.encode_real(_random((2, 1, 3), 10 + round_index))  # a new tensor every time
        circuit.encode_real(probe)
        circuit.encode_real(test)
    assert encoded_shapes.count((2, 4, 3)) == 1 and encoded_shapes.count((2, 5, 3)) == 1
    assert encoded_shapes.count((1, 6, 3)) == 1 and encoded_shapes.count((2, 1, 3)) == 3
