"""The learning layer's hot paths are vectorised over nodes: as many torch operations for 40 nodes as for 400.

A loop over nodes shows up as operations that grow with the batch, whether it is written in Python or happens
inside a kernel (a batched matmul given an operand layout its batched routine cannot take runs one product per
node, with a select and a copy each). The profiler records both, so the counts below catch either. (Tiny batches
can take a different path inside a kernel, one scratch allocation more or less, hence 40 rather than 4.)
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch.profiler import profile

from ceas_gym.envs.batched_rows import evaluate_rows, predict_rows
from ceas_gym.learning.adjoint import loss_gradient
from ceas_gym.learning.classifier import QuantumClassifier
from ceas_gym.learning.stamps import qfi_trace_score
from ceas_gym.learning.training import TrainingConfig, local_train


def operation_count(call: Callable[[], object]) -> int:
    """Torch operations one call records (after a warm-up call), on every thread."""
    call()
    with profile() as recorded:
        call()
    return sum(event.count for event in recorded.key_averages())


def _inputs(nodes: int, samples: int = 8):
    model = QuantumClassifier()
    generator = torch.Generator().manual_seed(nodes)
    params = model.init_parameters(nodes, generator) + 0.3 * torch.randn(
        nodes, model.num_parameters, generator=generator
    )
    features = torch.rand(nodes, samples, model.config.num_qubits, generator=generator) * 3.0
    labels = (torch.rand(nodes, samples, generator=generator) < 0.5).long()
    shrink = 0.8 + 0.2 * torch.rand(nodes, generator=generator)
    return model, params, features, labels, shrink


CALLS = {
    "loss_gradient": lambda m, p, x, y, g: loss_gradient(m, p, x, y, g),
    "local_train": lambda m, p, x, y, g: local_train(m, p, x, y, TrainingConfig(local_steps=2), g, final_loss=False),
    "predict_rows": lambda m, p, x, y, g: predict_rows(m, p, x),
    "evaluate_rows": lambda m, p, x, y, g: evaluate_rows(m, p, x, y),
    "qfi_trace_score": lambda m, p, x, y, g: qfi_trace_score(m.circuit, m.split(p)[0], x[:, :2]),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_operations_do_not_grow_with_the_number_of_nodes(name):
    counts = []
    for nodes in (40, 400):
        inputs = _inputs(nodes)
        counts.append(operation_count(lambda inputs=inputs: CALLS[name](*inputs)))
    assert counts[0] == counts[1], f"{name}: {counts[0]} operations for 40 nodes, {counts[1]} for 400"
