"""The loss gradient of local training: the closed form (``ceas_gym.learning.adjoint``) against autograd.

Both compute every node's gradient of its mean binary cross-entropy for the default circuit (4 qubits, 3 layers,
``Z_0`` readout, complex64) and white noise, on ``--nodes`` x ``--samples`` (default 640 x 32: the 64-copy batched
Small environment's local round). They are timed alternately, call after call, so that the machine's drift hits
both alike; the script prints the median and best time per call of each and their largest difference.

python benchmarks/bench_local_gradient.py --nodes 640 --samples 32 --threads 2 --repeats 200
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ceas_gym.learning.adjoint import loss_gradient
from ceas_gym.learning.classifier import QuantumClassifier


def main() -> None:
    """Time both gradients and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=640)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op CPU threads")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls of each")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = QuantumClassifier()
    generator = torch.Generator().manual_seed(args.seed)
    params = model.init_parameters(args.nodes, generator)
    params = params + 0.3 * torch.randn(params.shape, generator=generator)
    features = torch.rand(args.nodes, args.samples, model.config.num_qubits, generator=generator) * 3.0
    labels = (torch.rand(args.nodes, args.samples, generator=generator) < 0.5).long()
    shrink = 0.8 + 0.2 * torch.rand(args.nodes, generator=generator)

    def autograd() -> torch.Tensor:
        flat = params.clone().requires_grad_(True)
        return torch.autograd.grad(model.loss(flat, features, labels, shrink).sum(), flat)[0]

    def closed_form() -> torch.Tensor:
        return loss_gradient(model, params, features, labels, shrink)

    difference = (autograd() - closed_form()).abs().max().item()
    timings: dict[str, list[float]] = {"autograd": [], "closed form": []}
    for _ in range(5):  # warm-up
        autograd(), closed_form()
    for _ in range(args.repeats):
        for name, function in (("autograd", autograd), ("closed form", closed_form)):
            start = time.perf_counter()
            function()
            timings[name].append(time.perf_counter() - start)
    print(f"{args.nodes} nodes x {args.samples} samples, {args.threads} thread(s), {args.repeats} calls each")
    for name, values in timings.items():
        print(f"  {name:12s} median {1e3 * statistics.median(values):6.2f} ms, best {1e3 * min(values):6.2f} ms")
    print(f"  largest difference {difference:.2e} (float32)")


if __name__ == "__main__":
    main()
