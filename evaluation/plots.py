"""Evaluation plots: a metric over rounds with shaded envelopes, and per-policy bars with 95 % CI error bars.

matplotlib is imported lazily with the non-interactive Agg backend, so importing this module costs nothing and
works without a display.

* Over rounds: one line per policy, the mean across seeds of the metric at each round, shaded between mean - std
  and mean + std (sample standard deviation across seeds, ddof = 1; no shading with one seed). Episodes that end
  early contribute to the rounds they reached only (NaN padding, nan-aware statistics). The paper's
  accuracy-over-rounds figure is ``plot_over_rounds(rows, "accuracy", ...)`` on a CEAS environment.
* Bars: one bar per policy, the mean of an episode metric across seeds, with the Student-t 95 % confidence
  half-width of :func:`evaluation.statistics.mean_ci95` as error bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.statistics import mean_ci95


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def unique_in_order(values: Sequence[Any]) -> list[Any]:
    """Distinct values in first-seen order."""
    return list(dict.fromkeys(values))


def round_matrix(rows: Sequence[dict[str, Any]], metric: str) -> np.ndarray:
    """The metric of one policy's round rows as a ``(seeds, rounds)`` array, NaN where a round is missing."""
    seeds = unique_in_order([row["seed"] for row in rows])
    seed_index = {seed: index for index, seed in enumerate(seeds)}
    rounds = np.array([row["round"] for row in rows], dtype=np.int64)
    values = np.array([row.get(metric, np.nan) for row in rows], dtype=np.float64)
    matrix = np.full((len(seeds), int(rounds.max(initial=0))), np.nan)
    matrix[[seed_index[row["seed"]] for row in rows], rounds - 1] = values
    return matrix


def envelope(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-round mean and sample std (ddof = 1, zero with one seed) across the rows of ``matrix``, ignoring NaN."""
    counts = np.sum(~np.isnan(matrix), axis=0)
    mean = np.nanmean(matrix, axis=0)
    centred = np.where(np.isnan(matrix), 0.0, matrix - mean)
    std = np.sqrt(np.sum(centred**2, axis=0) / np.maximum(counts - 1, 1))
    return mean, np.where(counts > 1, std, 0.0)


def plot_over_rounds(rows: Sequence[dict[str, Any]], metric: str, path: Path, title: str = "") -> Path | None:
    """Plot ``metric`` over rounds, one line per policy with a mean ± std envelope; None if no row has it."""
    rows = [row for row in rows if metric in row]
    if not rows:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for policy in unique_in_order([row["policy"] for row in rows]):
        mean, std = envelope(round_matrix([row for row in rows if row["policy"] == policy], metric))
        x = np.arange(1, mean.size + 1)
        axes.plot(x, mean, label=policy)
        axes.fill_between(x, mean - std, mean + std, alpha=0.25)
    axes.set_xlabel("round")
    axes.set_ylabel(metric)
    axes.set_title(title or metric)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_bars(rows: Sequence[dict[str, Any]], metric: str, path: Path, title: str = "") -> Path | None:
    """Bar per policy of the mean episode ``metric`` with 95 % CI error bars; None if no row has it."""
    rows = [row for row in rows if metric in row]
    if not rows:
        return None
    plt = _pyplot()
    policies = unique_in_order([row["policy"] for row in rows])
    stats = [mean_ci95(np.array([row[metric] for row in rows if row["policy"] == p], dtype=float)) for p in policies]
    means = np.array([mean for mean, _ in stats])
    halves = np.nan_to_num(np.array([half for _, half in stats]))
    figure, axes = plt.subplots(figsize=(1.2 * len(policies) + 2.5, 3.6))
    axes.bar(np.arange(len(policies)), means, yerr=halves, capsize=4, color="tab:blue", alpha=0.8)
    axes.set_xticks(np.arange(len(policies)), policies, rotation=20)
    axes.set_ylabel(metric)
    axes.set_title(title or f"{metric} (mean ± 95 % CI)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
