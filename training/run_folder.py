"""The run folder of ``ceas-train``: its name and the records written beside the model.

Layout (rl-baselines3-zoo's, one folder per run, numbered per environment)::

    <log-folder>/<algo>/<namespace>-<EnvName>_<n>/
        <namespace>-<EnvName>.zip   the model after the last timestep (+ _vecnormalize.npz)
        <namespace>-<EnvName>/      the zoo's stats folder: config.yml (normalize, env_kwargs), args.yml
                                    (env, algo, env_kwargs) and vecnormalize.pkl (SB3's pickle, for the zoo only)
        args.yml                    the parsed command-line arguments
        command.txt                 the exact argv
        config.yml                  the resolved hyper-parameters (file defaults + env entry + overrides), env kwargs
        versions.json               library versions and platform
        tensorboard/PPO_1/events.out.tfevents.*
        checkpoints/rl_model_<t>_steps.{zip,json} (+ _vecnormalize.npz)
        best_model/best_model.zip (+ best_model_vecnormalize.npz), evaluations.npz

``<algo>`` is the zoo's name of the algorithm (``ppo``, ``ppo_mask`` for MaskablePPO); ``<namespace>-<EnvName>``
is the env id with ``/`` replaced by ``-`` as the zoo (huggingface_sb3's ``EnvironmentName``) spells it
(``ceas_gym/EntanglementScheduling-Lite-v0`` -> ``ceas_gym-EntanglementScheduling-Lite-v0``), so two plug-ins with
the same environment name do not share folders; ``<n>`` is one more than the largest number already there. So
``python -m rl_zoo3.enjoy --algo ppo --env ceas_gym/EntanglementScheduling-Lite-v0 -f <log-folder> --exp-id <n>
--gym-packages ceas_gym --no-render`` replays a run.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ceas_gym.provenance import environment_record, package_versions

EXTRA_PACKAGES = ("sb3-contrib", "tensorboard", "pyyaml")


ZOO_ALGORITHMS = {"PPO": "ppo", "MaskablePPO": "ppo_mask"}
"""The zoo's folder (and ``--algo``) name of each algorithm ``ceas-train`` trains."""


def zoo_algorithm(algorithm: str) -> str:
    """The zoo's name of ``algorithm`` (a class name such as ``"PPO"``); unknown ones in lower case."""
    return ZOO_ALGORITHMS.get(algorithm, algorithm.lower())


def env_name(env_id: str) -> str:
    """The env id without its namespace, safe as a folder name (results pages)."""
    return env_id.rsplit("/", 1)[-1]


def zoo_env_name(env_id: str) -> str:
    """The env id as rl-baselines3-zoo names its folders and models: ``/`` replaced by ``-``."""
    return env_id.replace("/", "-")


def final_model_path(run: Path, env_id: str) -> Path:
    """``<run>/<namespace>-<EnvName>.zip``, the model after the last timestep (the zoo's name for it)."""
    return Path(run) / f"{zoo_env_name(env_id)}.zip"


def next_run_folder(log_folder: Path, env_id: str, algorithm: str = "ppo") -> Path:
    """Return ``<log_folder>/<algorithm>/<namespace>-<EnvName>_<n>`` with ``n`` one more than the largest existing."""
    parent = Path(log_folder) / algorithm
    name = zoo_env_name(env_id)
    pattern = re.compile(rf"^{re.escape(name)}_(\d+)$")
    numbers = [int(m.group(1)) for path in parent.glob(f"{name}_*") if (m := pattern.match(path.name))]
    return parent / f"{name}_{max(numbers, default=0) + 1}"


def claim_run_folder(log_folder: Path, env_id: str, algorithm: str = "ppo") -> Path:
    """Create and return the next run folder; safe when several runs start at once (one folder each).

    The folder is created with ``exist_ok=False``: a run that loses the race for a number takes the next one.
    """
    while True:
        folder = next_run_folder(log_folder, env_id, algorithm)
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder


def versions_record() -> dict[str, Any]:
    """Library versions and platform (the throughput record plus the training libraries)."""
    record = environment_record()
    record["versions"].update(package_versions(EXTRA_PACKAGES))
    return record


def write_records(folder: Path, argv: Sequence[str], args: dict[str, Any], config: dict[str, Any]) -> None:
    """Write ``command.txt``, ``args.yml``, ``config.yml`` and ``versions.json`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "command.txt").write_text(shlex.join(["ceas-train", *argv]) + "\n", encoding="utf-8")
    (folder / "args.yml").write_text(yaml.safe_dump(args, sort_keys=True), encoding="utf-8")
    (folder / "config.yml").write_text(yaml.safe_dump(config, sort_keys=True), encoding="utf-8")
    (folder / "versions.json").write_text(json.dumps(versions_record(), indent=2), encoding="utf-8")


def write_zoo_stats(run: Path, config: dict[str, Any], normalizer: Any | None) -> Path:
    """Write the zoo's stats folder ``<run>/<namespace>-<EnvName>/`` (see the module docstring); return it.

    ``normalizer`` (SB3's ``VecNormalize`` or None) is saved as ``vecnormalize.pkl``, the file the zoo loads. Our own
    tools never read it (they read the ``.npz`` beside each model, :mod:`agents.normalizer_io`).
    """
    env_id = config["env_id"]
    stats = Path(run) / zoo_env_name(env_id)
    stats.mkdir(parents=True, exist_ok=True)
    normalize = config["hyperparams"].get("normalize", False)
    zoo_config = {"normalize": normalize if normalizer is not None else False, "env_kwargs": config["env_kwargs"]}
    algo = zoo_algorithm(config["algorithm"])
    zoo_args = {"env": env_id, "algo": algo, "env_kwargs": config["env_kwargs"], "seed": config["seed"]}
    (stats / "config.yml").write_text(yaml.safe_dump(zoo_config, sort_keys=True), encoding="utf-8")
    (stats / "args.yml").write_text(yaml.safe_dump(zoo_args, sort_keys=True), encoding="utf-8")
    if normalizer is not None:
        normalizer.save(str(stats / "vecnormalize.pkl"))
    return stats


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping written by :func:`write_records`."""
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}
