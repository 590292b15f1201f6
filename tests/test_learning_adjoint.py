import itertools

import pytest
import torch

from ceas_gym.learning.adjoint import loss_gradient, supports_closed_form
from ceas_gym.learning.circuit import CircuitConfig
from ceas_gym.learning.classifier import QuantumClassifier
from ceas_gym.learning.parameter_shift import parameter_shift_jacobian
from ceas_gym.learning.training import TrainingConfig, local_train


def _problem(num_qubits, num_layers, dtype="complex128", nodes=4, samples=6, seed=0):
    model = QuantumClassifier(CircuitConfig(num_qubits=num_qubits, num_layers=num_layers, dtype=dtype))
    generator = torch.Generator().manual_seed(seed)
    real = model.dtype
    params = torch.randn(nodes, model.num_parameters, generator=generator, dtype=real)
    features = torch.rand(nodes, samples, num_qubits, generator=generator, dtype=real) * 3.0
    labels = (torch.rand(nodes, samples, generator=generator) < 0.5).long()
    shrink = 0.6 + 0.4 * torch.rand(nodes, generator=generator, dtype=real)
    return model, params, features, labels, shrink


def _autograd(model, params, features, labels, shrink):
    flat = params.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(model.loss(flat, features, labels, shrink).sum(), flat)
    return gradient


@pytest.mark.parametrize(("num_qubits", "num_layers"), list(itertools.product([1, 2, 3, 4, 5], [1, 2, 3, 4])))
@pytest.mark.parametrize("noisy", [False, True])
def test_closed_form_equals_autograd_through_the_fused_unitary(num_qubits, num_layers, noisy):
    model, params, features, labels, shrink = _problem(num_qubits, num_layers, seed=10 * num_qubits + num_layers)
    shrink = shrink if noisy else None
    expected = _autograd(model, params, features, labels, shrink)
    torch.testing.assert_close(loss_gradient(model, params, features, labels, shrink), expected, atol=1e-12, rtol=0)


def test_closed_form_equals_chain_rule_with_parameter_shift():
    """Independent of autograd: dL/dtheta = mean_s (p_s - y_s) w g d<Z_0>/dtheta by the two-term shift rule."""
    model, params, features, labels, shrink = _problem(4, 3)
    angles, weights, _ = model.split(params)
    jacobian = parameter_shift_jacobian(model.circuit, angles, features)[..., 0, :]  # (B, S, 2nL)
    residual = model.probabilities(params, features, shrink) - labels
    expected = (residual[..., None] * weights[:, None, :1] * shrink[:, None, None] * jacobian).mean(1)
    gradient = loss_gradient(model, params, features, labels, shrink)
    torch.testing.assert_close(gradient[:, : model.num_angles], expected, atol=1e-12, rtol=0)
    readout = model.circuit.expectations(angles, features)[..., 0] * shrink[:, None]
    torch.testing.assert_close(gradient[:, -2], (residual * readout).mean(1), atol=1e-12, rtol=0)  # head weight
    torch.testing.assert_close(gradient[:, -1], residual.mean(1), atol=1e-12, rtol=0)  # bias


def test_last_layer_rz_angles_get_exactly_zero_gradient():
    """A diagonal phase after the last CNOT ring cannot change Z-basis probabilities: the gradient is 0, not ~1e-8."""
    model, params, features, labels, shrink = _problem(4, 3, dtype="complex64")
    angles = model.split(loss_gradient(model, params, features, labels, shrink))[0]
    assert torch.count_nonzero(angles[:, -1, :, 1]) == 0
    assert torch.count_nonzero(angles[:, :-1]) == angles[:, :-1].numel()
    # so Adam, which divides by |g| + eps, leaves those angles where they are
    trained = local_train(model, params, features, labels, TrainingConfig(local_steps=3), shrink).parameters
    before, after = model.split(params)[0], model.split(trained)[0]
    assert torch.equal(after[:, -1, :, 1], before[:, -1, :, 1])


def test_a_rows_gradient_does_not_depend_on_its_batch():
    model, params, features, labels, shrink = _problem(4, 3, dtype="complex64", nodes=9)
    together = loss_gradient(model, params, features, labels, shrink)
    for row in (0, 4, 8):
        alone = loss_gradient(
            model, params[row : row + 1], features[row : row + 1], labels[row : row + 1], shrink[row : row + 1]
        )
        assert torch.equal(alone[0], together[row])


def test_all_qubit_readout_keeps_autograd():
    model = QuantumClassifier(CircuitConfig(num_qubits=3, num_layers=2, readout="all", dtype="complex128"))
    assert not supports_closed_form(model)
    _, params, features, labels, _ = _problem(3, 2)
    params = torch.cat([params[:, :-1], params[:, -3:]], dim=1)  # R = 3 head weights
    with pytest.raises(ValueError, match="readout='first' only"):
        loss_gradient(model, params, features, labels)
    config = TrainingConfig(local_steps=1, learning_rate=0.2, optimizer="sgd")
    trained = local_train(model, params, features, labels, config).parameters
    torch.testing.assert_close(trained, params - 0.2 * _autograd(model, params, features, labels, None))
