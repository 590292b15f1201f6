"""Dense vs MPO-compressed digits model: parameters, test accuracy and Bell pairs per exchange (second paper, Table 2).

Protocol (centralised training, the paper's Table 2 "Centralized" setting, scaled to the 8 x 8 digits):

1. Split scikit-learn's digits with :func:`~ceas_gym.learning.data.load_digits_split` (one client, IID, 20 %
   held out as the test set).
2. Train the dense model ``Linear(64, 256) -> ReLU -> Linear(256, 10)`` (19,210 parameters; the paper's FCNN is
   784-256-10) with mini-batch SGD (momentum 0.9, weight decay 1e-4, cross-entropy).
3. Replace both layers by MPO layers initialised by TT-SVD of the trained weights
   (:meth:`~ceas_gym.learning.mpo.MPOLinear.from_dense`): ``T^{4,8,8}_{4,4,4}(chi)`` for the first layer and the
   paper's own ``T^{1,1,10,1}_{4,4,4,4}(chi)`` for the second (Table 1, row 2). Measure the accuracy right after
   the truncation, then fine-tune the MPO model with the same optimiser for ``finetune_epochs`` epochs
   (Sec. 4.3: MPO parameters are trained by back-propagation) and measure again.
4. Report parameters, reduction ``1 - N_MPO / N_dense``, accuracies (percent), and the Bell pairs one model
   exchange needs at 32 bits per parameter and 2 bits per pair (superdense coding;
   :func:`~ceas_gym.learning.mpo.compressed_payload_pairs`).

Command::

    python -m evaluation.compression --out results/compression [--seeds 3] [--chi 4] [--quick]

Writes ``compression.csv`` (one row per seed and model) and ``compression.md`` (means +- 95 % CI over seeds).
Target of the issue: at least 90 % fewer parameters with at most 1.5 points of accuracy loss after fine-tuning.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ceas_gym.learning.data import load_digits_split
from ceas_gym.learning.mpo import MPOLinear, compressed_payload_pairs
from evaluation.statistics import mean_ci95

__all__ = ["CompressionRow", "build_dense", "compress", "main", "markdown_table", "run_seed", "train"]

HIDDEN = 256
FIRST_LAYER_FACTORS = ((4, 4, 4), (4, 8, 8))
SECOND_LAYER_FACTORS = ((4, 4, 4, 4), (1, 1, 10, 1))


@dataclass(frozen=True)
class CompressionRow:
    """One model of one seed.

    Attributes:
        seed: Seed.
        model: "dense", "mpo (TT-SVD only)" or "mpo (fine-tuned)".
        parameters: Trainable parameters (count).
        accuracy: Test accuracy (percent).
        pairs_per_exchange: Bell pairs to send the model once (32-bit parameters, 2 bits per pair).
    """

    seed: int
    model: str
    parameters: int
    accuracy: float
    pairs_per_exchange: int


def build_dense(generator: torch.Generator) -> torch.nn.Sequential:
    """The dense ``64 -> 256 -> 10`` MLP, weights ``U(+-1/sqrt(fan_in))`` from ``generator``, zero biases."""
    model = torch.nn.Sequential(torch.nn.Linear(64, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 10))
    with torch.no_grad():
        for layer in (model[0], model[2]):
            bound = 1.0 / math.sqrt(layer.in_features)
            layer.weight.copy_((2 * torch.rand(layer.weight.shape, generator=generator) - 1) * bound)
            layer.bias.zero_()
    return model


def compress(dense: torch.nn.Sequential, chi: int) -> torch.nn.Sequential:
    """Replace both linear layers of ``dense`` by TT-SVD MPO layers of bond at most ``chi``."""
    first = MPOLinear.from_dense(dense[0], *FIRST_LAYER_FACTORS, max_bond=chi)
    second = MPOLinear.from_dense(dense[2], *SECOND_LAYER_FACTORS, max_bond=chi)
    return torch.nn.Sequential(first, torch.nn.ReLU(), second)


def _count(model: torch.nn.Module) -> int:
    return sum(int(p.numel()) for p in model.parameters())


def train(
    model: torch.nn.Module,
    features: torch.Tensor,
    labels: torch.Tensor,
    epochs: int,
    generator: torch.Generator,
    learning_rate: float = 0.05,
    batch_size: int = 32,
) -> None:
    """Mini-batch SGD (momentum 0.9, weight decay 1e-4) on cross-entropy; shuffles from ``generator``."""
    optimiser = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9, weight_decay=1e-4)
    n = labels.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(features[index]), labels[index]).backward()
            optimiser.step()


def _accuracy(model: torch.nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return 100.0 * float((model(features).argmax(dim=1) == labels).double().mean())


def run_seed(seed: int, chi: int, epochs: int, finetune_epochs: int) -> list[CompressionRow]:
    """Train dense, compress, fine-tune for one seed; return the three rows."""
    split = load_digits_split(1, math.inf, np.random.default_rng(seed))
    x = torch.from_numpy(split.client_features[0])
    y = torch.from_numpy(split.client_labels[0])
    x_test, y_test = torch.from_numpy(split.test_features), torch.from_numpy(split.test_labels)
    generator = torch.Generator().manual_seed(seed)
    dense = build_dense(generator)
    train(dense, x, y, epochs, generator)
    mpo = compress(dense, chi)
    rows = [
        CompressionRow(seed, "dense", _count(dense), _accuracy(dense, x_test, y_test), 0),
        CompressionRow(seed, "mpo (TT-SVD only)", _count(mpo), _accuracy(mpo, x_test, y_test), 0),
    ]
    train(mpo, x, y, finetune_epochs, generator, learning_rate=0.02)
    rows.append(CompressionRow(seed, "mpo (fine-tuned)", _count(mpo), _accuracy(mpo, x_test, y_test), 0))
    return [
        CompressionRow(r.seed, r.model, r.parameters, r.accuracy, compressed_payload_pairs(r.parameters, 32, 2.0))
        for r in rows
    ]


def markdown_table(rows: Sequence[CompressionRow], chi: int) -> str:
    """Mean +- 95 % CI over seeds per model, with the reduction and accuracy change vs dense."""
    models = list(dict.fromkeys(r.model for r in rows))
    dense_params = next(r.parameters for r in rows if r.model == "dense")
    dense_mean = float(np.mean([r.accuracy for r in rows if r.model == "dense"]))
    lines = [
        "| Model | Parameters | Reduction (%) | Pairs per exchange | Test accuracy (%) | Change (points) |",
        "|---|---|---|---|---|---|",
    ]
    for model in models:
        subset = [r for r in rows if r.model == model]
        mean, half = mean_ci95(np.array([r.accuracy for r in subset]))
        ci = "" if math.isnan(half) else f" ± {half:.2f}"
        reduction = 100.0 * (1 - subset[0].parameters / dense_params)
        lines.append(
            f"| {model} | {subset[0].parameters} | {reduction:.1f} | {subset[0].pairs_per_exchange} | "
            f"{mean:.2f}{ci} | {mean - dense_mean:+.2f} |"
        )
    seeds = sorted({r.seed for r in rows})
    lines += ["", f"Digits, centralised, 64-256-10 MLP; MPO bond chi = {chi}; seeds {seeds}; mean ± 95 % CI."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> list[CompressionRow]:
    """Command-line entry point; returns the rows it wrote."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/compression"), help="output folder")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0..seeds-1)")
    parser.add_argument("--chi", type=int, default=4, help="MPO bond dimension")
    parser.add_argument("--epochs", type=int, default=40, help="dense training epochs")
    parser.add_argument("--finetune-epochs", type=int, default=40, help="MPO fine-tuning epochs")
    parser.add_argument("--quick", action="store_true", help="tiny settings for tests (1 seed, 2 + 2 epochs)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = range(1) if args.quick else range(args.seeds)
    epochs, finetune = (2, 2) if args.quick else (args.epochs, args.finetune_epochs)
    rows = [row for seed in seeds for row in run_seed(seed, args.chi, epochs, finetune)]
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "compression.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(CompressionRow.__dataclass_fields__))
        writer.writeheader()
        for row in rows:
            writer.writerow(row.__dict__)
    table = markdown_table(rows, args.chi)
    (args.out / "compression.md").write_text(table)
    print(table)
    return rows


if __name__ == "__main__":
    main()
