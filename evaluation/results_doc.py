r"""Regenerate the results page from ``ceas-eval`` and ``ceas-bench`` runs, in one command.

Example::

    python -m evaluation.results_doc --out docs/results.md \
        --env ceas_gym/EntanglementScheduling-Lite-v0 --policies eef greedy random \
        --models logs/ppo/ceas_gym-EntanglementScheduling-Lite-v0_1/best_model/best_model.zip --seeds 0-9 --workers 2

The page holds: the command that made it, the UTC time, versions and platform, the evaluation summary (mean ±
95 % CI over the seeds), links to the plots, the environment throughput and PPO's rollout-vs-update time split.
The plots, the tidy CSV/JSON and the benchmark JSON go to ``--assets`` (default ``<out stem>_assets/`` beside
the page; one sub-folder per environment for the evaluations) and are linked relatively. A model is evaluated on
every ``--env`` (``--models PATH``) or on one (``--models ENV_ID=PATH``: a model trained on one environment does
not fit another's observation space). Heavy settings (seeds, bench durations, PPO timesteps) are flags, so tests
run it small; ``--skip-bench`` leaves the benchmarks out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from ceas_gym.envs.batched_sb3 import batched_ids
from ceas_gym.help_text import plain_text
from evaluation import bench, cli, paper_fig4
from training.run_folder import env_name, versions_record


def build_parser() -> argparse.ArgumentParser:
    """The results-page argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m evaluation.results_doc",
        description=plain_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("docs/results.md"), help="the Markdown page to write")
    parser.add_argument("--assets", type=Path, default=None, help="folder for plots and data (default beside --out)")
    parser.add_argument("--env", nargs="+", default=["ceas_gym/EntanglementScheduling-Lite-v0"])
    parser.add_argument("--policies", nargs="+", default=["eef", "greedy", "random"])
    parser.add_argument(
        "--models",
        nargs="*",
        default=[],
        metavar="[ENV_ID=]PATH",
        help="saved PPO models (.zip) to evaluate as well: PATH on every --env, ENV_ID=PATH on that env only",
    )
    parser.add_argument("--seeds", nargs="+", default=["0-9"])
    parser.add_argument(
        "--env-seeds",
        nargs="*",
        default=[],
        metavar="ENV_ID=SEEDS",
        help="seeds for one env instead of --seeds, e.g. ceas_gym/EntanglementScheduling-Small-v0=0-49",
    )
    parser.add_argument("--baseline", default=None, metavar="POLICY", help="as in ceas-eval: paired differences")
    parser.add_argument("--metrics", nargs="+", default=list(cli.DEFAULT_METRICS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bench-duration", type=float, default=3.0, help="seconds per throughput measurement")
    parser.add_argument("--bench-n-envs", nargs="+", type=int, default=[4])
    parser.add_argument("--ppo-timesteps", type=int, default=8192, help="timesteps of the PPO time-split benchmark")
    parser.add_argument(
        "--bench-batched-copies",
        type=int,
        default=64,
        help="copies for the batched-vs-DummyVecEnv throughput and PPO rows (CEAS envs only; 0: skip)",
    )
    parser.add_argument("--skip-bench", action="store_true", help="leave the benchmarks out")
    parser.add_argument("--notes", type=Path, default=None, help="a Markdown file inserted after the command line")
    parser.add_argument(
        "--paper-fig4-seeds",
        type=int,
        default=0,
        help="also run the CEAS Fig. 4 comparison on the paper environment with this many seeds (0: skip)",
    )
    return parser


def relative(path: Path, start: Path) -> str:
    """``path`` relative to the folder ``start`` (POSIX separators), for Markdown links."""
    return Path(os.path.relpath(path, start)).as_posix()


def bench_resolved_vec_env(env_id: str) -> str:
    """The ``vec_env`` that ``ceas-train`` resolves for ``env_id`` from the hyper-parameter file."""
    from training import hyperparams as hp

    return str(hp.merge(hp.load_file(), env_id, {}).get("vec_env", "dummy"))


def split_env_prefix(
    parser: argparse.ArgumentParser, flag: str, spec: str, env_ids: Sequence[str]
) -> tuple[str | None, str]:
    """``ENV_ID=VALUE`` as ``(ENV_ID, VALUE)``; a spec without ``=`` as ``(None, spec)``.

    Exits 2 (``parser.error``, naming ``flag``) when ``ENV_ID`` is not among ``--env``.
    """
    env_id, has_env, value = spec.rpartition("=")
    if has_env and env_id not in env_ids:
        parser.error(f"{flag} {spec!r}: {env_id!r} is not one of --env ({', '.join(env_ids)})")
    return (env_id if has_env else None), value


def models_by_env(parser: argparse.ArgumentParser, env_ids: Sequence[str], specs: Sequence[str]) -> dict:
    """Which model paths to evaluate on each env: ``PATH`` on all of them, ``ENV_ID=PATH`` on that one.

    Exits 2 (``parser.error``) when an ``ENV_ID=`` prefix names an env that is not among ``--env``.
    """
    chosen: dict[str, list[str]] = {env_id: [] for env_id in env_ids}
    for spec in specs:
        env_id, path = split_env_prefix(parser, "--models", spec, env_ids)
        for target in env_ids if env_id is None else [env_id]:
            chosen[target].append(path)
    return chosen


def seeds_by_env(
    parser: argparse.ArgumentParser, env_ids: Sequence[str], default: Sequence[str], specs: Sequence[str]
) -> dict[str, list[str]]:
    """The seed arguments of each env: ``--seeds`` unless an ``ENV_ID=SEEDS`` entry names the env.

    Exits 2 (``parser.error``) on an entry without ``=`` or naming an env that is not among ``--env``.
    """
    chosen = {env_id: list(default) for env_id in env_ids}
    for spec in specs:
        env_id, seeds = split_env_prefix(parser, "--env-seeds", spec, env_ids)
        if env_id is None or not seeds:
            parser.error(f"--env-seeds {spec!r}: expected ENV_ID=SEEDS, e.g. {env_ids[0]}=0-49")
        chosen[env_id] = [seeds]
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluations and benchmarks, then write the page; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.notes is not None and not args.notes.is_file():
        parser.error(f"--notes {str(args.notes)!r}: no such file")
    assets = args.assets or args.out.with_name(args.out.stem + "_assets")
    page = args.out.parent
    sections = []
    env_seeds = seeds_by_env(parser, args.env, args.seeds, args.env_seeds)
    for env_id, models in models_by_env(parser, args.env, args.models).items():
        folder = assets / env_name(env_id)
        eval_argv = ["--env", env_id, "--policies", *args.policies, *models, "--seeds", *env_seeds[env_id]]
        eval_argv += ["--metrics", *args.metrics, "--workers", str(args.workers), "--out", str(folder)]
        eval_argv += ["--baseline", args.baseline] if args.baseline else []
        status = cli.main([*eval_argv, "--no-progress"])
        if status:
            return status
        sections += [
            (folder / "summary.md").read_text(encoding="utf-8"),
            "Per-episode data: [episodes.csv](" + relative(folder / "episodes.csv", page) + ").",
            "",
            *[f"![{plot.stem}]({relative(plot, page)})" for plot in sorted(folder.glob("*.png"))],
            "",
        ]
    lines = [
        "# Results",
        "",
        "Generated by `"
        + shlex.join(["python", "-m", "evaluation.results_doc", *argv])
        + "` at "
        + datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        + ".",
        "",
        *([args.notes.read_text(encoding="utf-8"), ""] if args.notes is not None else []),
        "## Policies",
        "",
        *sections,
    ]
    if args.paper_fig4_seeds:
        fig4 = assets / "paper_fig4"
        status = paper_fig4.main(
            ["--seeds", str(args.paper_fig4_seeds), "--workers", str(args.workers), "--out", str(fig4), "--no-progress"]
        )
        if status:
            return status
        lines += [
            "## The CEAS paper's experiment (Fig. 4)",
            "",
            f"`{paper_fig4.ENV_ID}`: CEAS with EEF scheduling against random participant selection with an "
            f"entanglement-oblivious scheduler, seeds 0-{args.paper_fig4_seeds - 1}, 300 rounds each "
            "(`python -m evaluation.paper_fig4`).",
            "",
            (fig4 / "summary.md").read_text(encoding="utf-8"),
            f"![paper_fig4]({relative(fig4 / 'accuracy.png', page)})",
            "",
        ]
    if not args.skip_bench:
        env_json, ppo_json = assets / "bench_env.json", assets / "bench_ppo.json"
        bench_argv = ["env", "--env", *args.env, "--duration", str(args.bench_duration), "--out", str(env_json)]
        bench.main([*bench_argv, "--n-envs", *map(str, args.bench_n_envs)])
        env_record = json.loads(env_json.read_text(encoding="utf-8"))
        lines += ["## Throughput", "", "| env | setting | steps/s |", "|---|---|---|"]
        for row in env_record["single"]:
            lines.append(f"| {row['env_id']} | single env | {row['steps_per_second']:.0f} |")
        for row in env_record["vectorised"]:
            lines.append(f"| {row['env_id']} | {row['vec_env']} x {row['n_envs']} | {row['steps_per_second']:.0f} |")
        batched_envs = [env_id for env_id in args.env if env_id in batched_ids()] if args.bench_batched_copies else []
        for env_id in batched_envs:
            copies = str(args.bench_batched_copies)
            bench_argv = ["env", "--env", env_id, "--duration", str(args.bench_duration), "--out", str(env_json)]
            bench.main([*bench_argv, "--n-envs", copies, "--vec-env", "dummy", "batched"])
            for row in json.loads(env_json.read_text(encoding="utf-8"))["vectorised"]:
                lines.append(f"| {env_id} | {row['vec_env']} x {copies} | {row['steps_per_second']:.0f} |")
        lines.append("")
        lines += ["## PPO wall time", "", "| env | vector env | timesteps | rollout | of which env stepping | update |"]
        lines.append("|---|---|---|---|---|---|")
        # The file's settings for every env. For the CEAS envs also DummyVecEnv and the batched environment with
        # the same copies and n_steps, so those two rows compare like with like (the file's row is dropped when
        # it is one of them).
        copies = str(args.bench_batched_copies)
        runs: list[tuple[str, list[str]]] = []
        for env_id in args.env:
            if env_id not in batched_envs:
                runs.append((env_id, []))
                continue
            if bench_resolved_vec_env(env_id) != "batched":
                runs.append((env_id, []))
            for form in ("dummy", "batched"):
                runs.append((env_id, ["--vec-env", form, "--n-envs", copies, "--hyperparams", "n_steps:32"]))
        for env_id, extra in runs:
            bench.main(
                ["ppo", "--env", env_id, "--n-timesteps", str(args.ppo_timesteps), "--out", str(ppo_json), *extra]
            )
            ppo_record = json.loads(ppo_json.read_text(encoding="utf-8"))
            share = ppo_record["share"]
            vector = f"{ppo_record['vec_env']} x {ppo_record['n_envs']}"
            lines.append(
                f"| {env_id} | {vector} | {args.ppo_timesteps} | {share['rollout']:.1%} "
                f"| {share['env_step']:.1%} | {share['update']:.1%} |"
            )
        lines.append("")
        lines.append(f"Load average (1, 5, 15 min) at the end: {env_record['environment']['load_average_1_5_15_min']}.")
        lines.append("")
    record = versions_record()
    lines += ["## Environment", "", "```json", json.dumps(record, indent=2), "```", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
