"""``ceas-bench``: environment throughput, PPO's rollout-vs-update time split, and the DQNN round benchmark.

Subcommands::

    ceas-bench env --env ceas_gym/EntanglementScheduling-Lite-v0 --duration 5 --n-envs 4 --out results/env.json
    ceas-bench ppo --env ceas_gym/EntanglementScheduling-Lite-v0 --n-timesteps 2048 --out results/ppo.json
    ceas-bench dqnn -- --nodes 50 --repeats 30        # runs benchmarks/bench_dqnn_round.py with these flags

Method:

* ``env``: single-env steps per second with :func:`evaluation.throughput.measure_steps_per_second` (warm-up,
  pre-sampled actions, fixed wall-clock window); then, for each ``--n-envs`` value, SB3 ``DummyVecEnv`` and
  ``SubprocVecEnv`` (and, with ``--vec-env batched``, the CEAS envs' lock-step batch) steps per second,
  counting ``n_envs`` env steps per ``VecEnv.step`` with pre-sampled batched
  actions (auto-reset cost included), after ``--warmup`` untimed vector steps.
* ``ppo``: trains PPO with ceas-train's resolved hyper-parameters for ``--n-timesteps`` and times, by wrapping
  the bound methods, ``collect_rollouts`` (rollout: env steps plus the policy's forward passes), the VecEnv's
  ``step`` inside it (env stepping alone) and ``train`` (the gradient updates). The shares are fractions of
  ``learn``'s wall time; the rest (logging, setup) is reported as ``other``. When the hyper-parameters have a
  ``pretrain`` entry the warm start runs first, as in ``ceas-train``, outside the timed window (its seconds are
  recorded apart), so the timed updates are those of fine-tuning the cloned policy.
* Every JSON record carries the versions and platform of :func:`training.run_folder.versions_record` and the
  machine's load average at the end (figures taken on a busy machine are not comparable).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from ceas_gym.config import ConfigError
from ceas_gym.help_text import plain_text
from ceas_gym.plugins import PluginError, resolve_env_id
from evaluation.bench_plots import plot_bench
from evaluation.throughput import measure_steps_per_second
from training.run_folder import versions_record

DQNN_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_dqnn_round.py"


def measure_vec_steps_per_second(
    env_id: str,
    n_envs: int,
    vec_env: str,
    duration_s: float,
    warmup: int = 20,
    num_actions: int = 256,
    seed: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """Env steps per second of ``n_envs`` copies in a Dummy/SubprocVecEnv (``n_envs`` steps per vector step).

    Args:
        env_id: Registered environment id.
        n_envs: Parallel environments (>= 1).
        vec_env: ``"dummy"`` or ``"subproc"``.
        duration_s: Timed window, seconds (> 0).
        warmup: Untimed vector steps first.
        num_actions: Pre-sampled batched actions, reused cyclically.
        seed: Seed of the envs and of the action pool.
        clock: Monotonic clock in seconds.
    """
    from training.train import make_training_envs

    if duration_s <= 0:
        raise ValueError(f"duration_s = {duration_s!r}: must be > 0 seconds")
    venv = make_training_envs(env_id, n_envs, seed, {}, vec_env)
    try:
        space = venv.action_space
        space.seed(seed)
        actions = np.stack([np.stack([space.sample() for _ in range(n_envs)]) for _ in range(num_actions)])
        venv.reset()
        for index in range(warmup):
            venv.step(actions[index % num_actions])
        calls = 0
        start = clock()
        elapsed = 0.0
        while elapsed < duration_s:
            venv.step(actions[calls % num_actions])
            calls += 1
            elapsed = clock() - start
    finally:
        venv.close()
    steps = calls * n_envs
    return {
        "env_id": env_id,
        "vec_env": vec_env,
        "n_envs": n_envs,
        "steps": steps,
        "seconds": elapsed,
        "steps_per_second": steps / elapsed,
    }


def bench_env(args: argparse.Namespace) -> dict[str, Any]:
    """Single and vectorised throughput of each ``--env``."""
    single, vectorised = [], []
    for env_id in args.env:
        env = gym.make(env_id)
        single.append(asdict(measure_steps_per_second(env, env_id, duration_s=args.duration, seed=args.seed)))
        env.close()
        for n_envs in args.n_envs:
            for kind in args.vec_env:
                vectorised.append(measure_vec_steps_per_second(env_id, n_envs, kind, args.duration, seed=args.seed))
    for row in single:
        print(f"{row['env_id']}: single env {row['steps_per_second']:.0f} steps/s")
    for row in vectorised:
        print(f"{row['env_id']}: {row['vec_env']} x {row['n_envs']}: {row['steps_per_second']:.0f} steps/s")
    return {"benchmark": "env", "single": single, "vectorised": vectorised}


class PhaseTimer:
    """Accumulated wall-clock seconds per named phase, filled by wrapping bound methods."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        """Return ``method`` timed under ``name``."""

        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = self.clock()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + self.clock() - start
                self.calls[name] = self.calls.get(name, 0) + 1

        return timed


def bench_ppo(args: argparse.Namespace) -> dict[str, Any]:
    """Share of PPO's wall time spent collecting rollouts vs updating the networks."""
    import torch

    from training import train
    from training.pretrain import load_pretrain_config, pretrain

    train.set_torch_threads(args.threads)
    parser = train.build_parser()
    train_args = parser.parse_args(
        ["--env", args.env, "-n", str(args.n_timesteps), "--seed", str(args.seed), "--verbose", "0"]
        + (["--vec-env", args.vec_env] if args.vec_env else [])
        + (["--n-envs", str(args.n_envs)] if args.n_envs else [])
        + (["--hyperparams", *args.hyperparams] if args.hyperparams else [])
        + (["--env-kwargs", *args.env_kwargs] if args.env_kwargs else [])
    )
    config = train.resolve_new_run(parser, train_args)
    model = train.build_model(config, Path("."), train_args, None)
    model.tensorboard_log = None
    warm_start = load_pretrain_config(config["hyperparams"].get("pretrain"))
    pretrain_seconds = 0.0
    if warm_start is not None:
        started = time.perf_counter()
        pretrain(model, config["env_id"], config["env_kwargs"], warm_start, config["seed"])
        pretrain_seconds = time.perf_counter() - started
    timer = PhaseTimer()
    model.collect_rollouts = timer.wrap("rollout", model.collect_rollouts)
    model.train = timer.wrap("update", model.train)
    venv = model.get_env()
    venv.step = timer.wrap("env_step", venv.step)
    learner_threads = torch.get_num_threads()  # after the env's own setting (learning.torch_threads), if in-process
    start = time.perf_counter()
    model.learn(total_timesteps=args.n_timesteps, progress_bar=False)
    total = time.perf_counter() - start
    venv.close()
    rollout, update, env_step = (timer.seconds.get(k, 0.0) for k in ("rollout", "update", "env_step"))
    record = {
        "benchmark": "ppo",
        "env_id": args.env,
        "algorithm": config["algorithm"],
        "num_timesteps": int(model.num_timesteps),
        "n_envs": int(config["hyperparams"]["n_envs"]),
        "vec_env": config["hyperparams"]["vec_env"],
        "batch_workers": int(config["hyperparams"].get("batch_workers", 1)),
        "n_steps": int(config["hyperparams"].get("n_steps", 2048)),
        "torch_threads": args.threads,
        "learner_torch_threads": learner_threads,
        "seconds": {
            "total": total,
            "rollout": rollout,
            "env_step": env_step,
            "update": update,
            "pretrain_untimed": pretrain_seconds,
        },
        "share": {
            "rollout": rollout / total,
            "env_step": env_step / total,
            "policy_in_rollout": (rollout - env_step) / total,
            "update": update / total,
            "other": max(total - rollout - update, 0.0) / total,
        },
        "iterations": timer.calls.get("update", 0),
        "hyperparams": {k: v for k, v in config["hyperparams"].items() if k != "info_keywords"},
    }
    share = record["share"]
    print(
        f"{args.env}: {model.num_timesteps} timesteps in {total:.1f} s; rollout {share['rollout']:.1%} "
        f"(env stepping {share['env_step']:.1%}), update {share['update']:.1%}, other {share['other']:.1%}"
    )
    return record


