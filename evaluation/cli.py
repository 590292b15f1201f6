r"""``ceas-eval``: run policies x environments x seeds and write tidy results, a Markdown summary and plots.

Example::

    ceas-eval --env ceas_gym/EntanglementScheduling-Lite-v0 --policies eef greedy random \
        logs/ppo/ceas_gym-EntanglementScheduling-Lite-v0_1/best_model/best_model.zip --seeds 0-9 --workers 2 \
        --out results/lite
    ceas-eval --env ceas_gym/EntanglementScheduling-v0 --policies eef random --seeds 0-9 --plot-metric accuracy \
        --out results/paper   # the paper's accuracy-over-rounds figure

Writes into ``--out``:

* ``episodes.csv`` / ``episodes.json``: one row per episode (see :mod:`evaluation.runner` for the columns);
* ``rounds.csv`` with ``--per-round``: one row per round;
* ``summary.md``: per env x policy, mean ± 95 % CI (Student t, :func:`evaluation.statistics.mean_ci95`) over the
  seeds of ``return`` and of the ``--metrics`` columns present in the results;
* ``bars_<metric>_<EnvName>.png`` for ``return`` and each summary metric, and
  ``rounds_<metric>_<EnvName>.png`` for each ``--plot-metric`` the env reports (mean ± std across seeds).

``--backend ray`` runs one Ray task per episode, on a private local Ray instance or, with ``--address HOST:PORT``
(or ``auto``), on a running cluster; the files are the same as with the local backend for the same seeds.

Seeds are given as ``0-9``, ``0 3 5`` or ``0-4,7``. Exit status 2 on an unknown env id (with the closest
registered id), an unknown policy name or a missing model file.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.normalizer_io import legacy_pickle_for, normalizer_path_for
from agents.registry import POLICIES, is_model_path
from ceas_gym.config import ConfigError
from ceas_gym.help_text import plain_text
from ceas_gym.plugins import PluginError, resolve_env_id
from ceas_gym.progress import progress_bar
from evaluation.plots import plot_bars, plot_over_rounds, unique_in_order
from evaluation.runner import BACKENDS, EpisodeResult, make_tasks, run_tasks
from evaluation.statistics import mean_ci95, paired_comparison
from training.hyperparams import HyperparameterError, parse_key_values
from training.ray_backend import RayUnavailableError
from training.run_folder import env_name

DEFAULT_METRICS = (
    "served_on_time",
    "utilisation",
    "wasted_mean",
    "accuracy",
    "isolation_rate",
    "false_quarantine_rate",
)
DEFAULT_PLOT_METRICS = ("reward", "utilisation", "accuracy", "isolation_rate")


def parse_seeds(items: Sequence[str]) -> list[int]:
    """Expand ``["0-3,7", "9"]`` to ``[0, 1, 2, 3, 7, 9]`` (order kept, duplicates dropped).

    Raises:
        ValueError: On a malformed item or an empty range.
    """
    seeds: list[int] = []
    for item in items:
        for part in filter(None, item.split(",")):
            low, sep, high = part.partition("-")
            try:
                start, stop = int(low), int(high if sep else low)
            except ValueError:
                raise ValueError(f"--seeds {part!r}: expected N or N-M with integers") from None
            if stop < start:
                raise ValueError(f"--seeds {part!r}: empty range ({stop} < {start})")
            seeds.extend(range(start, stop + 1))
    return list(dict.fromkeys(seeds))


def build_parser() -> argparse.ArgumentParser:
    """The ``ceas-eval`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="ceas-eval", description=plain_text(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", nargs="+", required=True, help="registered environment ids")
    parser.add_argument("--policies", nargs="+", default=["eef", "greedy", "random"], help="names or model .zip")
    parser.add_argument("--seeds", nargs="+", default=["0-9"], help="seeds, e.g. 0-9 or 0 1 2")
    parser.add_argument("--env-kwargs", nargs="+", default=[], metavar="K:V", help="environment keyword arguments")
    parser.add_argument("--per-round", action="store_true", help="also write rounds.csv (one row per round)")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), help="summary/bar columns")
    parser.add_argument("--plot-metric", nargs="+", default=list(DEFAULT_PLOT_METRICS), help="over-rounds plots")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (1: run in this process)")
    parser.add_argument("--backend", choices=BACKENDS, default="local", help="local processes or Ray tasks")
    parser.add_argument("--address", default=None, help="Ray cluster address (HOST:PORT or auto; --backend ray)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load pickled normalisers (*_vecnormalize.pkl) beside models; unpickling runs the file's code",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="POLICY",
        help="one of --policies: add a table of every other policy's paired difference from it (same seeds)",
    )
    return parser


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 on an unknown env id, an unknown policy name or a missing model file."""
    for env_id in args.env:
        try:
            resolve_env_id(env_id)  # plug-ins and "module:EnvId" ids
        except (ConfigError, PluginError) as error:
            parser.error(str(error))
    for spec in args.policies:
        if is_model_path(spec):
            if not Path(spec).is_file():
                parser.error(f"model file {spec!r} does not exist")
            legacy = legacy_pickle_for(spec)
            if not args.trust_pickle and legacy is not None and normalizer_path_for(spec) is None:
                parser.error(
                    f"{legacy}: a pickled normaliser, and unpickling runs code from the file; pass --trust-pickle if "
                    f"you trust its source, or convert it once with 'python -m agents.normalizer_io {legacy}'"
                )
        elif spec not in POLICIES.names():
            close = difflib.get_close_matches(spec, POLICIES.names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            parser.error(f"unknown policy {spec!r}{hint}; known: {', '.join(POLICIES.names())} or a model .zip path")
    if args.workers < 1:
        parser.error(f"--workers = {args.workers}: must be >= 1")
    if args.baseline is not None and args.baseline not in args.policies:
        parser.error(f"--baseline {args.baseline!r}: must be one of --policies ({', '.join(args.policies)})")
    if args.address is not None and args.backend != "ray":
        parser.error("--address is the Ray cluster's address; it needs --backend ray")


def parse_study(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> tuple[argparse.Namespace, list[int], dict[str, Any]]:
    """Parse and check a study's command line; return ``(args, seeds, env_kwargs)`` (exit 2 on bad input)."""
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    try:
        return args, parse_seeds(args.seeds), parse_key_values(args.env_kwargs, "--env-kwargs")
    except (ValueError, HyperparameterError) as error:
        parser.error(str(error))


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write ``rows`` with the union of their keys as columns (first-seen order; missing cells empty)."""
    columns = unique_in_order([key for row in rows for key in row])
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def format_cell(values: np.ndarray) -> str:
    """``mean ± half-width`` of the 95 % CI (``mean`` alone for one value)."""
    mean, half = mean_ci95(values)
    return f"{mean:.4g}" if math.isnan(half) else f"{mean:.4g} ± {half:.2g}"


def summary_markdown(episodes: Sequence[dict[str, Any]], metrics: Sequence[str]) -> str:
    """Markdown tables, one per env: a row per policy, mean ± 95 % CI over seeds of return and ``metrics``."""
    lines = []
    for env_id in unique_in_order([row["env"] for row in episodes]):
        rows = [row for row in episodes if row["env"] == env_id]
        present = ["return", *[metric for metric in metrics if any(metric in row for row in rows)]]
        lines += [f"### {env_id}", "", "| policy | seeds | " + " | ".join(present) + " |"]
        lines.append("|---|---|" + "---|" * len(present))
        for policy in unique_in_order([row["policy"] for row in rows]):
            mine = [row for row in rows if row["policy"] == policy]
            cells = [format_cell(np.array([row.get(m, np.nan) for row in mine], dtype=float)) for m in present]
            lines.append(f"| {policy} | {len(mine)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Mean ± half-width of the 95 % Student-t confidence interval over the seeds.")
    return "\n".join(lines) + "\n"


def paired_markdown(episodes: Sequence[dict[str, Any]], metrics: Sequence[str], baseline: str) -> str:
    """Markdown tables, one per env: each policy's paired difference from ``baseline`` over their common seeds.

    For every seed both policies ran, the difference ``policy - baseline`` of return and of each metric; the cells
    are mean ± 95 % CI of those differences (a difference whose interval excludes 0 is significant at 5 %), which
    removes the seed-to-seed spread that two separate intervals carry.
    """
    lines = []
    for env_id in unique_in_order([row["env"] for row in episodes]):
        rows = [row for row in episodes if row["env"] == env_id]
        present = ["return", *[metric for metric in metrics if any(metric in row for row in rows)]]
        reference = {row["seed"]: row for row in rows if row["policy"] == baseline}
        header = "| policy | seeds | " + " | ".join(present) + " | p (return) |"
        lines += [f"### {env_id}: difference from {baseline}", "", header]
        lines.append("|---|---|" + "---|" * (len(present) + 1))
        for policy in unique_in_order([row["policy"] for row in rows if row["policy"] != baseline]):
            pairs = [
                (row, reference[row["seed"]]) for row in rows if row["policy"] == policy and row["seed"] in reference
            ]
            cells = [
                format_cell(np.array([mine.get(m, np.nan) - base.get(m, np.nan) for mine, base in pairs], dtype=float))
                if pairs
                else "-"
                for m in present
            ]
            test = paired_comparison(
                np.array([mine["return"] for mine, _ in pairs]), np.array([base["return"] for _, base in pairs])
            )
            p_cell = "-" if math.isnan(test.p_value) else f"{test.p_value:.2g}"
            lines.append(f"| {policy} | {len(pairs)} | " + " | ".join(cells) + f" | {p_cell} |")
        lines.append("")
    lines.append(
        f"Mean ± half-width of the 95 % Student-t confidence interval of the per-seed difference from {baseline}; "
        "p: two-sided paired t-test of the return (scipy.stats.ttest_rel)."
    )
    return "\n".join(lines) + "\n"


def write_outputs(
    results: Sequence[EpisodeResult], args: argparse.Namespace, plots: bool = True
) -> dict[str, list[Path]]:
    """Write the tidy files, the summary and the plots into ``args.out``; return the paths by kind."""
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    episodes = [result.episode for result in results]
    rounds = [row for result in results for row in result.rounds]
    write_csv(episodes, out / "episodes.csv")
    (out / "episodes.json").write_text(json.dumps(episodes, indent=1), encoding="utf-8")
    written: dict[str, list[Path]] = {"tables": [out / "episodes.csv", out / "episodes.json", out / "summary.md"]}
    if args.per_round:
        write_csv(rounds, out / "rounds.csv")
        written["tables"].append(out / "rounds.csv")
    summary = summary_markdown(episodes, args.metrics)
    if getattr(args, "baseline", None) is not None:
        summary += "\n" + paired_markdown(episodes, args.metrics, args.baseline)
    (out / "summary.md").write_text(summary, encoding="utf-8")
    written["plots"] = []
    if plots:
        for env_id in unique_in_order([row["env"] for row in episodes]):
            name = env_name(env_id)
            mine = [row for row in episodes if row["env"] == env_id]
            for metric in ["return", *args.metrics]:
                path = plot_bars(mine, metric, out / f"bars_{metric}_{name}.png", f"{name}: {metric}")
                written["plots"] += [path] if path else []
            mine_rounds = [row for row in rounds if row["env"] == env_id]
            for metric in args.plot_metric:
                path = plot_over_rounds(mine_rounds, metric, out / f"rounds_{metric}_{name}.png", f"{name}: {metric}")
                written["plots"] += [path] if path else []
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = build_parser()
    args, seeds, env_kwargs = parse_study(parser, argv)
    keep_rounds = args.per_round or (not args.no_plots and bool(args.plot_metric))
    tasks = make_tasks(args.env, args.policies, seeds, env_kwargs, keep_rounds, args.trust_pickle)
    with progress_bar(len(tasks), "episodes", disable=args.no_progress) as bar:
        try:
            results = run_tasks(tasks, args.workers, bar.update, args.backend, args.address)
        except RayUnavailableError as error:
            parser.error(str(error))
    written = write_outputs(results, args, plots=not args.no_plots)
    print((args.out / "summary.md").read_text(encoding="utf-8"))
    print(f"wrote {len(written['tables'])} tables and {len(written['plots'])} plots to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
