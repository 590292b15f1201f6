r"""``ceas-train``: train PPO on a registered environment, with the flags of rl-baselines3-zoo's ``train.py``.

Example::

    ceas-train --env ceas_gym/EntanglementScheduling-Lite-v0 -n 100000 --seed 0 -f logs/
    ceas-train --env ceas_gym/EntanglementScheduling-Lite-Tiny-v0 --hyperparams n_steps:128 gamma:0.95 \
        --env-kwargs flatten_observation:true --hyperparams policy:MlpPolicy
    ceas-train --resume logs/ppo/ceas_gym-EntanglementScheduling-Lite-v0_1
    ceas-train --env ceas_gym/EntanglementScheduling-Small-v0 --seed 0 1 2 --backend ray --address auto

Decisions:

* Hyper-parameters come from ``training/hyperparams/ppo.yml`` (see :mod:`training.hyperparams`); the run folder
  records the resolved values (see :mod:`training.run_folder`).
* ``MaskablePPO`` (sb3-contrib) is used when the environment exposes ``action_masks()``, ``PPO`` otherwise.
* ``MultiInputPolicy`` suits ``Dict`` observations; with ``flatten_observation: true`` the observation is one
  ``Box`` and ``MlpPolicy`` is used (a ``MultiInputPolicy`` entry is switched to ``MlpPolicy`` with a note).
* ``--eval-freq`` and ``--save-freq`` count timesteps summed over the parallel environments (the zoo divides by
  ``n_envs`` in the same way); a value <= 0 turns the periodic evaluation or checkpoint off. A checkpoint is
  always written at the end, and on Ctrl-C before exiting with status 130.
* The evaluation environment has seed ``seed + 1000``, a frozen copy of the training normaliser's statistics
  (synchronised by SB3's ``EvalCallback``) and unnormalised rewards.
* A ``pretrain`` entry in the hyper-parameters clones a registered baseline into the fresh policy before the first
  PPO update (:mod:`training.pretrain`); the run folder records it in ``pretrain.json``.
* A ``residual`` entry makes PPO learn a bounded correction of a registered baseline's action instead of the
  action itself (:mod:`training.residual`); ``residual.json`` beside the models tells ``ceas-eval`` so.
* ``--threads`` (default 1) sets torch's CPU threads; the small networks train fastest single-threaded.
* ``--resume RUN`` continues from the checkpoint with the most timesteps: model and ``VecNormalize`` statistics are
  loaded, ``num_timesteps`` keeps counting (``reset_num_timesteps=False``, same TensorBoard run) and training
  stops at the recorded ``n_timesteps`` (or a new total given with ``-n``).

* ``--seed`` with several values is a study: one independent run (and run folder) per seed, run one after the
  other, or as one Ray task each with ``--backend ray`` (on a private local Ray instance, or on a running cluster
  with ``--address HOST:PORT`` / ``auto``; :mod:`training.ray_backend`). Each run is exactly the run that
  ``ceas-train ... --seed S`` would make here (same model for the same seed); its ``command.txt`` records that
  single-seed command.

* A run folder is locked while a run trains in it (:mod:`training.run_lock`): a second ``ceas-train`` on the same
  folder exits 2 naming the holder. Checkpoints are written atomically and ``--resume`` takes the newest one that
  loads, saying which newer ones it skipped and why (:mod:`training.checkpoints`); TensorBoard events logged after
  that checkpoint are removed first, so no step appears twice (:mod:`training.tensorboard_purge`).
* Hyper-parameter values are checked before a model is built (:func:`training.hyperparams.check_ranges`);
  ``policy_kwargs`` is parsed, never evaluated (:mod:`training.policy_kwargs`).

Exit status: 0 on success, 2 on a bad argument (unknown env id, hyper-parameter or value, bad ``k:v``, missing run
folder, a run folder locked by another run, no loadable checkpoint), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml

from ceas_gym.config import ConfigError
from ceas_gym.files import atomic_write_text
from ceas_gym.help_text import plain_text
from ceas_gym.plugins import PluginError, resolve_env_id
from ceas_gym.progress import progress_bar
from training import hyperparams as hp
from training.callbacks import save_vecnormalize
from training.checkpoints import find_checkpoint, remove_temporaries, save_checkpoint, save_model
from training.envs import make_registered_env, make_training_envs
from training.model import (
    EVAL_SEED_OFFSET,
    algorithm_class,
    build_callbacks,
    build_model,
    choose_algorithm,
    choose_policy,
)
from training.pretrain import load_pretrain_config, pretrain
from training.residual import check_residual_space, load_residual_config, save_residual
from training.run_folder import (
    claim_run_folder,
    final_model_path,
    read_yaml,
    write_records,
    write_zoo_stats,
    zoo_algorithm,
)
from training.run_lock import RunLock, RunLockedError
from training.tensorboard_purge import purge_events_after

__all__ = [  # the command and the pieces other tools build on (ceas-bench ppo, the Ray backend, the tests)
    "EVAL_SEED_OFFSET",
    "algorithm_class",
    "build_callbacks",
    "build_model",
    "build_parser",
    "choose_algorithm",
    "choose_policy",
    "main",
    "make_registered_env",
    "make_training_envs",
    "resolve_new_run",
    "run_training",
    "set_torch_threads",
    "single_run_argv",
]


def build_parser() -> argparse.ArgumentParser:
    """The ``ceas-train`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="ceas-train",
        description=plain_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # studies rewrite the command line per seed (single_run_argv) by full flag names
    )
    parser.add_argument(
        "--env",
        help="registered environment id (e.g. ceas_gym/EntanglementScheduling-Lite-v0); 'module:EnvId' imports the "
        "installed module first, which runs its code",
    )
    parser.add_argument("-n", "--n-timesteps", type=int, default=None, help="total timesteps (overrides the file)")
    parser.add_argument("-f", "--log-folder", type=Path, default=Path("logs"), help="root of the run folders")
    parser.add_argument(
        "--seed", type=int, nargs="+", default=[0], help="seed of the environments and networks (several: a study)"
    )
    parser.add_argument("--hyperparams", nargs="+", default=[], metavar="K:V", help="hyper-parameter overrides")
    parser.add_argument("--env-kwargs", nargs="+", default=[], metavar="K:V", help="environment keyword arguments")
    parser.add_argument("--conf-file", type=Path, default=hp.DEFAULT_FILE, help="hyper-parameter YAML file")
    parser.add_argument("--n-envs", type=int, default=None, help="parallel environments (overrides the file)")
    parser.add_argument(
        "--vec-env", choices=hp.VEC_ENVS, default=None, help="vectorised env class (default: the file's, or dummy)"
    )
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--eval-freq", type=int, default=10_000, help="timesteps between evaluations (<= 0: off)")
    parser.add_argument("--eval-episodes", type=int, default=5, help="episodes per evaluation")
    parser.add_argument("--save-freq", type=int, default=10_000, help="timesteps between checkpoints (<= 0: off)")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN", help="continue the run in this folder")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="resume a run whose checkpoints hold pickled normalisers (*.pkl; unpickling runs the file's code)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    parser.add_argument(
        "--verbose", type=int, default=0, choices=[0, 1, 2],
        help="SB3 verbosity: 0 (default) shows the progress bar and this tool's lines only; 1 adds SB3's per-update "
        "tables and early-stopping notes; 2 also its debug lines",
    )  # fmt: skip
    parser.add_argument("--backend", choices=["local", "ray"], default="local", help="run here or as Ray tasks")
    parser.add_argument("--address", default=None, help="Ray cluster address (HOST:PORT or auto; --backend ray)")
    return parser


def set_torch_threads(threads: int) -> None:
    """Limit torch's CPU threads (``0`` leaves torch's default).

    The networks are small (two layers of 64); one thread avoids the contention that several threads per process
    cause on a shared or busy machine (measured 5x faster on 2 loaded cores).
    """
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def check_env_id(parser: argparse.ArgumentParser, env_id: str | None) -> str:
    """Exit 2 unless ``env_id`` (``"EnvId"`` or ``"module:EnvId"``) is registered; suggest the closest ids."""
    if not env_id:
        parser.error("--env is required (or --resume RUN)")
    try:
        resolve_env_id(env_id)  # plug-ins and "module:EnvId" ids; gym.make imports the module again in workers
    except (ConfigError, PluginError) as error:
        parser.error(str(error))
    return env_id



def resolve_new_run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """Resolve the configuration of a new run (env id, kwargs, hyper-parameters, algorithm); exit 2 on errors."""
    env_id = check_env_id(parser, args.env)
    try:
        overrides = hp.parse_key_values(args.hyperparams, "--hyperparams")
        env_kwargs = hp.parse_key_values(args.env_kwargs, "--env-kwargs")
        table = hp.load_file(args.conf_file)
    except (hp.HyperparameterError, OSError) as error:
        parser.error(str(error))
    merged = hp.merge(table, env_id, overrides)
    if args.n_timesteps is not None:
        merged["n_timesteps"] = args.n_timesteps
    if args.n_envs is not None:
        merged["n_envs"] = args.n_envs
    if args.vec_env is not None:
        merged["vec_env"] = args.vec_env
    merged.setdefault("vec_env", "dummy")
    if merged["vec_env"] not in hp.VEC_ENVS:
        parser.error(f"vec_env = {merged['vec_env']!r}: allowed are {', '.join(hp.VEC_ENVS)}")
    if merged["vec_env"] == "batched":
        from ceas_gym.envs.batched_sb3 import batched_ids

        if env_id not in batched_ids():
            parser.error(f"--vec-env batched: available for {', '.join(batched_ids())}, not {env_id}")
    file_env_kwargs = merged.pop("env_kwargs", None) or {}
    if not isinstance(file_env_kwargs, dict):
        parser.error(f"env_kwargs = {file_env_kwargs!r}: expected a mapping of environment keyword arguments")
    env_kwargs = {**file_env_kwargs, **env_kwargs}  # --env-kwargs wins key by key
    if merged.get("flatten_observation"):
        env_kwargs.setdefault("flatten_observation", True)
    try:
        probe = gym.make(env_id, **env_kwargs)
    except (TypeError, ValueError) as error:
        parser.error(f"--env-kwargs {env_kwargs!r} rejected by {env_id}: {error}")
    try:
        algorithm = choose_algorithm(probe)
        hp.validate_keys(merged, algorithm)
        merged["policy"] = choose_policy(merged.get("policy", "MultiInputPolicy"), probe.observation_space)
        hp.check_ranges(merged)
        hp.normalize_kwargs(merged.get("normalize"))
        hp.batch_workers(merged.get("batch_workers"), merged["vec_env"], merged.get("n_envs", 1))
        warm_start = load_pretrain_config(merged.get("pretrain"))
        residual = load_residual_config(merged.get("residual"))
        if residual is not None:
            check_residual_space(probe.action_space)
            if warm_start is not None:
                raise hp.HyperparameterError(
                    "pretrain and residual: give at most one (a residual policy already starts as its baseline)"
                )
    except hp.HyperparameterError as error:
        parser.error(str(error))
    finally:
        probe.close()
    for key in ("n_timesteps", "n_envs"):
        if not isinstance(merged.get(key), int) or merged[key] < 1:
            parser.error(f"{key} = {merged.get(key)!r}: must be an integer >= 1")
    return {
        "algorithm": algorithm.__name__,
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "seed": args.seed[0],
        "hyperparams": merged,
    }



STUDY_ONLY_FLAGS = ("--seed", "--backend", "--address")


@dataclass(frozen=True)
class TrainingOutcome:
    """How one training run ended: its exit status and run folder (``None`` when it stopped before having one)."""

    seed: int
    status: int
    run: str | None


def single_run_argv(argv: Sequence[str], seed: int) -> list[str]:
    """The command line of one run of a study: ``argv`` without the study flags, with ``--seed seed``.

    ``--seed`` may be followed by several values; ``--backend`` and ``--address`` by one (``--flag=value`` works
    too). The parser disallows abbreviated flags, so the full names are the only spellings.
    """
    single: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        name, has_value, _ = token.partition("=")
        index += 1
        if name not in STUDY_ONLY_FLAGS:
            single.append(token)
            continue
        if has_value:
            continue
        if name == "--seed":
            while index < len(argv) and not argv[index].startswith("-"):
                index += 1
        elif index < len(argv):
            index += 1
    quiet = [] if "--no-progress" in single else ["--no-progress"]
    return [*single, "--seed", str(seed), *quiet]


def train_one(argv: Sequence[str]) -> TrainingOutcome:
    """Run ``ceas-train`` for one seed (a study's task); a bad argument becomes status 2 instead of an exit."""
    seed = int(build_parser().parse_args(list(argv)).seed[0])
    try:
        status, run = run_training(argv)
    except SystemExit as exit_:
        return TrainingOutcome(seed, exit_.code if isinstance(exit_.code, int) else 1, None)
    return TrainingOutcome(seed, status, str(run))


def run_study(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str]) -> int:
    """One run per seed, here one after the other or as Ray tasks; print where each went; worst status."""
    resolve_new_run(parser, args)  # every argument checked once, before any run starts
    commands = [single_run_argv(argv, seed) for seed in args.seed]
    with progress_bar(len(commands), "runs", disable=args.no_progress) as bar:
        if args.backend == "ray":
            from training.ray_backend import RayUnavailableError, ray_map

            try:
                outcomes = ray_map(train_one, commands, args.address, bar.update)
            except RayUnavailableError as error:
                parser.error(str(error))
        else:
            outcomes = []
            for command in commands:
                outcomes.append(train_one(command))
                bar.update(1)
    for outcome in outcomes:
        print(f"seed {outcome.seed}: status {outcome.status}; run folder {outcome.run}")
    return max(outcome.status for outcome in outcomes)


DEVICE_PATTERN = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


def check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 on a flag value out of range, naming the flag and what is allowed."""
    if any(seed < 0 for seed in args.seed):
        parser.error(f"--seed {args.seed}: seeds must be >= 0")
    if args.threads < 0:
        parser.error(f"--threads {args.threads}: allowed is an integer >= 1, or 0 for torch's default")
    if not DEVICE_PATTERN.match(args.device):
        parser.error(f"--device {args.device!r}: allowed are cpu, cuda, cuda:N and auto")
    if args.eval_episodes < 1:
        parser.error(f"--eval-episodes {args.eval_episodes}: allowed is an integer >= 1")
    if args.n_timesteps is not None and args.n_timesteps < 1:
        parser.error(f"--n-timesteps {args.n_timesteps}: allowed is an integer >= 1")
    if args.n_envs is not None and args.n_envs < 1:
        parser.error(f"--n-envs {args.n_envs}: allowed is an integer >= 1")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    check_flags(parser, args)
    if args.address is not None and args.backend != "ray":
        parser.error("--address is the Ray cluster's address; it needs --backend ray")
    if args.resume is not None and (len(args.seed) > 1 or args.backend == "ray"):
        parser.error("--resume continues one run here; it takes neither several --seed values nor --backend ray")
    if len(args.seed) > 1 or args.backend == "ray":
        return run_study(parser, args, argv)
    return run_training(argv)[0]


def run_training(argv: Sequence[str]) -> tuple[int, Path]:
    """Train one run as ``argv`` says; return the exit status and the run folder.

    Raises:
        SystemExit: With status 2 on a bad argument (the parser's error).
    """
    argv = list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    check_flags(parser, args)
    set_torch_threads(args.threads)
    if args.resume is not None:
        run = args.resume
        if not (run / "config.yml").is_file():
            parser.error(f"--resume {str(run)!r}: no config.yml there; is it a ceas-train run folder?")
    else:
        config = resolve_new_run(parser, args)
        run = claim_run_folder(args.log_folder, config["env_id"], zoo_algorithm(config["algorithm"]))
    lock = RunLock(run)
    try:
        lock.acquire()
    except RunLockedError as error:
        parser.error(str(error))
    try:
        return _train_locked(parser, args, argv, run, None if args.resume is not None else config)
    finally:
        lock.release()


def _resume_point(
    parser: argparse.ArgumentParser, args: argparse.Namespace, run: Path, config: dict[str, Any]
) -> tuple[Path, int]:
    """The checkpoint to resume from; reports skipped ones; drops TensorBoard events logged after it."""
    for leftover in remove_temporaries(run / "checkpoints"):
        print(f"resume: removed {leftover.name}, a write cut short", file=sys.stderr)
    normalizes = hp.normalize_kwargs(config["hyperparams"].get("normalize")) is not None
    choice = find_checkpoint(run / "checkpoints", needs_normalizer=normalizes, trust_pickle=args.trust_pickle)
    for record, reason in choice.skipped:
        print(f"resume: skipped checkpoint {record.name}: {reason}", file=sys.stderr)
    if choice.model is None:
        parser.error(f"--resume {str(run)!r}: no checkpoint in {str(run / 'checkpoints')!r} loads")
    removed = purge_events_after(run / "tensorboard", choice.num_timesteps)
    if removed:
        print(f"resume: removed {removed} TensorBoard events logged after step {choice.num_timesteps}", file=sys.stderr)
    return choice.model, choice.num_timesteps


def _train_locked(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    argv: list[str],
    run: Path,
    config: dict[str, Any] | None,
) -> tuple[int, Path]:
    """The run itself, with the run folder's lock held (``config`` None: resume the run in ``run``)."""
    resume_from: Path | None = None
    start = 0
    if config is None:
        config = read_yaml(run / "config.yml")
        resume_from, start = _resume_point(parser, args, run, config)
        if args.n_timesteps is not None:
            config["hyperparams"]["n_timesteps"] = args.n_timesteps
            atomic_write_text(run / "config.yml", yaml.safe_dump(config, sort_keys=True))
        with (run / "command.txt").open("a", encoding="utf-8") as handle:
            handle.write(" ".join(["ceas-train", *argv]) + "\n")
    else:
        write_records(
            run,
            argv,
            {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
            config,
        )
    total = int(config["hyperparams"]["n_timesteps"])
    remaining = total - start
    if remaining <= 0:
        print(f"{run}: already trained for {start} of {total} timesteps; nothing to do")
        return 0, run
    model = build_model(config, run, args, resume_from)
    residual = load_residual_config(config["hyperparams"].get("residual"))
    if residual is not None:  # every folder that receives models gets the settings they act with
        for folder in (run, run / "best_model", run / "checkpoints"):
            save_residual(folder, residual)
    warm_start = load_pretrain_config(config["hyperparams"].get("pretrain"))
    if warm_start is not None and resume_from is None:
        record = pretrain(model, config["env_id"], config["env_kwargs"], warm_start, config["seed"])
        atomic_write_text(run / "pretrain.json", json.dumps(record, indent=2) + "\n")
        print(
            f"warm start: cloned {record['policy']} from {record['demonstration_steps']} steps (its mean episode "
            f"return {record['expert_mean_episode_return']:.2f}); actor loss {record['actor_loss']:.4g}, "
            f"critic loss {record['critic_loss']:.4g}"
        )
    callbacks = build_callbacks(args, run, config, int(config["hyperparams"]["n_envs"]))
    print(f"{config['algorithm']} on {config['env_id']}: timesteps {start} -> {total}; run folder {run}")
    try:
        model.learn(
            total_timesteps=remaining,
            callback=callbacks,
            progress_bar=not args.no_progress,
            reset_num_timesteps=resume_from is None,
            tb_log_name="PPO",
        )
    except KeyboardInterrupt:
        path = save_checkpoint(model, run / "checkpoints")
        print(f"interrupted at {model.num_timesteps} timesteps; checkpoint {path}; resume with --resume {run}")
        return 130, run
    finally:
        model.get_env().close()
    final = save_model(model, final_model_path(run, config["env_id"]))
    save_vecnormalize(model, final)
    write_zoo_stats(run, config, model.get_vec_normalize_env())
    save_checkpoint(model, run / "checkpoints")
    print(f"done: {model.num_timesteps} timesteps; final model {final}")
    return 0, run


if __name__ == "__main__":
    raise SystemExit(main())
