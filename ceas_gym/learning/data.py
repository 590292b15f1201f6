"""Synthetic two-class Gaussian data per node, and a non-IID split of scikit-learn's ``load_digits``.

Model (CEAS Sec. IV; DESIGN.md section 4):

* Two classes in ``d`` dimensions (``d`` = number of qubits, one feature per qubit). Class ``y in {0, 1}`` has
  mean ``(2y - 1) * delta_c * u`` and identity covariance, where ``u = (1, ..., 1) / sqrt(d)`` is a fixed unit
  vector. The classes are therefore ``2 * delta_c`` apart along ``u``, the Bayes-optimal rule is
  ``y_hat = [u . x > 0]`` and the Bayes accuracy on clean labels is ``Phi(delta_c)`` (standard normal CDF).
  Features are used directly as rotation angles (radians) by the circuit.
* Label noise ``eta_y``: after sampling, each label is flipped independently with probability ``eta_y``, so the
  best achievable accuracy against the noisy labels is ``(1 - eta_y) Phi(delta_c) + eta_y (1 - Phi(delta_c))``.
* Presets: honest ``(delta_c, eta_y) = (1.4, 0.03)``, Byzantine ``(0.9, 0.25)``, test ``(1.6, 0.03)``
  (CEAS Sec. IV).
* Non-IID class balance: node ``k`` draws its probability of class 1, ``pi_k``, from ``Beta(alpha, alpha)``
  (the two-class Dirichlet), then each sample's clean class from ``Bernoulli(pi_k)``. ``alpha = inf`` means
  IID: ``pi_k = 1/2`` for every node. Small ``alpha`` gives strongly skewed nodes.
* Per-node ``delta_c`` and ``eta_y`` vectors let honest and Byzantine nodes be generated in one vectorised call.

All randomness comes from an explicitly passed :class:`numpy.random.Generator`; tensors are returned as torch
``float`` features and ``int64`` labels.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ceas_gym.config import ConfigError, check_int, check_range

HONEST_PRESET: tuple[float, float] = (1.4, 0.03)
"""(class separation delta_c, label-noise probability eta_y) of honest nodes, CEAS Sec. IV."""
BYZANTINE_PRESET: tuple[float, float] = (0.9, 0.25)
"""(delta_c, eta_y) of Byzantine nodes, CEAS Sec. IV."""
TEST_PRESET: tuple[float, float] = (1.6, 0.03)
"""(delta_c, eta_y) of the global test set, CEAS Sec. IV."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Configuration of the synthetic per-node data.

    Attributes:
        num_features: Feature dimension d (equal to the number of qubits of the classifier).
        samples_per_node: Training samples per node.
        test_samples: Samples in the global test set.
        dirichlet_alpha: Concentration of the per-node class balance ``Beta(alpha, alpha)``; ``inf`` is IID.
        honest_separation: delta_c of honest nodes (dimensionless, in units of the class standard deviation).
        honest_label_noise: eta_y of honest nodes (probability).
        byzantine_separation: delta_c of Byzantine nodes.
        byzantine_label_noise: eta_y of Byzantine nodes (probability).
        test_separation: delta_c of the test set.
        test_label_noise: eta_y of the test set (probability).
    """

    num_features: int = 4
    samples_per_node: int = 32
    test_samples: int = 2000
    dirichlet_alpha: float = math.inf
    honest_separation: float = HONEST_PRESET[0]
    honest_label_noise: float = HONEST_PRESET[1]
    byzantine_separation: float = BYZANTINE_PRESET[0]
    byzantine_label_noise: float = BYZANTINE_PRESET[1]
    test_separation: float = TEST_PRESET[0]
    test_label_noise: float = TEST_PRESET[1]

    def __post_init__(self) -> None:
        check_int("DataConfig.num_features", self.num_features, 1, 16)
        check_int("DataConfig.samples_per_node", self.samples_per_node, 1)
        check_int("DataConfig.test_samples", self.test_samples, 1)
        check_range("DataConfig.dirichlet_alpha", self.dirichlet_alpha, 0.0, None, low_inclusive=False)
        for name in ("honest_separation", "byzantine_separation", "test_separation"):
            check_range(f"DataConfig.{name}", getattr(self, name), 0.0, None)
        for name in ("honest_label_noise", "byzantine_label_noise", "test_label_noise"):
            check_range(f"DataConfig.{name}", getattr(self, name), 0.0, 0.5)


@dataclasses.dataclass(frozen=True, eq=False)  # holds tensors/arrays: compare fields explicitly
class NodeData:
    """Per-node training data.

    Attributes:
        features: ``(num_nodes, samples_per_node, num_features)`` float tensor (radians when encoded).
        labels: ``(num_nodes, samples_per_node)`` int64 tensor of (possibly noisy) labels in {0, 1}.
    """

    features: torch.Tensor
    labels: torch.Tensor


@dataclasses.dataclass(frozen=True, eq=False)  # holds tensors/arrays: compare fields explicitly
class FederatedData:
    """Training data for all nodes plus the global test set.

    Attributes:
        train: Per-node training data, honest and Byzantine rows together.
        test_features: ``(test_samples, num_features)`` float tensor.
        test_labels: ``(test_samples,)`` int64 tensor.
        byzantine_mask: ``(num_nodes,)`` bool tensor, True for Byzantine nodes.
    """

    train: NodeData
    test_features: torch.Tensor
    test_labels: torch.Tensor
    byzantine_mask: torch.Tensor


def class_direction(num_features: int) -> np.ndarray:
    """Return the fixed unit vector ``u = (1, ..., 1) / sqrt(d)`` along which the class means lie."""
    return np.full(num_features, 1.0 / math.sqrt(num_features))


def bayes_accuracy(separation: float, label_noise: float = 0.0) -> float:
    """Return the best achievable accuracy (probability) for given delta_c and eta_y.

    Args:
        separation: delta_c.
        label_noise: eta_y (probability).

    Returns:
        ``(1 - eta_y) Phi(delta_c) + eta_y (1 - Phi(delta_c))``.
    """
    clean = 0.5 * (1.0 + math.erf(separation / math.sqrt(2.0)))
    return (1.0 - label_noise) * clean + label_noise * (1.0 - clean)


def make_gaussian_data(
    separation: np.ndarray,
    label_noise: np.ndarray,
    samples_per_node: int,
    num_features: int,
    rng: np.random.Generator,
    *,
    dirichlet_alpha: float = math.inf,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> NodeData:
    """Sample two-class Gaussian data for every node in one vectorised call.

    Args:
        separation: ``(num_nodes,)`` delta_c per node (class means at ``+-delta_c u``).
        label_noise: ``(num_nodes,)`` eta_y per node (label-flip probability).
        samples_per_node: Samples per node.
        num_features: Dimension d.
        rng: Source of all randomness.
        dirichlet_alpha: Class-balance concentration; ``inf`` means IID (balance 1/2).
        dtype: Floating dtype of the features.
        device: Torch device of the returned tensors.

    Returns:
        The per-node features and noisy labels.

    Raises:
        ConfigError: If the vectors have different lengths or values out of range.
    """
    separation = np.asarray(separation, dtype=float).reshape(-1)
    label_noise = np.asarray(label_noise, dtype=float).reshape(-1)
    if separation.shape != label_noise.shape:
        raise ConfigError(
            f"separation and label_noise must have the same length, got {separation.size} and {label_noise.size}"
        )
    if np.any(separation < 0) or not np.all(np.isfinite(separation)):
        raise ConfigError("separation (delta_c) must be finite and >= 0 for every node")
    if np.any(label_noise < 0) or np.any(label_noise > 0.5):
        raise ConfigError("label_noise (eta_y) must lie in [0, 0.5] for every node")
    check_int("samples_per_node", samples_per_node, 1)
    check_int("num_features", num_features, 1)
    check_range("dirichlet_alpha", dirichlet_alpha, 0.0, None, low_inclusive=False)
    num_nodes = separation.size
    if math.isinf(dirichlet_alpha):
        balance = np.full(num_nodes, 0.5)
    else:
        balance = rng.beta(dirichlet_alpha, dirichlet_alpha, size=num_nodes)
    clean = rng.random((num_nodes, samples_per_node)) < balance[:, None]
    signs = np.where(clean, 1.0, -1.0)
    means = (signs * separation[:, None])[..., None] * class_direction(num_features)
    features = means + rng.standard_normal((num_nodes, samples_per_node, num_features))
    flipped = rng.random((num_nodes, samples_per_node)) < label_noise[:, None]
    labels = np.logical_xor(clean, flipped).astype(np.int64)
    return NodeData(
        features=torch.as_tensor(features, dtype=dtype, device=device),
        labels=torch.as_tensor(labels, device=device),
    )


def make_federated_data(
    config: DataConfig,
    byzantine_mask: np.ndarray | torch.Tensor,
    rng: np.random.Generator,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> FederatedData:
    """Generate honest and Byzantine training data in one call, plus the test set.

    Args:
        config: Data configuration (presets and sizes).
        byzantine_mask: ``(num_nodes,)`` booleans, True where a node is Byzantine.
        rng: Source of all randomness.
        dtype: Floating dtype of the features.
        device: Torch device of the returned tensors.

    Returns:
        Training data for all nodes, the test set and the mask.
    """
    mask = np.asarray(torch.as_tensor(byzantine_mask).cpu(), dtype=bool).reshape(-1)
    if mask.size == 0:
        raise ConfigError("byzantine_mask must name at least one node")
    separation = np.where(mask, config.byzantine_separation, config.honest_separation)
    label_noise = np.where(mask, config.byzantine_label_noise, config.honest_label_noise)
    train = make_gaussian_data(
        separation,
        label_noise,
        config.samples_per_node,
        config.num_features,
        rng,
        dirichlet_alpha=config.dirichlet_alpha,
        dtype=dtype,
        device=device,
    )
    test = make_gaussian_data(
        np.array([config.test_separation]),
        np.array([config.test_label_noise]),
        config.test_samples,
        config.num_features,
        rng,
        dtype=dtype,
        device=device,
    )
    return FederatedData(
        train=train,
        test_features=test.features[0],
        test_labels=test.labels[0],
        byzantine_mask=torch.as_tensor(mask, device=device),
    )


@dataclasses.dataclass(frozen=True, eq=False)  # holds tensors/arrays: compare fields explicitly
class DigitsSplit:
    """A client split of scikit-learn's 8x8 digits (10 classes, 64 pixel features scaled to [0, 1]).

    Attributes:
        client_features: One ``(n_k, 64)`` float32 array per client.
        client_labels: One ``(n_k,)`` int64 array per client.
        test_features: ``(n_test, 64)`` held-out features.
        test_labels: ``(n_test,)`` held-out labels.
        num_classes: Number of classes (10).
    """

    client_features: list[np.ndarray]
    client_labels: list[np.ndarray]
    test_features: np.ndarray
    test_labels: np.ndarray
    num_classes: int = 10


def load_digits_split(
    num_clients: int,
    alpha: float,
    generator: np.random.Generator,
    *,
    test_fraction: float = 0.2,
) -> DigitsSplit:
    """Split scikit-learn's bundled ``load_digits`` over clients, non-IID by a per-class Dirichlet.

    A random ``test_fraction`` of the 1,797 images is held out. For every class ``c`` the remaining images of
    that class are shuffled and cut into ``num_clients`` parts with proportions ``q_c ~ Dirichlet(alpha 1)``
    (the usual label-skew split of Hsu et al., arXiv:1909.06335, 2019). ``alpha = inf`` gives equal shares.
    Pixel values (0..16) are divided by 16. A client may end up with no images when ``alpha`` is small.

    Args:
        num_clients: Number of clients.
        alpha: Dirichlet concentration (> 0, ``inf`` for IID).
        generator: Source of all randomness.
        test_fraction: Held-out fraction (probability) in (0, 1).

    Returns:
        The client arrays and the held-out test set.
    """
    from sklearn.datasets import load_digits

    check_int("num_clients", num_clients, 1)
    check_range("alpha", alpha, 0.0, None, low_inclusive=False)
    check_range("test_fraction", test_fraction, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    digits = load_digits()
    features = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    order = generator.permutation(labels.size)
    num_test = round(test_fraction * labels.size)
    test_index, train_index = order[:num_test], order[num_test:]
    parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for cls in range(10):  # loop over the 10 classes, not over samples
        members = train_index[labels[train_index] == cls]
        members = generator.permutation(members)
        if math.isinf(alpha):
            shares = np.full(num_clients, 1.0 / num_clients)
        else:
            shares = generator.dirichlet(np.full(num_clients, alpha))
        cuts = np.round(np.cumsum(shares)[:-1] * members.size).astype(int)
        for client, chunk in enumerate(np.split(members, cuts)):
            parts[client].append(chunk)
    client_index = [np.sort(np.concatenate(chunks)) for chunks in parts]
    return DigitsSplit(
        client_features=[features[index] for index in client_index],
        client_labels=[labels[index] for index in client_index],
        test_features=features[test_index],
        test_labels=labels[test_index],
    )
