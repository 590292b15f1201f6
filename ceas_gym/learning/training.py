"""K local optimisation steps for all nodes at once, and evaluation of models on the test set.

Local training. Each call runs ``K`` full-batch steps on every node's own data. The objective of one step is
``sum_k L_k(theta_k)``, the sum of the nodes' mean binary cross-entropies, so one gradient pass gives every node the
gradient of its own loss (rows do not interact). For the ``Z_0`` readout the pass is the closed form of
:mod:`ceas_gym.learning.adjoint` (no autograd graph; the last layer's RZ angles get an exact zero, so Adam leaves
them in place); for ``readout="all"`` it is autograd through :meth:`QuantumClassifier.loss`. Optimisers act
elementwise per row:

* ``"sgd"``: ``theta <- theta - lr * grad``.
* ``"adam"``: Kingma & Ba (ICLR 2015) with bias correction, moments ``beta1``, ``beta2`` and ``eps``. The moment
  estimates start from zero at every call (every round), so a call depends only on its inputs.

The returned per-node loss is the loss at the returned parameters (one extra forward pass without gradient);
callers that do not need it pass ``final_loss=False`` to skip that pass (the loss is then None).

Evaluation. :func:`evaluate` scores one or more parameter rows on a shared test set (by default with the ideal,
noise-free circuit; pass ``shrink`` to score noisy execution): accuracy (probability, threshold ``p >= 1/2``)
and mean binary cross-entropy (nats).
"""

from __future__ import annotations

import dataclasses

import torch
from torch.nn import functional

from ceas_gym.config import check_choice, check_int, check_range
from ceas_gym.learning.adjoint import loss_gradient, supports_closed_form
from ceas_gym.learning.classifier import QuantumClassifier

