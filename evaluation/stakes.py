r"""``ceas-stakes``: what the schedule does to the learning, bracketed between no and perfect communication.

Example::

    ceas-stakes --env ceas_gym/EntanglementScheduling-Small-v0 --seeds 0-29 --workers 2 --out results/stakes_small
    ceas-stakes --env ceas_gym/EntanglementScheduling-Small-v0 --policies idle eef value my_model.zip --out r

Runs each policy (default: idle, random, uniform, EEF, greedy, value-aware and the clairvoyant lookahead) on the
environment over the seeds, and once more the same environment with ``communication="perfect"`` (every requested
exchange granted at fidelity 1; the actions do not matter there), listed as ``perfect``. Every comparison is paired
over the same seeds. Prints and writes into ``--out``:

* ``summary.md``: per policy, mean ± 95 % CI over seeds of the honest nodes' accuracy (episode mean, what the
  default reward sums, and final: mean of the last 10 % of rounds), the **bracket position**
  ``(accuracy - idle) / (perfect - idle)`` of the episode mean (0: no communication, 1: perfect communication),
  the return, the exchanges granted and the isolation of Byzantine nodes; then each policy's paired difference from
  ``idle`` and from the best heuristic (of the built-in schedulers given);
* ``episodes.csv`` / ``episodes.json``: one row per episode (as ``ceas-eval`` writes them);
* ``stakes_<EnvName>.png``: the episode-mean accuracy of every policy with its 95 % CI, between the idle and the
  perfect-communication lines.

Exit status 2 on an unknown env id, policy name or missing model file (as ``ceas-eval``).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ceas_gym.help_text import plain_text
from ceas_gym.progress import progress_bar
from evaluation.cli import format_cell, parse_study, write_csv
from evaluation.plots import pyplot, save_figure, unique_in_order
from evaluation.runner import EpisodeResult, make_tasks, run_tasks
from evaluation.statistics import mean_ci95
from training.run_folder import env_name

DEFAULT_POLICIES = ("idle", "random", "uniform", "eef", "greedy", "value", "lookahead")
HEURISTICS = ("random", "uniform", "eef", "greedy", "value")
"""The built-in schedulers the best heuristic is chosen from (references excluded: idle, lookahead, perfect)."""
PERFECT = "perfect"
COLUMNS = (
    ("accuracy_mean", "accuracy (episode mean)"),
    ("accuracy_final", "accuracy (final 10 %)"),
    ("bracket", "bracket position"),
    ("return", "return"),
    ("exchanges_granted_fraction_mean", "exchanges granted"),
    ("isolation_rate", "isolation (last round)"),
)


def build_parser() -> argparse.ArgumentParser:
    """The ``ceas-stakes`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="ceas-stakes", description=plain_text(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", nargs="+", required=True, help="registered CEAS environment ids")
    parser.add_argument("--policies", nargs="+", default=list(DEFAULT_POLICIES), help="names or model .zip")
    parser.add_argument("--seeds", nargs="+", default=["0-29"], help="seeds, e.g. 0-29")
    parser.add_argument("--env-kwargs", nargs="+", default=[], metavar="K:V", help="environment keyword arguments")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (1: run in this process)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--trust-pickle", action="store_true", help="as in ceas-eval")
    parser.set_defaults(backend="local", address=None, baseline=None)
    return parser


def with_perfect_rows(scheduled: Sequence[EpisodeResult], perfect: Sequence[EpisodeResult]) -> list[dict[str, Any]]:
    """The episode rows, the perfect-communication runs relabelled ``perfect``, each with its bracket position."""
    rows = [dict(result.episode) for result in scheduled]
    rows += [{**result.episode, "policy": PERFECT} for result in perfect]
    for env_id in unique_in_order([row["env"] for row in rows]):
        mine = [row for row in rows if row["env"] == env_id]
        low = {row["seed"]: row["accuracy_mean"] for row in mine if row["policy"] == "idle"}
        high = {row["seed"]: row["accuracy_mean"] for row in mine if row["policy"] == PERFECT}
        low_mean = float(np.mean(list(low.values()))) if low else math.nan
        high_mean = float(np.mean(list(high.values()))) if high else math.nan
        span = high_mean - low_mean
        for row in mine:  # position on the mean bracket of the seeds (a per-seed ratio is unstable)
            row["bracket"] = round((row["accuracy_mean"] - low_mean) / span, 12) if span > 0 else math.nan
    return rows


def cell(key: str, values: np.ndarray) -> str:
    """A table cell: mean ± 95 % half-width; the bracket position to two decimals (its ends are 0 and 1)."""
    if key != "bracket":
        return format_cell(values)
    mean, half = mean_ci95(values)
    return f"{mean + 0.0:.2f}" if math.isnan(half) else f"{round(mean, 2) + 0.0:.2f} ± {half:.2f}"


def best_heuristic(rows: Sequence[dict[str, Any]]) -> str | None:
    """The built-in scheduler with the highest mean episode accuracy among ``rows`` (None if none ran)."""
    means = {
        policy: float(np.mean([row["accuracy_mean"] for row in rows if row["policy"] == policy]))
        for policy in unique_in_order([row["policy"] for row in rows])
        if policy in HEURISTICS
    }
    return max(means, key=means.__getitem__) if means else None


def paired_rows(rows: Sequence[dict[str, Any]], reference: str, metrics: Sequence[str]) -> list[str]:
    """Markdown lines: each policy's paired difference from ``reference`` over their common seeds."""
    base = {row["seed"]: row for row in rows if row["policy"] == reference}
    lines = [f"| policy | seeds | {' | '.join(metrics)} |", "|---|---|" + "---|" * len(metrics)]
    for policy in unique_in_order([row["policy"] for row in rows if row["policy"] != reference]):
        pairs = [(row, base[row["seed"]]) for row in rows if row["policy"] == policy and row["seed"] in base]
        cells = [
            format_cell(np.array([mine[m] - other[m] for mine, other in pairs], dtype=float)) if pairs else "-"
            for m in metrics
        ]
        lines.append(f"| {policy} | {len(pairs)} | " + " | ".join(cells) + " |")
    return lines


def stakes_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The summary of every environment (see the module docstring)."""
    lines: list[str] = []
    for env_id in unique_in_order([row["env"] for row in rows]):
        mine = [row for row in rows if row["env"] == env_id]
        present = [(key, label) for key, label in COLUMNS if any(key in row for row in mine)]
        lines += [f"### {env_id}", "", "| policy | seeds | " + " | ".join(label for _, label in present) + " |"]
        lines.append("|---|---|" + "---|" * len(present))
        for policy in unique_in_order([row["policy"] for row in mine]):
            theirs = [row for row in mine if row["policy"] == policy]
            cells = [cell(key, np.array([row.get(key, np.nan) for row in theirs], dtype=float)) for key, _ in present]
            lines.append(f"| {policy} | {len(theirs)} | " + " | ".join(cells) + " |")
        metrics = ["accuracy_mean", "accuracy_final", "return"]
        for reference in dict.fromkeys(name for name in ("idle", best_heuristic(mine)) if name is not None):
            if any(row["policy"] == reference for row in mine):
                lines += ["", f"Paired difference from {reference} (same seeds):", ""]
                lines += paired_rows(mine, reference, metrics)
        lines.append("")
    lines.append(
        "Accuracy: mean test accuracy of the models the honest nodes hold. Mean ± half-width of the 95 % Student-t "
        "interval over seeds; bracket position 0 = idle (no communication), 1 = perfect communication."
    )
    return "\n".join(lines) + "\n"


def plot_stakes(rows: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Episode-mean accuracy per policy with its 95 % CI, between the idle and the perfect lines."""
    plt = pyplot()
    policies = [p for p in unique_in_order([row["policy"] for row in rows]) if p not in ("idle", PERFECT)]
    figure, axes = plt.subplots(figsize=(1.1 * len(policies) + 3.0, 3.8))
    for reference, colour in (("idle", "tab:red"), (PERFECT, "tab:green")):
        values = np.array([row["accuracy_mean"] for row in rows if row["policy"] == reference], dtype=float)
        if values.size:
            mean, half = mean_ci95(values)
            axes.axhline(mean, color=colour, label=f"{reference} ({mean:.3f})")
            if not math.isnan(half):
                axes.axhspan(mean - half, mean + half, color=colour, alpha=0.12)
    stats = [
        mean_ci95(np.array([row["accuracy_mean"] for row in rows if row["policy"] == p], dtype=float)) for p in policies
    ]
    means = np.array([mean for mean, _ in stats])
    halves = np.nan_to_num(np.array([half for _, half in stats]))
    axes.errorbar(np.arange(len(policies)), means, yerr=halves, fmt="o", capsize=5, color="tab:blue")
    axes.set_xticks(np.arange(len(policies)), policies, rotation=20)
    axes.set_xlim(-0.5, len(policies) - 0.5)
    axes.set_ylabel("honest nodes' accuracy\n(episode mean, 95 % CI)")
    axes.set_title(title, fontsize="medium")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return save_figure(figure, plt, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = build_parser()
    args, seeds, env_kwargs = parse_study(parser, argv)
    if "communication" in env_kwargs:
        parser.error("--env-kwargs communication: the study sets it itself (scheduled, then perfect)")
    scheduled = make_tasks(args.env, args.policies, seeds, env_kwargs, trust_pickle=args.trust_pickle)
    perfect = make_tasks(args.env, ["idle"], seeds, {**env_kwargs, "communication": "perfect"})
    with progress_bar(len(scheduled) + len(perfect), "episodes", disable=args.no_progress) as bar:
        results = run_tasks([*scheduled, *perfect], args.workers, bar.update)
    rows = with_perfect_rows(results[: len(scheduled)], results[len(scheduled) :])
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "episodes.csv")
    (out / "episodes.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    summary = stakes_markdown(rows)
    (out / "summary.md").write_text(summary, encoding="utf-8")
    plots = []
    if not args.no_plots:
        for env_id in unique_in_order([row["env"] for row in rows]):
            mine = [row for row in rows if row["env"] == env_id]
            name = env_name(env_id)
            plots.append(plot_stakes(mine, out / f"stakes_{name}.png", f"{name}: the stakes of scheduling"))
    print(summary)
    print(f"wrote 3 tables and {len(plots)} plots to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
