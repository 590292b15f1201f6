"""Robustness benchmark in the shape of the second paper's Table 3 (Liu et al. 2025, Sec. 5.2), on digits.

Grid: attack (label-flip, bit-flip = sign inversion of the update, Gaussian noise of std 0.1 on the update) x
number of malicious clients (10, 15, 20 of 50) x aggregator (FedAvg, trimmed mean, median, Krum, the score
rule) x seed. Each cell is one :func:`~ceas_gym.learning.federated.run_federated` run; the workload and its
conventions are documented there. The paper reports the mean accuracy over the last 20 rounds of 200 on
MNIST; here each row records the final test accuracy (the reported figure) and the mean over the last
``last_rounds`` rounds.

Command::

    python -m evaluation.table3 --out results/table3 [--seeds 3] [--rounds 100] [--quick]

Outputs in ``--out``: ``table3.csv`` (tidy, one row per attack x malicious count x aggregator x seed),
``table3.md`` (mean +- 95 % Student-t half-width of the final accuracy in percent, best mean per column in
bold, plus the check of the target "the score rule is best or within 1 point of the best in every column at 20
malicious") and ``table3.png`` (accuracy per aggregator, grouped by attack, one panel per malicious count).
Torch is limited to one thread so runs are comparable on a shared machine.
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
from tqdm import tqdm

from ceas_gym.config import ConfigError, replace
from ceas_gym.learning.federated import FederatedConfig, run_federated
from evaluation.statistics import mean_ci95

__all__ = [
    "AGGREGATOR_LABELS",
    "ATTACK_LABELS",
    "Row",
    "main",
    "markdown_table",
    "plot_table",
    "run_grid",
    "score_rule_gaps",
    "write_csv",
]

# Paper name -> attack registry name (Sec. 5.1).
ATTACK_LABELS: dict[str, str] = {"label-flip": "label-flip", "bit-flip": "sign-flip", "gaussian": "gaussian-fixed"}
AGGREGATOR_LABELS: dict[str, str] = {
    "fedavg": "FedAvg",
    "trimmed-mean": "Trimmed-Mean",
    "median": "Median",
    "krum": "Krum",
    "score": "Score rule (this work)",
}
MALICIOUS_COUNTS = (10, 15, 20)


@dataclass(frozen=True)
class Row:
    """One tidy result row.

    Attributes:
        attack: Paper attack name (label-flip, bit-flip, gaussian).
        num_malicious: Malicious clients (of ``num_clients``).
        aggregator: Aggregator registry name.
        seed: Run seed.
        final_accuracy: Test accuracy after the last round (probability).
        mean_last_accuracy: Mean test accuracy over the last rounds (probability).
        malicious_selected_fraction: Mean fraction of aggregated updates that were malicious.
        rounds: Communication rounds.
        num_clients: Clients.
    """

    attack: str
    num_malicious: int
    aggregator: str
    seed: int
    final_accuracy: float
    mean_last_accuracy: float
    malicious_selected_fraction: float
    rounds: int
    num_clients: int


def run_grid(
    attacks: Sequence[str],
    malicious_counts: Sequence[int],
    aggregators: Sequence[str],
    seeds: Sequence[int],
    base: FederatedConfig,
    progress: bool = True,
) -> list[Row]:
    """Run every cell of the grid; the same seed gives every aggregator the same split and attackers.

    Args:
        attacks: Paper attack names (keys of :data:`ATTACK_LABELS`).
        malicious_counts: Numbers of malicious clients.
        aggregators: Aggregator registry names.
        seeds: Seeds.
        base: Settings shared by every run (its attack, malicious count and aggregator are replaced).
        progress: Whether to show a tqdm progress bar.

    Returns:
        One row per cell and seed.
    """
    for attack in attacks:
        if attack not in ATTACK_LABELS:
            raise ConfigError(f"attack = {attack!r} is not allowed; allowed: {', '.join(ATTACK_LABELS)}")
    cells = [(a, m, g, s) for a in attacks for m in malicious_counts for g in aggregators for s in seeds]
    rows: list[Row] = []
    for attack, count, aggregator, seed in tqdm(cells, desc="table3", disable=not progress):
        config = replace(base, attack=ATTACK_LABELS[attack], num_malicious=count, aggregator=aggregator)
        result = run_federated(config, seed)
        rows.append(
            Row(
                attack=attack,
                num_malicious=count,
                aggregator=aggregator,
                seed=seed,
                final_accuracy=result.final_accuracy,
                mean_last_accuracy=result.mean_last_accuracy,
                malicious_selected_fraction=result.malicious_selected_fraction,
                rounds=config.rounds,
                num_clients=config.num_clients,
            )
        )
    return rows


def write_csv(rows: Sequence[Row], path: Path) -> None:
    """Write the tidy rows to ``path`` (header = :class:`Row` fields)."""
    fields = list(Row.__dataclass_fields__)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(row.__dict__)


def _cell_values(rows: Sequence[Row], attack: str, count: int, aggregator: str, metric: str) -> np.ndarray:
    return np.array(
        [
            getattr(r, metric)
            for r in rows
            if r.attack == attack and r.num_malicious == count and r.aggregator == aggregator
        ]
    )


def _columns(rows: Sequence[Row]) -> list[tuple[str, int]]:
    attacks = list(dict.fromkeys(r.attack for r in rows))
    counts = sorted({r.num_malicious for r in rows})
    return [(a, m) for a in attacks for m in counts]


def score_rule_gaps(rows: Sequence[Row], metric: str = "final_accuracy") -> dict[tuple[str, int], float]:
    """Per column, the best mean accuracy minus the score rule's mean accuracy (percentage points; 0 if best)."""
    gaps: dict[tuple[str, int], float] = {}
    aggregators = list(dict.fromkeys(r.aggregator for r in rows))
    for attack, count in _columns(rows):
        means = {g: 100 * float(_cell_values(rows, attack, count, g, metric).mean()) for g in aggregators}
        if "score" in means:
            gaps[(attack, count)] = max(means.values()) - means["score"]
    return gaps


