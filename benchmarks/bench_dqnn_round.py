"""Time one DQNN local-training step for all nodes: forward, gradient and update.

Default workload: N = 50 nodes x 32 samples, 4 qubits, 3 layers, readout <Z0>, sigmoid head, binary
cross-entropy, one SGD update (the work of one of the K local steps of a round). Ours: the batched fused-unitary
simulator of ``ceas_gym.learning`` (one autograd pass over all nodes). Side by side, when PennyLane is importable:
one ``default.qubit`` QNode with parameter broadcasting over all N x S = 1,600 (parameter set, sample)
evaluations, torch interface, backprop gradients, same loss and update.

Both run with the same torch intra-op thread count (``--threads``, default 1: the tensors of this workload are
small, and extra threads mostly add contention on a shared machine).

Usage::

    .venv/bin/python benchmarks/bench_dqnn_round.py --out results/bench_dqnn_round.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ceas_gym.learning.circuit import CircuitConfig
from ceas_gym.learning.classifier import QuantumClassifier
from ceas_gym.learning.data import DataConfig, make_federated_data
from ceas_gym.learning.noise import NodeNoise, expectation_shrink


def time_it(step: Callable[[], None], warmup: int, repeats: int) -> list[float]:
    """Return wall-clock seconds of ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def make_ours(model, params, features, labels, shrink, learning_rate):
    """Return a closure doing one forward + gradient + SGD update with the batched simulator."""
    state = {"params": params.clone()}

    def step() -> None:
        theta = state["params"].requires_grad_(True)
        loss = model.loss(theta, features, labels, shrink).sum()
        (gradient,) = torch.autograd.grad(loss, theta)
        state["params"] = (theta.detach() - learning_rate * gradient).detach()

    return step


def make_pennylane(qml, model, params, features, labels, shrink, learning_rate):
    """Return a closure doing the same step with one broadcast PennyLane default.qubit QNode."""
    num_qubits, num_layers = model.config.num_qubits, model.config.num_layers
    nodes, samples = labels.shape
    device = qml.device("default.qubit", wires=num_qubits)
    ring = [(q, (q + 1) % num_qubits) for q in range(num_qubits)]

    @qml.qnode(device, interface="torch", diff_method="backprop")
    def circuit(x, angles):
        for q in range(num_qubits):
            qml.RY(x[:, q], wires=q)
        for layer in range(num_layers):
            for q in range(num_qubits):
                qml.RY(angles[:, layer, q, 0], wires=q)
                qml.RZ(angles[:, layer, q, 1], wires=q)
            for control, target in ring:
                qml.CNOT(wires=[control, target])
        return qml.expval(qml.PauliZ(0))

    flat_features = features.reshape(nodes * samples, num_qubits).double()
    targets = labels.double()
    noise = shrink.double()[:, None]
    state = {"params": params.double().clone()}

    def forward(theta: torch.Tensor) -> torch.Tensor:
        angles, weights, bias = model.split(theta)
        broadcast = angles.repeat_interleave(samples, dim=0)  # (N * S, L, n, 2)
        z0 = circuit(flat_features, broadcast).reshape(nodes, samples) * noise
        logits = weights[:, :1] * z0 + bias[:, None]
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(-1)

    def step() -> None:
        theta = state["params"].requires_grad_(True)
        (gradient,) = torch.autograd.grad(forward(theta).sum(), theta)
        state["params"] = (theta.detach() - learning_rate * gradient).detach()

    step.forward = forward  # type: ignore[attr-defined]
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--qubits", type=int, default=4)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--dtype", choices=["complex64", "complex128"], default="complex64")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--pennylane-repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: leave torch's default)")
    parser.add_argument("--out", type=Path, default=None, help="write a JSON record here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    config = CircuitConfig(num_qubits=args.qubits, num_layers=args.layers, dtype=args.dtype)
    model = QuantumClassifier(config, device=args.device)
    data = make_federated_data(
        DataConfig(num_features=args.qubits, samples_per_node=args.samples, test_samples=10),
        np.zeros(args.nodes, bool),
        np.random.default_rng(0),
        dtype=model.dtype,
        device=args.device,
    )
    errors = torch.full((args.nodes,), 0.01, dtype=torch.float64)
    shrink = expectation_shrink(NodeNoise(errors, errors, errors), config).to(args.device)
    params = model.init_parameters(args.nodes, torch.Generator().manual_seed(0))
    features, labels = data.train.features, data.train.labels

    ours = make_ours(model, params, features, labels, shrink, 0.05)
    try:
        import pennylane as qml
    except ImportError:
        qml = None
        print("pennylane not importable: comparison skipped")
    pl_step = None
    agreement = float("nan")
    if qml is not None:
        reference = QuantumClassifier(CircuitConfig(args.qubits, args.layers, dtype="complex128"))
        pl_step = make_pennylane(qml, reference, params, features, labels, shrink, 0.05)
        ours_loss = reference.loss(params.double(), features.double(), labels, shrink)
        agreement = float((ours_loss - pl_step.forward(params.double())).abs().max())  # type: ignore[attr-defined]

    # Interleave the two so that load from other processes affects both alike.
    time_it(ours, args.warmup, 0)
    ours_times: list[float] = []
    pl_times: list[float] = []
    if pl_step is None:
        ours_times = time_it(ours, 0, args.repeats)
    else:
        time_it(pl_step, 1, 0)
        chunk = max(1, args.repeats // args.pennylane_repeats)
        for _ in range(args.pennylane_repeats):
            pl_times += time_it(pl_step, 0, 1)
            ours_times += time_it(ours, 0, chunk)
    ours_median = statistics.median(ours_times)
    print(
        f"ceas_gym batched ({args.dtype}, {args.device}): median {ours_median * 1e3:.3f} ms, "
        f"min {min(ours_times) * 1e3:.3f} ms per step over {len(ours_times)} repeats "
        f"(N={args.nodes}, S={args.samples}, n={args.qubits}, L={args.layers})"
    )
    record: dict = {
        "workload": {
            "nodes": args.nodes,
            "samples_per_node": args.samples,
            "qubits": args.qubits,
            "layers": args.layers,
            "step": "forward + gradient + SGD update",
        },
        "ours": {"dtype": args.dtype, "device": args.device, "median_s": ours_median, "times_s": ours_times},
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "platform": {
            "system": platform.platform(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
        },
    }
    if qml is not None:
        pl_median = statistics.median(pl_times)
        speedup = pl_median / ours_median
        print(
            f"pennylane {qml.__version__} default.qubit broadcast: median {pl_median * 1e3:.3f} ms, "
            f"min {min(pl_times) * 1e3:.3f} ms per step over {len(pl_times)} repeats"
        )
        print(f"max |loss difference| between simulators: {agreement:.2e}")
        print(f"speed-up (ratio of medians): {speedup:.1f}x")
        record["pennylane"] = {
            "version": qml.__version__,
            "device": "default.qubit",
            "median_s": pl_median,
            "times_s": pl_times,
            "max_loss_difference": agreement,
        }
        record["speedup"] = speedup
        record["versions"]["pennylane"] = qml.__version__
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
