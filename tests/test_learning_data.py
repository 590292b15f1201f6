import math

import numpy as np
import pytest
import torch

from ceas_gym.config import ConfigError, from_dict
from ceas_gym.learning.data import (
    DataConfig,
    bayes_accuracy,
    class_direction,
    load_digits_split,
    make_federated_data,
    make_gaussian_data,
)


def test_shapes_and_label_values():
    data = make_gaussian_data(np.full(3, 1.4), np.full(3, 0.03), 7, 4, np.random.default_rng(0))
    assert data.features.shape == (3, 7, 4)
    assert data.features.dtype == torch.float32
    assert data.labels.shape == (3, 7)
    assert data.labels.dtype == torch.int64
    assert set(data.labels.unique().tolist()) <= {0, 1}


def test_class_means_and_identity_covariance():
    samples, delta = 40_000, 1.4
    data = make_gaussian_data(np.array([delta]), np.array([0.0]), samples, 4, np.random.default_rng(1))
    x = data.features[0].double().numpy()
    y = data.labels[0].numpy()
    u = class_direction(4)
    for cls, sign in ((1, 1.0), (0, -1.0)):
        members = x[y == cls]
        # mean estimate has std 1/sqrt(n) per coordinate; allow 5 sigma
        assert np.allclose(members.mean(0), sign * delta * u, atol=5 / math.sqrt(len(members)))
        covariance = np.cov(members.T)
        assert np.allclose(covariance, np.eye(4), atol=0.05)


def test_label_noise_rate_and_bayes_accuracy():
    samples, delta, eta = 100_000, 1.6, 0.1
    data = make_gaussian_data(np.array([delta]), np.array([eta]), samples, 4, np.random.default_rng(2))
    x = data.features[0].double().numpy()
    y = data.labels[0].numpy()
    bayes_rule = (x @ class_direction(4) > 0).astype(int)
    accuracy = (bayes_rule == y).mean()
    expected = bayes_accuracy(delta, eta)
    # hand check of the closed form: Phi(1.6) = 0.945201
    assert expected == pytest.approx(0.9 * 0.945201 + 0.1 * 0.054799, abs=1e-5)
    assert abs(accuracy - expected) < 5 * math.sqrt(expected * (1 - expected) / samples)


def test_label_noise_flips_with_given_probability():
    # with a huge separation the clean class is sign(u.x), so mismatches are exactly the flips
    samples, eta = 100_000, 0.25
    data = make_gaussian_data(np.array([40.0]), np.array([eta]), samples, 3, np.random.default_rng(3))
    clean = (data.features[0].double().numpy() @ class_direction(3) > 0).astype(int)
    flipped = (clean != data.labels[0].numpy()).mean()
    assert abs(flipped - eta) < 5 * math.sqrt(eta * (1 - eta) / samples)


def test_per_node_separation_vectors_in_one_call():
    data = make_gaussian_data(np.array([3.0, 0.0]), np.array([0.0, 0.0]), 20_000, 2, np.random.default_rng(4))
    u = class_direction(2)
    projection = data.features.double().numpy() @ u
    signs = 2 * data.labels.numpy() - 1
    # E[sign * u.x] = delta for each node
    assert np.mean(signs[0] * projection[0]) == pytest.approx(3.0, abs=0.05)
    assert np.mean(signs[1] * projection[1]) == pytest.approx(0.0, abs=0.05)


def test_iid_versus_dirichlet_class_balance():
    rng = np.random.default_rng(5)
    nodes, samples = 400, 200
    iid = make_gaussian_data(np.full(nodes, 1.0), np.zeros(nodes), samples, 2, rng)
    skewed = make_gaussian_data(np.full(nodes, 1.0), np.zeros(nodes), samples, 2, rng, dirichlet_alpha=0.5)
    iid_balance = iid.labels.double().mean(1).numpy()
    skewed_balance = skewed.labels.double().mean(1).numpy()
    # IID: binomial variance 1/(4 S); Beta(a, a): 1/(4(2a+1)) + binomial part
    assert iid_balance.var() == pytest.approx(1 / (4 * samples), rel=0.3)
    assert skewed_balance.var() == pytest.approx(1 / (4 * 2) + 1 / (4 * samples) * (1 - 1 / 2), rel=0.3)


def test_federated_data_uses_presets_by_mask():
    config = DataConfig(samples_per_node=4000, test_samples=50, byzantine_label_noise=0.5)
    mask = np.array([False, True, False])
    data = make_federated_data(config, mask, np.random.default_rng(6))
    assert data.train.features.shape == (3, 4000, 4)
    assert data.test_features.shape == (50, 4)
    assert data.byzantine_mask.tolist() == [False, True, False]
    u = class_direction(4)
    signs = 2 * data.train.labels.double().numpy() - 1
    margin = np.mean(signs * (data.train.features.double().numpy() @ u), axis=1)
    # E[(2y-1) u.x] = (1 - 2 eta) delta: honest 0.94 * 1.4, Byzantine 0 (eta = 0.5)
    assert margin[0] == pytest.approx(0.94 * 1.4, abs=0.08)
    assert margin[1] == pytest.approx(0.0, abs=0.08)


def test_same_seed_same_data():
    config = DataConfig()
    a = make_federated_data(config, np.zeros(5, bool), np.random.default_rng(7))
    b = make_federated_data(config, np.zeros(5, bool), np.random.default_rng(7))
    assert torch.equal(a.train.features, b.train.features)
    assert torch.equal(a.test_labels, b.test_labels)


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"DataConfig\.honest_label_noise"):
        DataConfig(honest_label_noise=0.7)
    with pytest.raises(ConfigError, match="dirichlet_alpha"):
        DataConfig(dirichlet_alpha=0.0)
    with pytest.raises(ConfigError, match="unknown key 'samples'"):
        from_dict(DataConfig, {"samples": 3})
    with pytest.raises(ConfigError, match="same length"):
        make_gaussian_data(np.ones(2), np.ones(3) * 0.1, 3, 2, np.random.default_rng(0))


def test_digits_split_partitions_the_training_images():
    split = load_digits_split(10, 0.3, np.random.default_rng(0))
    sizes = [len(y) for y in split.client_labels]
    assert sum(sizes) + len(split.test_labels) == 1797
    assert len(split.test_labels) == round(0.2 * 1797)
    assert all(f.shape == (len(y), 64) for f, y in zip(split.client_features, split.client_labels, strict=True))
    assert max(float(f.max()) for f in split.client_features if len(f)) <= 1.0
    # non-IID: some client misses at least one class at alpha = 0.3
    assert any(len(np.unique(y)) < 10 for y in split.client_labels)


def test_digits_iid_split_is_balanced_and_reproducible():
    a = load_digits_split(5, math.inf, np.random.default_rng(1))
    b = load_digits_split(5, math.inf, np.random.default_rng(1))
    for ya, yb in zip(a.client_labels, b.client_labels, strict=True):
        assert np.array_equal(ya, yb)
        counts = np.bincount(ya, minlength=10)
        assert counts.min() >= 25  # about 144 training images per class / 5 clients
