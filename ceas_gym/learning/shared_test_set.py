"""Scoring many models on the test set of their group: the honest nodes' models of E copies, each copy's on its own.

Every honest node of a copy is scored on the same test samples, so what depends on a sample (its encoded state) is
the copy's, and what depends on a model (its observables) is the node's. A noise-free readout is a quadratic form in
the encoded real state ``x`` (``D = 2^n`` amplitudes): ``<Z_q> = x^T M_q x`` with the real symmetric
``M_q = [Re U; Im U]^T diag(z_q, z_q) [Re U; Im U]``
(:meth:`~ceas_gym.learning.circuit.BatchedCircuit.readout_observables`). Written over the ``T = D (D + 1) / 2``
products ``x_i x_j`` (``i <= j``, off-diagonal entries of ``M`` counted twice),

    <Z_q>(x) = sum_t pairs_t(x) triangle_t(M_q),

so a copy's readouts of all ``H`` models on all ``S`` samples are one ``(S, T) @ (T, H R)`` matrix product instead
of ``H`` products ``(S, D) @ (D, D)`` and an elementwise pass over ``(H, S, D)``. The sample side (``pairs``) is
computed once per test set. It needs ``E S T`` numbers (about 1 MB per group of 500 samples at 5 qubits). Up to
:data:`PAIRWISE_MAX_DIMENSION` amplitudes, and beyond that wherever it needs no more memory than the ``E H S D`` of
the encoded states repeated per model (``(D + 1) / 2 <= H``), :class:`SharedTestSet` uses this form; otherwise it
scores the models row by row (:func:`~ceas_gym.learning.training.evaluate`). The two agree to float rounding; the
choice depends on the circuit and the group size only, never on the number of groups, so a batch of one and a batch
of E score the same way.
"""

from __future__ import annotations

import torch
from torch.nn import functional

from ceas_gym.learning.classifier import QuantumClassifier
from ceas_gym.learning.training import evaluate

__all__ = ["PAIRWISE_MAX_DIMENSION", "SharedTestSet"]

PAIRWISE_MAX_DIMENSION = 32
"""Circuits of up to this many amplitudes (5 qubits) always use the quadratic-form products."""


class SharedTestSet:
    """The test samples of E groups of models (every model of a group scored on its group's samples).

    Args:
        model: The classifier (its circuit encodes the samples).
        features: ``(E, S, n)`` test features (radians), one set per group.
        labels: ``(E, S)`` test labels in {0, 1}.
        models_per_group: ``H``, how many models each group scores (it picks the cheaper form, see the module).
    """

    def __init__(
        self, model: QuantumClassifier, features: torch.Tensor, labels: torch.Tensor, models_per_group: int
    ) -> None:
        if features.dim() != 3 or labels.shape != features.shape[:2]:
            raise ValueError(
                f"features must be (E, S, n) and labels (E, S), got {tuple(features.shape)} and {tuple(labels.shape)}"
            )
        self.features = features
        self.labels = labels.to(model.device)
        dimension = model.circuit.config.dimension
        self.pairwise = dimension <= PAIRWISE_MAX_DIMENSION or (dimension + 1) / 2 <= models_per_group
        """True where the quadratic-form products are used (see the module docstring)."""
        self._rows, self._cols = torch.triu_indices(dimension, dimension, device=model.device)
        if self.pairwise:
            encoded = model.circuit.encode_real(features)  # (E, S, D)
            outer = encoded[..., :, None] * encoded[..., None, :]  # (E, S, D, D)
            self._pairs = outer.flatten(-2).index_select(-1, self._rows * dimension + self._cols)  # (E, S, T)
            self._twice_off_diagonal = torch.where(self._rows == self._cols, 1.0, 2.0).to(encoded.dtype)

    def evaluate(
        self, model: QuantumClassifier, params: torch.Tensor, groups: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Test accuracy (probability) and loss (nats) of every model, each on its group's test set.

        Args:
            model: The classifier the set was built for.
            params: ``(G, H, P)`` parameter rows, ``H`` models of each of ``G`` groups.
            groups: ``(G,)`` which of the set's E groups each row block belongs to; None for all E in order.

        Returns:
            ``(accuracy, loss)``, each ``(G, H)``.
        """
        g, h, p = params.shape
        index = torch.arange(self.labels.shape[0], device=self.labels.device) if groups is None else groups
        labels = self.labels[index]  # (G, S)
        if not self.pairwise:
            features = self.features[index].repeat_interleave(h, dim=0)
            result = evaluate(model, params.reshape(g * h, p), features, labels.repeat_interleave(h, dim=0))
            return result.accuracy.reshape(g, h), result.loss.reshape(g, h)
        with torch.no_grad():
            angles, weights, bias = model.split(params.detach().to(model.device, model.dtype).reshape(g * h, p))
            observables = model.circuit.readout_observables(model.circuit.stacked_unitary(angles))  # (GH, R, D, D)
            readouts = observables.shape[1]
            triangle = observables[..., self._rows, self._cols] * self._twice_off_diagonal  # (GH, R, T)
            triangle = triangle.reshape(g, h * readouts, -1)
            expectation = torch.bmm(self._pairs[index], triangle.transpose(1, 2))  # (G, S, H R)
            expectation = expectation.reshape(g, -1, h, readouts).transpose(1, 2)  # (G, H, S, R)
            logits = (expectation * weights.reshape(g, h, 1, readouts)).sum(-1) + bias.reshape(g, h, 1)
            targets = labels[:, None, :].expand_as(logits)
            accuracy = ((logits >= 0).long() == targets).to(logits.dtype).mean(-1)
            loss = functional.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
        return accuracy, loss.mean(-1)