def bench_dqnn(args: argparse.Namespace) -> dict[str, Any] | None:
    """Run ``benchmarks/bench_dqnn_round.py``'s measurement with the forwarded flags (it prints and writes)."""
    if not DQNN_SCRIPT.is_file():
        raise FileNotFoundError(f"{DQNN_SCRIPT} not found (the dqnn benchmark needs a source checkout)")
    spec = importlib.util.spec_from_file_location("bench_dqnn_round", DQNN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    forwarded = [item for item in args.forward if item != "--"]
    saved = sys.argv
    sys.argv = [str(DQNN_SCRIPT), *forwarded]
    try:
        module.main()
    finally:
        sys.argv = saved
    return None


def build_parser() -> argparse.ArgumentParser:
    """The ``ceas-bench`` argument parser with its ``env``, ``ppo`` and ``dqnn`` subcommands."""
    parser = argparse.ArgumentParser(
        prog="ceas-bench", description=plain_text(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    env = commands.add_parser("env", help="single and vectorised env steps per second")
    env.add_argument("--env", nargs="+", default=["ceas_gym/EntanglementScheduling-Lite-v0"])
    env.add_argument("--duration", type=float, default=5.0, help="timed window per measurement, seconds")
    env.add_argument("--n-envs", nargs="+", type=int, default=[4], help="vectorised sizes")
    env.add_argument(
        "--vec-env",
        nargs="+",
        choices=["dummy", "subproc", "batched"],
        default=["dummy", "subproc"],
        help="vectorised forms to measure (batched: the CEAS envs' lock-step batch)",
    )
    env.add_argument("--seed", type=int, default=0)
    env.add_argument("--out", type=Path, default=None, help="write the JSON record here")
    ppo = commands.add_parser("ppo", help="PPO wall time: rollout collection vs network updates")
    ppo.add_argument("--env", default="ceas_gym/EntanglementScheduling-Lite-v0")
    ppo.add_argument("--n-timesteps", type=int, default=2048)
    ppo.add_argument("--n-envs", type=int, default=None, help="override the hyper-parameter file")
    ppo.add_argument("--vec-env", choices=["dummy", "subproc", "batched"], default=None, help="as in ceas-train")
    ppo.add_argument("--hyperparams", nargs="+", default=[], metavar="K:V")
    ppo.add_argument("--env-kwargs", nargs="+", default=[], metavar="K:V", help="environment keyword arguments")
    ppo.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    ppo.add_argument("--seed", type=int, default=0)
    ppo.add_argument("--out", type=Path, default=None, help="write the JSON record here")
    dqnn = commands.add_parser("dqnn", help="benchmarks/bench_dqnn_round.py (flags after -- are forwarded)")
    dqnn.add_argument("forward", nargs=argparse.REMAINDER, help="flags for bench_dqnn_round.py")
    return parser


def check_env_ids(parser: argparse.ArgumentParser, env_ids: Sequence[str]) -> None:
    """Exit 2 on an unregistered env id (``"EnvId"`` or ``"module:EnvId"``), naming the closest registered ones."""
    for env_id in env_ids:
        try:
            resolve_env_id(env_id)
        except (ConfigError, PluginError) as error:
            parser.error(str(error))


def check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 on a flag value out of range, naming the flag and what is allowed."""
    if args.command == "env":
        if not args.duration > 0:
            parser.error(f"--duration {args.duration}: allowed is a number of seconds > 0")
        if any(size < 1 for size in args.n_envs):
            parser.error(f"--n-envs {args.n_envs}: every size must be an integer >= 1")
    if args.command == "ppo":
        if args.n_timesteps < 1:
            parser.error(f"--n-timesteps {args.n_timesteps}: allowed is an integer >= 1")
        if args.n_envs is not None and args.n_envs < 1:
            parser.error(f"--n-envs {args.n_envs}: allowed is an integer >= 1")
        if args.threads < 0:
            parser.error(f"--threads {args.threads}: allowed is an integer >= 1, or 0 for torch's default")
    if getattr(args, "out", None) is not None and args.out.is_dir():
        parser.error(f"--out {str(args.out)!r} is a folder; give the JSON file's path")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "dqnn":
        bench_dqnn(args)
        return 0
    check_flags(parser, args)
    check_env_ids(parser, args.env if isinstance(args.env, list) else [args.env])
    record = bench_env(args) if args.command == "env" else bench_ppo(args)
    record["environment"] = versions_record()
    record["environment"]["load_average_1_5_15_min"] = list(os.getloadavg())
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2), encoding="utf-8")
        figure = plot_bench(record, args.out.with_suffix(".png"))
        print(f"wrote {args.out} and {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
