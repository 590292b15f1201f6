import math

import numpy as np
import pytest
import torch

from ceas_gym.config import ConfigError
from ceas_gym.learning.circuit import CircuitConfig
from ceas_gym.learning.classifier import InitConfig, QuantumClassifier
from ceas_gym.learning.data import DataConfig, make_federated_data
from ceas_gym.learning.parameter_shift import parameter_shift_jacobian
from ceas_gym.learning.training import TrainingConfig, evaluate, local_train

DOUBLE = CircuitConfig(num_qubits=3, num_layers=2, dtype="complex128")


def _setup(nodes=3, samples=6, seed=0):
    model = QuantumClassifier(DOUBLE)
    params = torch.randn(
        nodes, model.num_parameters, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    rng = np.random.default_rng(seed)
    features = torch.tensor(rng.normal(size=(nodes, samples, 3)))
    labels = torch.tensor(rng.integers(0, 2, size=(nodes, samples)))
    return model, params, features, labels


def test_split_join_roundtrip_and_layout():
    model = QuantumClassifier(CircuitConfig(readout="all"))
    assert model.num_parameters == 2 * 4 * 3 + 4 + 1
    flat = torch.arange(3 * model.num_parameters, dtype=torch.float32).reshape(3, -1)
    angles, weights, bias = model.split(flat)
    assert angles.shape == (3, 3, 4, 2)
    assert angles[1, 0, 0, 1].item() == flat[1, 1].item()  # row-major (L, n, 2)
    assert torch.equal(weights, flat[:, 24:28])
    assert torch.equal(bias, flat[:, 28])
    assert torch.equal(model.join(angles, weights, bias), flat)
    with pytest.raises(ValueError, match="flat parameters must have shape"):
        model.split(flat[:, :-1])


def test_init_rows_identical_and_seeded():
    model = QuantumClassifier()
    a = model.init_parameters(4, torch.Generator().manual_seed(3), InitConfig(head_weight=1.5))
    b = model.init_parameters(4, torch.Generator().manual_seed(3), InitConfig(head_weight=1.5))
    assert torch.equal(a, b)
    assert torch.equal(a, a[:1].expand_as(a))
    _, weights, bias = model.split(a)
    assert torch.all(weights == 1.5) and torch.all(bias == 0)


def test_loss_matches_hand_computed_bce():
    model, params, features, labels = _setup()
    shrink = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    angles, weights, bias = model.split(params)
    z = model.circuit.expectations(angles, features)[..., 0] * shrink[:, None]
    p = 1 / (1 + torch.exp(-(weights[:, :1] * z + bias[:, None])))
    expected = -(labels * torch.log(p) + (1 - labels) * torch.log(1 - p)).mean(-1)
    torch.testing.assert_close(model.loss(params, features, labels, shrink), expected)
    # a node with shrink 0 predicts sigmoid(b) for every sample
    torch.testing.assert_close(model.probabilities(params, features, shrink)[2], torch.sigmoid(bias[2]).expand(6))


def test_autograd_gradient_matches_chain_rule_with_parameter_shift():
    model, params, features, labels = _setup()
    shrink = torch.tensor([0.9, 0.6, 0.3], dtype=torch.float64)
    flat = params.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.loss(flat, features, labels, shrink).sum(), flat)
    angles, weights, _ = model.split(params)
    jacobian = parameter_shift_jacobian(model.circuit, angles, features)[..., 0, :]  # (B, S, P_c)
    residual = model.probabilities(params, features, shrink) - labels  # dBCE/dlogit
    expected = (residual[..., None] * weights[:, None, :1] * shrink[:, None, None] * jacobian).mean(1)
    torch.testing.assert_close(grad[:, : model.num_angles], expected, atol=1e-10, rtol=0)


def test_one_sgd_step_is_gradient_step_and_rows_are_independent():
    model, params, features, labels = _setup()
    config = TrainingConfig(local_steps=1, learning_rate=0.3, optimizer="sgd")
    result = local_train(model, params, features, labels, config)
    flat = params.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.loss(flat, features, labels).sum(), flat)
    torch.testing.assert_close(result.parameters, params - 0.3 * grad)
    torch.testing.assert_close(result.loss, model.loss(result.parameters, features, labels))
    # changing node 2's data leaves nodes 0 and 1 untouched
    other = features.clone()
    other[2] += 1.0
    changed = local_train(model, params, other, labels, config)
    torch.testing.assert_close(changed.parameters[:2], result.parameters[:2], atol=0, rtol=0)


def test_first_adam_step_moves_by_learning_rate_times_sign():
    model, params, features, labels = _setup()
    config = TrainingConfig(local_steps=1, learning_rate=0.01, optimizer="adam", eps=1e-12)
    result = local_train(model, params, features, labels, config)
    flat = params.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.loss(flat, features, labels).sum(), flat)
    # bias-corrected first step: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps). Entries whose gradient
    # is zero in exact arithmetic (the last layer's RZ angles, and here qubit 0's last RY) carry rounding noise of
    # ~1e-17 in any implementation, which that ratio turns into an arbitrary step: compare the others.
    meaningful = grad.abs() > 1e-10
    expected = params - 0.01 * grad / (grad.abs() + 1e-12)
    torch.testing.assert_close(result.parameters[meaningful], expected[meaningful], atol=1e-12, rtol=0)
    # the last layer's RZ gradient is exactly zero (closed form), so Adam leaves those angles in place
    assert torch.equal(model.split(result.parameters)[0][:, -1, :, 1], model.split(params)[0][:, -1, :, 1])
    assert (result.parameters - params).abs().max().item() == pytest.approx(0.01, rel=1e-6)


