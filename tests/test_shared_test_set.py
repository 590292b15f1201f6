"""SharedTestSet: the honest nodes' models scored on their copy's test set through the quadratic-form products.

The reference is :func:`ceas_gym.learning.training.evaluate` row by row (amplitudes ``U x``, squared against the Z
signs: an independent route to the same readouts).
"""

import numpy as np
import pytest
import torch

from ceas_gym.learning.circuit import CircuitConfig
from ceas_gym.learning.classifier import QuantumClassifier
from ceas_gym.learning.shared_test_set import PAIRWISE_MAX_DIMENSION, SharedTestSet
from ceas_gym.learning.training import evaluate


def _case(qubits, readout, groups=3, models=4, samples=40, dtype="complex128", seed=0):
    model = QuantumClassifier(CircuitConfig(num_qubits=qubits, num_layers=2, readout=readout, dtype=dtype))
    generator = torch.Generator().manual_seed(seed)
    real = model.circuit.real_dtype
    params = torch.randn(groups, models, model.num_parameters, generator=generator, dtype=real)
    features = torch.rand(groups, samples, qubits, generator=generator, dtype=real) * np.pi
    labels = torch.randint(0, 2, (groups, samples), generator=generator)
    return model, params, features, labels


def _row_by_row(model, params, features, labels):
    g, h, _ = params.shape
    accuracy = torch.empty(g, h, dtype=torch.float64)
    loss = torch.empty(g, h, dtype=torch.float64)
    for group in range(g):
        for node in range(h):
            result = evaluate(model, params[group, node], features[group], labels[group])
            accuracy[group, node], loss[group, node] = float(result.accuracy[0]), float(result.loss[0])
    return accuracy, loss


@pytest.mark.parametrize("readout", ["first", "all"])
@pytest.mark.parametrize("qubits", [1, 2, 4])
def test_the_quadratic_form_scores_equal_the_row_by_row_evaluation(qubits, readout):
    model, params, features, labels = _case(qubits, readout)
    shared = SharedTestSet(model, features, labels, models_per_group=params.shape[1])
    assert shared.pairwise
    accuracy, loss = shared.evaluate(model, params)
    expected_accuracy, expected_loss = _row_by_row(model, params, features, labels)
    assert accuracy.shape == loss.shape == (3, 4)
    np.testing.assert_array_equal(accuracy.double().numpy(), expected_accuracy.numpy())
    np.testing.assert_allclose(loss.double().numpy(), expected_loss.numpy(), rtol=1e-10)


def test_a_subset_of_groups_is_scored_on_those_groups_test_sets():
    model, params, features, labels = _case(3, "first", groups=4)
    shared = SharedTestSet(model, features, labels, models_per_group=1)
    groups = torch.tensor([2, 0])
    accuracy, loss = shared.evaluate(model, params[groups, :1], groups)
    expected_accuracy, expected_loss = _row_by_row(model, params[groups, :1], features[groups], labels[groups])
    np.testing.assert_array_equal(accuracy.double().numpy(), expected_accuracy.numpy())
    np.testing.assert_allclose(loss.double().numpy(), expected_loss.numpy(), rtol=1e-10)


def test_a_group_scores_the_same_alone_and_in_a_batch():
    """A batch of one and a batch of E give the same numbers (what keeps single and batched environments equal)."""
    model, params, features, labels = _case(4, "first", groups=5, models=6, samples=60, dtype="complex64")
    batch = SharedTestSet(model, features, labels, models_per_group=6).evaluate(model, params)
    for group in range(5):
        alone = SharedTestSet(model, features[group : group + 1], labels[group : group + 1], 6)
        accuracy, loss = alone.evaluate(model, params[group : group + 1])
        np.testing.assert_array_equal(accuracy.numpy(), batch[0][group : group + 1].numpy())
        np.testing.assert_allclose(loss.numpy(), batch[1][group : group + 1].numpy(), rtol=2e-6)


def test_wide_circuits_with_few_models_score_row_by_row_and_agree():
    qubits = int(np.log2(PAIRWISE_MAX_DIMENSION)) + 1  # 64 amplitudes: the products would need (64 + 1) / 2 models
    model, params, features, labels = _case(qubits, "first", groups=2, models=3, samples=20)
    shared = SharedTestSet(model, features, labels, models_per_group=3)
    assert not shared.pairwise
    assert SharedTestSet(model, features, labels, models_per_group=33).pairwise
    accuracy, loss = shared.evaluate(model, params)
    expected_accuracy, expected_loss = _row_by_row(model, params, features, labels)
    np.testing.assert_array_equal(accuracy.double().numpy(), expected_accuracy.numpy())
    np.testing.assert_allclose(loss.double().numpy(), expected_loss.numpy(), rtol=1e-10)


def test_mismatched_shapes_are_refused():
    model, _, features, labels = _case(2, "first")
    with pytest.raises(ValueError, match="features must be"):
        SharedTestSet(model, features[0], labels[0], models_per_group=4)
