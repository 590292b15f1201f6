"""The batched round's per-row outputs: probe predictions, test evaluation, and per-copy means of link counts.

A row is one node of one copy (or one copy's consensus model); each row is evaluated on its own features, so a
row's result does not depend on the batch it is in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ceas_gym.learning.training import evaluate

__all__ = ["evaluate_rows", "mean_per_copy", "predict_rows"]


def predict_rows(model: Any, rows: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``P(class 1)`` of each parameter row on its own probe features: ``(B, P), (B, S, n) -> (B, S)``.

    Also returns the rows' circuit unitaries (:meth:`BatchedCircuit.stacked_unitary`, ``(B, 2D, D)``), which a row's
    results do not depend on the batch of, so a later evaluation of the same rows can reuse them.
    """
    rows = rows.detach().to(model.dtype)
    with torch.no_grad():
        stacked = model.circuit.stacked_unitary(model.split(rows)[0])
        return torch.sigmoid(model.logits(rows, features, stacked_unitary=stacked)), stacked


def evaluate_rows(
    model: Any,
    rows: torch.Tensor,
    features: torch.Tensor,
    labels: torch.Tensor,
    stacked_unitary: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Test accuracy and loss (nats) of row ``i`` on test set ``i``: ``(B, P), (B, S, n), (B, S)``.

    ``stacked_unitary`` passes the rows' circuit unitaries when already built (from :func:`predict_rows`).
    """
    result = evaluate(model, rows, features, labels, stacked_unitary=stacked_unitary)
    return result.accuracy.double().cpu().numpy(), result.loss.double().cpu().numpy()


def mean_per_copy(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``sums / counts`` per copy, NaN where a copy counted nothing (e.g. mean delivered fidelity, ``(E,)``)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