def test_evaluate_hand_computed_accuracy():
    # zero angles, n = 2: <Z0> = cos(x0); head a = 1, b = 0 -> predict 1 iff cos(x0) >= 0
    model = QuantumClassifier(CircuitConfig(num_qubits=2, num_layers=1, dtype="complex128"))
    flat = torch.tensor([[0, 0, 0, 0, 1.0, 0.0]], dtype=torch.float64)
    features = torch.tensor([[0.1, 2.0], [2.0, 0.0], [-0.5, 1.0], [3.0, 3.0]], dtype=torch.float64)
    labels = torch.tensor([1, 1, 0, 0])
    result = evaluate(model, flat[0], features, labels)
    assert result.accuracy.item() == pytest.approx(0.5)  # predictions 1, 0, 1, 0
    cos = np.cos([0.1, 2.0, -0.5, 3.0])
    p = 1 / (1 + np.exp(-cos))
    expected_loss = -np.mean([math.log(p[0]), math.log(p[1]), math.log(1 - p[2]), math.log(1 - p[3])])
    assert result.loss.item() == pytest.approx(expected_loss, rel=1e-12)
    two = evaluate(model, torch.cat([flat, -flat]), features, labels)
    assert two.accuracy.tolist() == pytest.approx([0.5, 0.5])


def test_honest_nodes_reach_test_accuracy():
    nodes = 6
    model = QuantumClassifier()
    data = make_federated_data(DataConfig(test_samples=2000), np.zeros(nodes, bool), np.random.default_rng(0))
    params = model.init_parameters(nodes, torch.Generator().manual_seed(0))
    start = evaluate(model, params[0], data.test_features, data.test_labels).accuracy.item()
    for _ in range(10):
        result = local_train(model, params, data.train.features, data.train.labels, TrainingConfig(local_steps=5))
        params = result.parameters.mean(0, keepdim=True).expand(nodes, -1).clone()  # plain averaging
    final = evaluate(model, params[0], data.test_features, data.test_labels)
    assert final.accuracy.item() >= 0.80
    assert final.accuracy.item() > start


def test_training_config_errors():
    with pytest.raises(ConfigError, match=r"TrainingConfig\.optimizer"):
        TrainingConfig(optimizer="rmsprop")
    with pytest.raises(ConfigError, match=r"TrainingConfig\.local_steps"):
        TrainingConfig(local_steps=0)


def _noisy_rounds(seed, rounds, nodes=6):
    from ceas_gym.learning.noise import NodeNoise, expectation_shrink

    model = QuantumClassifier()
    data = make_federated_data(DataConfig(test_samples=2000), np.zeros(nodes, bool), np.random.default_rng(seed))
    errors = [0.01] * nodes
    shrink = expectation_shrink(NodeNoise(errors, errors, errors), model.config)  # about 0.66
    params = model.init_parameters(nodes, torch.Generator().manual_seed(seed))
    for _ in range(rounds):
        result = local_train(model, params, data.train.features, data.train.labels, TrainingConfig(), shrink)
        params = result.parameters.mean(0, keepdim=True).expand(nodes, -1).clone()
    return model, params, data, shrink


def test_same_seed_same_parameters_bit_for_bit():
    _, first, _, _ = _noisy_rounds(3, 2)
    _, second, _, _ = _noisy_rounds(3, 2)
    assert torch.equal(first, second)


def test_noisy_honest_nodes_still_learn():
    # 1 % gate and readout errors shrink <Z0> by about 0.66; the head weight compensates
    model, params, data, shrink = _noisy_rounds(1, 10)
    noisy = evaluate(model, params[0], data.test_features, data.test_labels, shrink[:1])
    assert noisy.accuracy.item() >= 0.80


def test_final_loss_can_be_skipped_without_changing_parameters():
    model = QuantumClassifier(CircuitConfig(num_qubits=2, num_layers=1, dtype="complex128"))
    generator = torch.Generator().manual_seed(3)
    params = model.init_parameters(3, generator) + 0.1 * torch.randn(3, model.num_parameters, generator=generator)
    features = torch.randn(3, 5, 2, generator=generator, dtype=torch.float64)
    labels = (torch.rand(3, 5, generator=generator) < 0.5).long()
    config = TrainingConfig(local_steps=2)
    full = local_train(model, params, features, labels, config)
    lean = local_train(model, params, features, labels, config, final_loss=False)
    assert lean.loss is None
    torch.testing.assert_close(lean.parameters, full.parameters, atol=0, rtol=0)
    torch.testing.assert_close(full.loss, model.loss(full.parameters, features, labels))
