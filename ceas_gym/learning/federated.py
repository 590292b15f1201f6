"""A plain classical federated-learning loop on scikit-learn's digits, batched over clients (second paper, Sec. 5).

This is the workload of the robustness benchmark (``evaluation/table3.py``), the classical counterpart of the
paper's MNIST experiment scaled to the bundled 8 x 8 digits (no download).

Model and conventions
---------------------
- **Data**: :func:`~ceas_gym.learning.data.load_digits_split` over ``num_clients`` clients, non-IID by a per-class
  Dirichlet(``dirichlet_alpha``) split (the paper uses LotteryFL's split with imbalance 0.75 on MNIST; a
  Dirichlet label skew plays that role here), 20 % of the 1,797 images held out as the test set.
- **Model**: a multilayer perceptron ``64 -> hidden -> 10`` with ReLU (``hidden = 0`` gives softmax
  regression), all its parameters flattened into one vector of P entries. Every client holds its own copy; the
  ``C`` copies are one ``(C, P)`` tensor and the forward pass is a batched matrix product, so local training of
  all clients is one computation (no Python loop over clients or samples).
- **Local training** (one round): every client starts from the global model and takes ``local_steps`` steps of
  SGD with momentum (fresh momentum buffer every round) and L2 weight decay on the mean cross-entropy of a
  mini-batch of ``batch_size`` samples drawn uniformly with replacement from its own data (paper: SGD,
  momentum 0.9, weight decay 1e-4, lr 0.05 on MNIST). A client without data sends a zero update.
- **Differential privacy** (optional, Sec. 4.3): with ``dp_clip_norm = C > 0`` every local step uses DP-SGD
  (:mod:`ceas_gym.learning.privacy`): per-sample gradients for all clients and samples in one nested
  ``vmap(grad(...))`` pass, each clipped to L2 norm C, summed per client, plus ``N(0, (sigma C)^2)`` per
  coordinate with ``sigma = dp_noise_multiplier``, divided by the batch size; weight decay is added after the
  noise (it depends on public parameters only). Each local step is one Gaussian release of the client's data;
  :func:`dp_epsilon` charges ``rounds x local_steps`` releases to the RDP accountant (no subsampling
  amplification claimed).
- **Update** (eq. 1): ``d_i = w_i - w_global``.
- **Malicious clients**: ``num_malicious`` clients drawn uniformly without replacement at the start. The attack is
  any name of :data:`~ceas_gym.learning.attacks.ATTACKS`; data-level attacks (``label-flip``: ``i -> 9 - i``)
  poison the malicious clients' training labels, update-level attacks (``sign-flip``, the paper's bit-flip;
  ``gaussian-fixed``, std 0.1) transform the malicious rows of the update stack every round. ``None`` or
  ``"none"`` gives no attack.
- **Aggregation**: :func:`~ceas_gym.learning.aggregators.aggregate` with ``weights=None`` (every client counts
  equally, eq. 2) and ``AggregationContext(num_faulty=num_malicious, previous_direction=previous aggregate,
  stakes=stakes)``; the rules are told the true number of malicious clients f, as in Alg. 2. Stakes start at 1
  and every client whose update enters the aggregate (``selected``) gains 1 per round (Alg. 3 line 19, every
  block taken as accepted); only the ``score`` rule uses them (eq. 10).
- **Global step** (eq. 2): ``w <- w + aggregate``. Test accuracy (a probability) is measured after every round.

Randomness: the split and the choice of malicious clients come from ``numpy.random.default_rng(seed)``; model
initialisation, mini-batches and attack noise from ``torch.Generator().manual_seed(seed)``. The same seed
gives the same run bit for bit on one machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.func import grad, vmap

from ceas_gym.config import ConfigError, check_int, check_range
from ceas_gym.learning.aggregators import AGGREGATORS, AggregationContext, aggregate
from ceas_gym.learning.attacks import ATTACKS, Attack, make_attack
from ceas_gym.learning.data import load_digits_split
from ceas_gym.learning.privacy import add_gaussian_noise, clip_per_sample, rdp_epsilon

__all__ = [
    "NUM_CLASSES",
    "NUM_FEATURES",
    "ClientData",
    "FederatedConfig",
    "FederatedResult",
    "batched_logits",
    "build_client_data",
    "dp_epsilon",
    "initial_parameters",
    "local_updates",
    "num_model_parameters",
    "run_federated",
]

NUM_FEATURES = 64
NUM_CLASSES = 10


@dataclass(frozen=True)
class FederatedConfig:
    """Settings of one federated run.

    Attributes:
        num_clients: Clients C (>= 3).
        num_malicious: Malicious clients f (0 <= f < C).
        attack: Attack name from ATTACKS, or "none".
        aggregator: Aggregator name from AGGREGATORS.
        rounds: Communication rounds (rounds).
        local_steps: Local SGD steps per round.
        batch_size: Mini-batch size (samples).
        learning_rate: SGD step size.
        momentum: SGD momentum in [0, 1).
        weight_decay: L2 coefficient (per unit squared parameter).
        hidden: Hidden units of the MLP; 0 for softmax regression.
        dirichlet_alpha: Concentration of the non-IID split (> 0; inf for IID).
        test_fraction: Held-out fraction of the digits (probability).
        last_rounds: Window (rounds) over which the reported mean accuracy is averaged.
        dp_clip_norm: Per-sample clipping bound C (gradient units); 0 disables differential privacy.
        dp_noise_multiplier: sigma, noise std over C (>= 0; needs ``dp_clip_norm > 0`` when positive).
    """

    num_clients: int = 50
    num_malicious: int = 0
    attack: str = "none"
    aggregator: str = "fedavg"
    rounds: int = 100
    local_steps: int = 5
    batch_size: int = 16
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    hidden: int = 32
    dirichlet_alpha: float = 1.0
    test_fraction: float = 0.2
    last_rounds: int = 10
    dp_clip_norm: float = 0.0
    dp_noise_multiplier: float = 0.0

    def __post_init__(self) -> None:
        check_int("FederatedConfig.num_clients", self.num_clients, 3)
        check_int("FederatedConfig.num_malicious", self.num_malicious, 0, self.num_clients - 1)
        if self.attack != "none" and self.attack not in ATTACKS.names():
            raise ConfigError(
                f"FederatedConfig.attack = {self.attack!r} is not allowed; allowed: none, {', '.join(ATTACKS.names())}"
            )
        if self.aggregator not in AGGREGATORS.names():
            raise ConfigError(
                f"FederatedConfig.aggregator = {self.aggregator!r} is not allowed; allowed: "
                f"{', '.join(AGGREGATORS.names())}"
            )
        check_int("FederatedConfig.rounds", self.rounds, 1)
        check_int("FederatedConfig.local_steps", self.local_steps, 1)
        check_int("FederatedConfig.batch_size", self.batch_size, 1)
        check_range("FederatedConfig.learning_rate", self.learning_rate, 0.0, 10.0, low_inclusive=False)
        check_range("FederatedConfig.momentum", self.momentum, 0.0, 1.0, high_inclusive=False)
        check_range("FederatedConfig.weight_decay", self.weight_decay, 0.0, 1.0)
        check_int("FederatedConfig.hidden", self.hidden, 0)
        check_range("FederatedConfig.dirichlet_alpha", self.dirichlet_alpha, 0.0, None, low_inclusive=False)
        check_range(
            "FederatedConfig.test_fraction", self.test_fraction, 0.0, 1.0, low_inclusive=False, high_inclusive=False
        )
        check_int("FederatedConfig.last_rounds", self.last_rounds, 1, self.rounds)
        check_range("FederatedConfig.dp_clip_norm", self.dp_clip_norm, 0.0, None)
        check_range("FederatedConfig.dp_noise_multiplier", self.dp_noise_multiplier, 0.0, None)
        if self.dp_noise_multiplier > 0 and self.dp_clip_norm == 0:
            raise ConfigError(
                "FederatedConfig.dp_noise_multiplier > 0 needs FederatedConfig.dp_clip_norm > 0; allowed: set both"
            )


@dataclass(frozen=True)
class ClientData:
    """Every client's training set padded to one tensor, plus the test set.

    Attributes:
        features: ``(C, N_max, 64)`` pixel intensities in [0, 1]; rows past a client's count are zero padding.
        labels: ``(C, N_max)`` int64 labels (possibly poisoned); padding rows are 0.
        counts: ``(C,)`` int64 samples per client.
        test_features: ``(N_test, 64)``.
        test_labels: ``(N_test,)``.
        malicious: ``(C,)`` bool mask of malicious clients.
    """

    features: torch.Tensor
    labels: torch.Tensor
    counts: torch.Tensor
    test_features: torch.Tensor
    test_labels: torch.Tensor
    malicious: torch.Tensor


@dataclass(frozen=True, eq=False)
class FederatedResult:
    """Outcome of one run.

    Attributes:
        config: The run's settings.
        seed: The run's seed.
        accuracy: Test accuracy after every round, shape ``(rounds,)`` (probabilities).
        final_accuracy: Test accuracy after the last round (probability).
        mean_last_accuracy: Mean test accuracy over the last ``last_rounds`` rounds (probability).
        malicious_selected_fraction: Mean over rounds of the fraction of selected updates that were malicious.
        malicious: Indices of the malicious clients.
    """

    config: FederatedConfig
    seed: int
    accuracy: np.ndarray
    final_accuracy: float
    mean_last_accuracy: float
    malicious_selected_fraction: float
    malicious: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def num_model_parameters(hidden: int) -> int:
    """P, the parameters of the ``64 -> hidden -> 10`` MLP (or of softmax regression when ``hidden = 0``)."""
    if hidden == 0:
        return (NUM_FEATURES + 1) * NUM_CLASSES
    return (NUM_FEATURES + 1) * hidden + (hidden + 1) * NUM_CLASSES


def _unflatten(params: torch.Tensor, hidden: int) -> list[torch.Tensor]:
    """Views of the flat ``(C, P)`` parameters as ``[W1 (C,64,h), b1 (C,h), W2 (C,h,10), b2 (C,10)]``."""
    c = params.shape[0]
    layers = [(NUM_FEATURES, NUM_CLASSES)] if hidden == 0 else [(NUM_FEATURES, hidden), (hidden, NUM_CLASSES)]
    views: list[torch.Tensor] = []
    offset = 0
    for fan_in, fan_out in layers:
        views.append(params[:, offset : offset + fan_in * fan_out].reshape(c, fan_in, fan_out))
        offset += fan_in * fan_out
        views.append(params[:, offset : offset + fan_out])
        offset += fan_out
    return views


def batched_logits(params: torch.Tensor, features: torch.Tensor, hidden: int) -> torch.Tensor:
    """Logits of C models on C batches: ``params (C, P)``, ``features (C, B, 64)`` -> ``(C, B, 10)``."""
    views = _unflatten(params, hidden)
    activation = features
    for layer in range(0, len(views), 2):
        activation = torch.baddbmm(views[layer + 1][:, None, :], activation, views[layer])
        if layer + 2 < len(views):
            activation = torch.relu(activation)
    return activation


def initial_parameters(hidden: int, generator: torch.Generator) -> torch.Tensor:
    """Flat ``(P,)`` initial parameters: weights ``U(+-1/sqrt(fan_in))`` (PyTorch default), zero biases."""
    params = torch.zeros(1, num_model_parameters(hidden))
    views = _unflatten(params, hidden)
    for layer in range(0, len(views), 2):
        weight = views[layer]
        bound = 1.0 / math.sqrt(weight.shape[1])
        weight.copy_((2 * torch.rand(weight.shape, generator=generator) - 1) * bound)
    return params[0]


def build_client_data(config: FederatedConfig, rng: np.random.Generator, attack: Attack | None) -> ClientData:
    """Split the digits, pick the malicious clients and poison their labels for a data-level attack.

    Args:
        config: The run's settings.
        rng: Source of the split and of the malicious choice.
        attack: The attack (its ``poison_labels`` is applied to malicious clients), or None.

    Returns:
        The padded client tensors and the test set.
    """
    split = load_digits_split(config.num_clients, config.dirichlet_alpha, rng, test_fraction=config.test_fraction)
    malicious = np.zeros(config.num_clients, dtype=bool)
    malicious[rng.choice(config.num_clients, size=config.num_malicious, replace=False)] = True
    counts = np.array([labels.size for labels in split.client_labels], dtype=np.int64)
    n_max = max(1, int(counts.max()))
    features = np.zeros((config.num_clients, n_max, NUM_FEATURES), dtype=np.float32)
    labels = np.zeros((config.num_clients, n_max), dtype=np.int64)
    for client, (x, y) in enumerate(zip(split.client_features, split.client_labels, strict=True)):  # set-up only
        features[client, : y.size] = x
        labels[client, : y.size] = y
    label_tensor = torch.from_numpy(labels)
    mask = torch.from_numpy(malicious)
    if attack is not None and attack.data_level and config.num_malicious:
        label_tensor[mask] = attack.poison_labels(label_tensor[mask], NUM_CLASSES)
    return ClientData(
        features=torch.from_numpy(features),
        labels=label_tensor,
        counts=torch.from_numpy(counts),
        test_features=torch.from_numpy(split.test_features),
        test_labels=torch.from_numpy(split.test_labels),
        malicious=mask,
    )


def _per_sample_gradients(
    params: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, hidden: int
) -> torch.Tensor:
    """Per-sample gradients ``(C, B, P)`` of the cross-entropy for every client and sample (nested vmap)."""

    def sample_loss(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = batched_logits(flat[None], x[None, None], hidden)[0]
        return torch.nn.functional.cross_entropy(logits, y[None])

    per_client = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    return vmap(per_client, in_dims=(0, 0, 0))(params, features, labels)


def _dp_gradients(
    params: torch.Tensor,
    features: torch.Tensor,
    labels: torch.Tensor,
    config: FederatedConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """DP-SGD mean gradients ``(C, P)``: clip each per-sample gradient to C, sum, add ``N(0, (sigma C)^2)``, / B."""
    c, b = labels.shape
    per_sample = _per_sample_gradients(params, features, labels, config.hidden)
    clipped = clip_per_sample(per_sample.reshape(c * b, -1), config.dp_clip_norm).reshape(c, b, -1).sum(dim=1)
    if config.dp_noise_multiplier > 0:
        clipped = add_gaussian_noise(clipped, config.dp_noise_multiplier * config.dp_clip_norm, generator)
    return clipped / b


def dp_epsilon(config: FederatedConfig, delta: float) -> float:
    """Privacy loss epsilon of one client's data after the whole run (RDP, ``rounds x local_steps`` releases).

    Args:
        config: Settings with ``dp_noise_multiplier > 0``.
        delta: Target delta in (0, 1).

    Returns:
        epsilon (inf when no noise is added).
    """
    if config.dp_noise_multiplier == 0:
        return math.inf
    return rdp_epsilon(config.dp_noise_multiplier, config.rounds * config.local_steps, delta)


def local_updates(
    global_params: torch.Tensor, data: ClientData, config: FederatedConfig, generator: torch.Generator
) -> torch.Tensor:
    """All clients' local training from the global model; returns the updates ``d_i = w_i - w`` (C, P).

    Args:
        global_params: Flat global parameters, shape ``(P,)``.
        data: The padded client data.
        config: Step count, batch size, learning rate, momentum, weight decay and model width.
        generator: Source of the mini-batch indices.

    Returns:
        The update stack, shape ``(C, P)``; all-zero rows for clients without data.
    """
    c = data.counts.shape[0]
    has_data = (data.counts > 0).to(global_params.dtype)
    params = global_params.expand(c, -1).clone().requires_grad_(True)
    velocity = torch.zeros_like(params)
    rows = torch.arange(c)[:, None]
    for _ in range(config.local_steps):  # sequential in time, batched over clients
        draw = torch.rand(c, config.batch_size, generator=generator)
        index = torch.minimum((draw * data.counts[:, None]).long(), (data.counts[:, None] - 1).clamp(min=0))
        features, labels = data.features[rows, index], data.labels[rows, index]
        if config.dp_clip_norm > 0:
            gradient = _dp_gradients(params.detach(), features, labels, config, generator) * has_data[:, None]
        else:
            logits = batched_logits(params, features, config.hidden)
            losses = torch.nn.functional.cross_entropy(
                logits.reshape(-1, NUM_CLASSES), labels.reshape(-1), reduction="none"
            ).reshape(c, config.batch_size)
            total = (losses.mean(dim=1) * has_data).sum()
            (gradient,) = torch.autograd.grad(total, params)
        with torch.no_grad():
            gradient = gradient + config.weight_decay * params * has_data[:, None]
            velocity = config.momentum * velocity + gradient
            params = (params - config.learning_rate * velocity).requires_grad_(True)
    return params.detach() - global_params


def _accuracy(params: torch.Tensor, data: ClientData, hidden: int) -> float:
    logits = batched_logits(params[None, :], data.test_features[None], hidden)[0]
    return float((logits.argmax(dim=1) == data.test_labels).double().mean())


def run_federated(config: FederatedConfig, seed: int) -> FederatedResult:
    """Run ``config.rounds`` rounds of federated training under attack and aggregation rule of ``config``.

    Args:
        config: The run's settings.
        seed: Seed of every random choice of the run (>= 0).

    Returns:
        The accuracy trajectory and summaries.
    """
    check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    attack = None if config.attack == "none" else make_attack(config.attack)
    data = build_client_data(config, rng, attack)
    params = initial_parameters(config.hidden, generator)
    stakes = torch.ones(config.num_clients, dtype=params.dtype)
    previous: torch.Tensor | None = None
    accuracy = np.zeros(config.rounds)
    malicious_share = np.zeros(config.rounds)
    mask = data.malicious
    for round_index in range(config.rounds):
        updates = local_updates(params, data, config, generator)
        if attack is not None and not attack.data_level and config.num_malicious:
            updates[mask] = attack(updates[mask], round_index, generator)
        context = AggregationContext(num_faulty=config.num_malicious, previous_direction=previous, stakes=stakes)
        result = aggregate(config.aggregator, updates, None, context)
        params = params + result.aggregate
        previous = result.aggregate
        stakes[result.selected] += 1.0  # Alg. 3 line 19: contributors of an accepted block gain stake
        malicious_share[round_index] = float(mask[result.selected].double().mean())
        accuracy[round_index] = _accuracy(params, data, config.hidden)
    return FederatedResult(
        config=config,
        seed=seed,
        accuracy=accuracy,
        final_accuracy=float(accuracy[-1]),
        mean_last_accuracy=float(accuracy[-config.last_rounds :].mean()),
        malicious_selected_fraction=float(malicious_share.mean()),
        malicious=np.flatnonzero(mask.numpy()),
    )