OPTIMIZERS = ("sgd", "adam")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Local-training settings.

    Attributes:
        local_steps: Optimisation steps K per call (per round).
        learning_rate: Step size (radians per unit gradient for the angles).
        optimizer: ``"sgd"`` or ``"adam"``.
        beta1: Adam first-moment decay.
        beta2: Adam second-moment decay.
        eps: Adam denominator offset.
    """

    local_steps: int = 5
    learning_rate: float = 0.05
    optimizer: str = "adam"
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        check_int("TrainingConfig.local_steps", self.local_steps, 1, 10_000)
        check_range("TrainingConfig.learning_rate", self.learning_rate, 0.0, 100.0, low_inclusive=False)
        check_choice("TrainingConfig.optimizer", self.optimizer, OPTIMIZERS)
        check_range("TrainingConfig.beta1", self.beta1, 0.0, 1.0, high_inclusive=False)
        check_range("TrainingConfig.beta2", self.beta2, 0.0, 1.0, high_inclusive=False)
        check_range("TrainingConfig.eps", self.eps, 0.0, 1.0, low_inclusive=False)


@dataclasses.dataclass(frozen=True, eq=False)  # holds tensors/arrays: compare fields explicitly
class LocalTrainingResult:
    """Outcome of :func:`local_train`.

    Attributes:
        parameters: ``(num_nodes, P)`` parameters after K steps (detached).
        loss: ``(num_nodes,)`` mean binary cross-entropy (nats) at the returned parameters, or None when
            :func:`local_train` was asked not to compute it (``final_loss=False``).
    """

    parameters: torch.Tensor
    loss: torch.Tensor | None


@dataclasses.dataclass(frozen=True, eq=False)  # holds tensors/arrays: compare fields explicitly
class EvaluationResult:
    """Test-set scores per evaluated parameter row.

    Attributes:
        accuracy: ``(M,)`` fraction of test samples classified correctly (probability).
        loss: ``(M,)`` mean binary cross-entropy (nats).
    """

    accuracy: torch.Tensor
    loss: torch.Tensor


def local_train(
    model: QuantumClassifier,
    parameters: torch.Tensor,
    features: torch.Tensor,
    labels: torch.Tensor,
    config: TrainingConfig | None = None,
    shrink: torch.Tensor | None = None,
    final_loss: bool = True,
) -> LocalTrainingResult:
    """Run K local steps for every node at once.

    Args:
        model: The classifier.
        parameters: ``(num_nodes, P)`` starting rows.
        features: ``(num_nodes, S, n)`` each node's training features (radians).
        labels: ``(num_nodes, S)`` labels in {0, 1}.
        config: Optimiser settings.
        shrink: ``(num_nodes,)`` white-noise factors, or None for noise-free training.
        final_loss: Whether to evaluate the loss at the returned parameters (one extra forward pass).

    Returns:
        New parameters and per-node loss (None when ``final_loss`` is False).
    """
    config = config or TrainingConfig()
    if features.shape[0] != parameters.shape[0] or labels.shape != features.shape[:2]:
        raise ValueError(
            "parameters, features and labels must agree on (num_nodes, samples): got "
            f"{tuple(parameters.shape)}, {tuple(features.shape)}, {tuple(labels.shape)}"
        )
    theta = parameters.detach().to(model.device, model.dtype).clone()
    features = features.to(model.device, model.dtype)
    labels = labels.to(model.device)
    first_moment = torch.zeros_like(theta)
    second_moment = torch.zeros_like(theta)
    closed_form = supports_closed_form(model)
    for step in range(1, config.local_steps + 1):  # loop over optimisation steps, not nodes
        if closed_form:
            gradient = loss_gradient(model, theta, features, labels, shrink)
        else:
            theta.requires_grad_(True)
            loss = model.loss(theta, features, labels, shrink).sum()
            (gradient,) = torch.autograd.grad(loss, theta)
            theta = theta.detach()
        if config.optimizer == "sgd":
            theta -= config.learning_rate * gradient
            continue
        first_moment.mul_(config.beta1).add_(gradient, alpha=1 - config.beta1)
        second_moment.mul_(config.beta2).addcmul_(gradient, gradient, value=1 - config.beta2)
        corrected_first = first_moment / (1 - config.beta1**step)
        corrected_second = second_moment / (1 - config.beta2**step)
        theta -= config.learning_rate * corrected_first / (corrected_second.sqrt() + config.eps)
    if not final_loss:
        return LocalTrainingResult(parameters=theta, loss=None)
    with torch.no_grad():
        loss_after = model.loss(theta, features, labels, shrink)
    return LocalTrainingResult(parameters=theta, loss=loss_after)


def evaluate(
    model: QuantumClassifier,
    parameters: torch.Tensor,
    features: torch.Tensor,
    labels: torch.Tensor,
    shrink: torch.Tensor | None = None,
    stacked_unitary: torch.Tensor | None = None,
) -> EvaluationResult:
    """Score parameter rows on a shared test set.

    Args:
        model: The classifier.
        parameters: ``(P,)`` one model (for example the consensus) or ``(M, P)`` several.
        features: ``(S, n)`` test features (radians) shared by the rows, or ``(M, S, n)`` one test set per row.
        labels: ``(S,)`` test labels in {0, 1}, or ``(M, S)`` per row.
        shrink: ``(M,)`` white-noise factors, or None for the ideal circuit.
        stacked_unitary: ``(M, 2D, D)`` circuit unitaries of the rows when already built (see
            :meth:`QuantumClassifier.logits`).

    Returns:
        Accuracy and loss per row, shape ``(M,)`` (``(1,)`` for a single vector).
    """
    rows = parameters.reshape(1, -1) if parameters.dim() == 1 else parameters
    rows = rows.detach().to(model.device, model.dtype)
    batch = rows.shape[0]
    per_row = features.dim() == 3
    expanded_features = features.to(model.device, model.dtype)
    expanded_labels = labels.to(model.device)
    if not per_row:
        expanded_features = expanded_features.expand(batch, *features.shape)
        expanded_labels = expanded_labels.expand(batch, *labels.shape)
    with torch.no_grad():
        logits = model.logits(rows, expanded_features, shrink, stacked_unitary)  # one pass serves both scores
        accuracy = ((logits >= 0).long() == expanded_labels).to(model.dtype).mean(-1)
        loss = functional.binary_cross_entropy_with_logits(
            logits, expanded_labels.to(logits.dtype), reduction="none"
        ).mean(-1)
    return EvaluationResult(accuracy=accuracy, loss=loss)
