"""Evaluation plots: a metric over rounds with 95 % confidence bands, and per-policy means with 95 % intervals.

matplotlib is imported lazily with the non-interactive Agg backend, so importing this module costs nothing and
works without a display. What a reviewer asks of a figure, each plot does:

* **Over rounds**: one line per policy, the mean across seeds of the metric at each round, shaded with the 95 %
  confidence interval of that mean (Student t, ``t(0.975, n - 1) s / sqrt(n)``; no band with one seed), clipped to
  the metric's range (:data:`METRIC_BOUNDS`: fractions stay in [0, 1]). Episodes that end early contribute to the
  rounds they reached only (NaN padding, nan-aware statistics). The legend, outside the axes, says what the band is.
* **Intervals**: one point per policy, the mean of an episode metric across seeds, with its 95 % confidence
  interval (:func:`evaluation.statistics.mean_ci95`) as error bar. The axis frames the intervals (it does not start
  at 0), so differences of a few percent stay visible; the title names the interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.statistics import mean_ci95, t_quantile_975

METRIC_BOUNDS: dict[str, tuple[float, float]] = {
    name: (0.0, 1.0)
    for name in (
        "accuracy", "utilisation", "isolation_rate", "false_quarantine_rate", "exchanges_granted_fraction",
        "mean_delivered_fidelity", "served_on_time", "granted_fraction",
    )
}  # fmt: skip
"""The range a metric cannot leave; bands and axes are clipped to it (metrics not listed are unbounded)."""


def pyplot() -> Any:
    """Matplotlib's pyplot on the non-interactive Agg backend (imported on first use)."""
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


def confidence_band(
    matrix: np.ndarray, bounds: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-round mean and its 95 % confidence interval across the rows (seeds) of ``matrix``, ignoring NaN.

    Args:
        matrix: ``(seeds, rounds)`` values, NaN where a seed has no value.
        bounds: The metric's range; the interval is clipped to it.

    Returns:
        ``(mean, lower, upper)``, each ``(rounds,)``; ``lower = upper = mean`` where fewer than two seeds count.
    """
    mean, std = envelope(matrix)
    counts = np.sum(~np.isnan(matrix), axis=0)
    quantiles = np.array([t_quantile_975(count - 1) if count > 1 else 0.0 for count in counts])
    half = quantiles * std / np.sqrt(np.maximum(counts, 1))
    lower, upper = mean - half, mean + half
    if bounds is not None:
        lower, upper = np.clip(lower, *bounds), np.clip(upper, *bounds)
    return mean, lower, upper


def save_figure(figure: Any, plt: Any, path: Path) -> Path:
    """Lay out, write ``path`` (parents created) and close the figure."""
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


def plot_over_rounds(rows: Sequence[dict[str, Any]], metric: str, path: Path, title: str = "") -> Path | None:
    """Plot ``metric`` over rounds, one line per policy with its 95 % CI band; None if no row has it."""
    rows = [row for row in rows if metric in row]
    if not rows:
        return None
    plt = pyplot()
    bounds = METRIC_BOUNDS.get(metric)
    figure, axes = plt.subplots(figsize=(8.6, 4.0))
    seeds = 0
    for policy in unique_in_order([row["policy"] for row in rows]):
        matrix = round_matrix([row for row in rows if row["policy"] == policy], metric)
        seeds = max(seeds, matrix.shape[0])
        mean, lower, upper = confidence_band(matrix, bounds)
        x = np.arange(1, mean.size + 1)
        (line,) = axes.plot(x, mean, label=f"{policy} (n = {matrix.shape[0]})")
        axes.fill_between(x, lower, upper, alpha=0.2, color=line.get_color(), linewidth=0)
    axes.set_xlabel("round")
    axes.set_ylabel(metric)
    if bounds is not None:
        low, high = axes.get_ylim()
        axes.set_ylim(max(low, bounds[0]), min(high, bounds[1]))
    axes.set_title(title or metric)
    band = "lines: mean over seeds; bands: 95 % CI of the mean" if seeds > 1 else "one seed: no interval"
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title=band, fontsize="small", title_fontsize="small")
    return save_figure(figure, plt, path)


def interval_limits(lower: np.ndarray, upper: np.ndarray, bounds: tuple[float, float] | None) -> tuple[float, float]:
    """Axis limits that frame ``[lower, upper]`` with a 15 % margin, inside ``bounds`` (and never empty)."""
    low, high = float(np.nanmin(lower)), float(np.nanmax(upper))
    margin = 0.15 * (high - low) if high > low else max(abs(high), 1.0) * 0.05
    low, high = low - margin, high + margin
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return low, high


def plot_bars(rows: Sequence[dict[str, Any]], metric: str, path: Path, title: str = "") -> Path | None:
    """Mean episode ``metric`` per policy with its 95 % CI, on an axis that frames the intervals; None if absent."""
    rows = [row for row in rows if metric in row]
    if not rows:
        return None
    plt = pyplot()
    policies = unique_in_order([row["policy"] for row in rows])
    samples = [np.array([row[metric] for row in rows if row["policy"] == p], dtype=float) for p in policies]
    stats = [mean_ci95(values) for values in samples]
    means = np.array([mean for mean, _ in stats])
    halves = np.nan_to_num(np.array([half for _, half in stats]))
    figure, axes = plt.subplots(figsize=(1.2 * len(policies) + 2.5, 3.6))
    axes.errorbar(np.arange(len(policies)), means, yerr=halves, fmt="o", capsize=5, color="tab:blue")
    axes.set_xticks(np.arange(len(policies)), policies, rotation=20)
    axes.set_xlim(-0.5, len(policies) - 0.5)
    axes.set_ylim(*interval_limits(means - halves, means + halves, METRIC_BOUNDS.get(metric)))
    axes.grid(axis="y", alpha=0.3)
    counts = sorted({values.size for values in samples})
    seeds = f"n = {counts[0]}" if len(counts) == 1 else f"n = {counts[0]}-{counts[-1]}"
    axes.set_ylabel(f"{metric}\nmean ± 95 % CI over seeds ({seeds})")
    axes.set_title(title or metric, fontsize="medium")
    return save_figure(figure, plt, path)
