"""The run folder of ``ceas-train``: its name and the records written beside the model.

Layout (rl-baselines3-zoo style, one folder per run, numbered per environment)::

    <log-folder>/ppo/<EnvName>_<n>/
        args.yml          the parsed command-line arguments
        command.txt       the exact argv
        config.yml        the resolved hyper-parameters (file defaults + env entry + overrides) and env kwargs
        versions.json     library versions and platform
        tensorboard/PPO_1/events.out.tfevents.*
        checkpoints/rl_model_<t>_steps.{zip,json} (+ _vecnormalize.pkl)
        best_model/best_model.zip (+ best_model_vecnormalize.pkl), evaluations.npz
        final_model.zip (+ final_model_vecnormalize.pkl)

``<EnvName>`` is the env id without its namespace (``ceas_gym/EntanglementScheduling-Lite-v0`` ->
``EntanglementScheduling-Lite-v0``); ``<n>`` is one more than the largest number already there.
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


def env_name(env_id: str) -> str:
    """The env id without its namespace, safe as a folder name."""
    return env_id.rsplit("/", 1)[-1]


def next_run_folder(log_folder: Path, env_id: str, algorithm: str = "ppo") -> Path:
    """Return ``<log_folder>/<algorithm>/<EnvName>_<n>`` with ``n`` one more than the largest existing."""
    parent = Path(log_folder) / algorithm
    name = env_name(env_id)
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


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping written by :func:`write_records`."""
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}