def markdown_table(rows: Sequence[Row], metric: str = "final_accuracy") -> str:
    """Mean +- 95 % CI (percent) per aggregator and (attack, malicious count) column; best mean in bold."""
    columns = _columns(rows)
    aggregators = list(dict.fromkeys(r.aggregator for r in rows))
    header = "| Method | " + " | ".join(f"{a} {m}" for a, m in columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    stats = {
        (g, col): mean_ci95(100 * _cell_values(rows, col[0], col[1], g, metric)) for g in aggregators for col in columns
    }
    best = {col: max(stats[(g, col)][0] for g in aggregators) for col in columns}
    for g in aggregators:
        cells = []
        for col in columns:
            mean, half = stats[(g, col)]
            text = f"{mean:.1f}" if math.isnan(half) else f"{mean:.1f} ± {half:.1f}"
            cells.append(f"**{text}**" if mean == best[col] else text)
        lines.append(f"| {AGGREGATOR_LABELS.get(g, g)} | " + " | ".join(cells) + " |")
    seeds = sorted({r.seed for r in rows})
    first = rows[0]
    lines.append("")
    lines.append(
        f"{metric.replace('_', ' ')} (%) on digits, {first.num_clients} clients, {first.rounds} rounds, "
        f"seeds {seeds}; mean ± 95 % CI (Student t) over seeds."
    )
    gaps = {
        key: value
        for key, value in score_rule_gaps(rows, metric).items()
        if key[1] == max(r.num_malicious for r in rows)
    }
    if gaps:
        worst = max(gaps.values())
        verdict = "holds" if worst <= 1.0 else "does not hold"
        detail = ", ".join(f"{a}: {gap:.1f}" for (a, _), gap in gaps.items())
        lines.append(
            f"Target at the largest malicious count (score rule best or within 1 point): {verdict} "
            f"(gap to the best, points: {detail})."
        )
    return "\n".join(lines) + "\n"


def plot_table(rows: Sequence[Row], path: Path, metric: str = "final_accuracy") -> None:
    """Grouped bar chart: one panel per malicious count, groups = attacks, bars = aggregators (mean +- CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted({r.num_malicious for r in rows})
    attacks = list(dict.fromkeys(r.attack for r in rows))
    aggregators = list(dict.fromkeys(r.aggregator for r in rows))
    figure, axes = plt.subplots(1, len(counts), figsize=(4.5 * len(counts), 3.8), sharey=True, squeeze=False)
    width = 0.8 / len(aggregators)
    for panel, count in zip(axes[0], counts, strict=True):
        for k, g in enumerate(aggregators):
            stats = [mean_ci95(100 * _cell_values(rows, a, count, g, metric)) for a in attacks]
            means = [s[0] for s in stats]
            errors = [0.0 if math.isnan(s[1]) else s[1] for s in stats]
            positions = np.arange(len(attacks)) + (k - (len(aggregators) - 1) / 2) * width
            panel.bar(positions, means, width, yerr=errors, capsize=2, label=AGGREGATOR_LABELS.get(g, g))
        panel.set_xticks(np.arange(len(attacks)), attacks)
        panel.set_title(f"{count} malicious of {rows[0].num_clients}")
        panel.set_ylim(0, 100)
        panel.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> list[Row]:
    """Command-line entry point; returns the rows it wrote."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/table3"), help="output folder")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0..seeds-1)")
    parser.add_argument("--rounds", type=int, default=100, help="communication rounds per run")
    parser.add_argument("--quick", action="store_true", help="tiny settings for tests (3 rounds, 1 seed)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = range(1 if args.quick else args.seeds)
    base = FederatedConfig(rounds=3 if args.quick else args.rounds, last_rounds=1 if args.quick else 10)
    rows = run_grid(
        list(ATTACK_LABELS), MALICIOUS_COUNTS, list(AGGREGATOR_LABELS), list(seeds), base, not args.no_progress
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "table3.csv")
    table = markdown_table(rows)
    (args.out / "table3.md").write_text(table)
    plot_table(rows, args.out / "table3.png")
    print(table)
    return rows


if __name__ == "__main__":
    main()
