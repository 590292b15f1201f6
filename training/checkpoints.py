"""Resumable checkpoints of a ``ceas-train`` run: written atomically, chosen on resume by what loads.

A checkpoint of a model at ``t`` timesteps is three files in ``<run>/checkpoints/``, each written atomically
(:mod:`ceas_gym.files`: temporary file, ``fsync``, rename), the record last:

* ``rl_model_<t>_steps.zip``: the model;
* ``rl_model_<t>_steps_vecnormalize.npz``: its observation normaliser's statistics, when training uses one;
* ``rl_model_<t>_steps.json``: the record, ``{"num_timesteps": t, "model": "<zip name>", "normalizer": "<npz
  name>" or null, "saved_at_unix_s": ...}``. It is written last, so a record names files that were complete.

:func:`find_checkpoint` takes the record with the most timesteps whose files load: the record parses, its file
names are plain names inside the checkpoint folder (``../x.zip`` or an absolute path is refused), the model is a
complete zip with SB3's members, and the normaliser's statistics read (required when the run normalises). Every
newer record that fails is reported with its reason, so a run killed in the middle of a write resumes from the
checkpoint before.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.normalizer_io import NORMALIZER_SUFFIX, load_normalizer, read_statistics, save_statistics
from ceas_gym.files import TEMPORARY_SUFFIX, atomic_write_bytes, atomic_write_text

__all__ = ["CheckpointChoice", "find_checkpoint", "remove_temporaries", "save_checkpoint", "save_model"]

MODEL_MEMBERS = ("data", "policy.pth")
"""Members every stable-baselines3 model zip has."""


def save_model(model: Any, path: Path) -> Path:
    """Save an SB3 model to ``path`` atomically: a reader finds the previous file or the whole new one."""
    buffer = io.BytesIO()
    model.save(buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def save_checkpoint(model: Any, folder: Path, prefix: str = "rl_model") -> Path:
    """Save model, normaliser statistics and record in ``folder`` (see the module docstring); return the model path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    steps = int(model.num_timesteps)
    path = save_model(model, folder / f"{prefix}_{steps}_steps.zip")
    normalizer = model.get_vec_normalize_env()
    normalizer_name = None
    if normalizer is not None:
        normalizer_name = path.stem + NORMALIZER_SUFFIX
        save_statistics(normalizer, folder / normalizer_name)
    record = {
        "num_timesteps": steps,
        "model": path.name,
        "normalizer": normalizer_name,
        "saved_at_unix_s": time.time(),
    }
    atomic_write_text(path.with_suffix(".json"), json.dumps(record, indent=2))
    return path


@dataclass(frozen=True)
class CheckpointChoice:
    """The checkpoint to resume from, and the newer records that were passed over.

    Attributes:
        model: Path of the checkpoint's model zip (None when no checkpoint loads).
        num_timesteps: Its timesteps (0 when none).
        skipped: ``(record file, reason)`` for every record passed over, newest first.
    """

    model: Path | None
    num_timesteps: int
    skipped: tuple[tuple[Path, str], ...] = field(default=())


def _inside(folder: Path, name: Any, what: str) -> Path:
    """``folder / name`` for a plain file name; ValueError for anything that could point elsewhere."""
    if not isinstance(name, str) or not name or Path(name).name != name or name in {".", ".."}:
        raise ValueError(f"{what} {name!r} is not a plain file name inside the checkpoint folder")
    path = (folder / name).resolve()
    if path.parent != folder.resolve():
        raise ValueError(f"{what} {name!r} resolves outside the checkpoint folder")
    return path


def _check_model_zip(path: Path) -> None:
    if not path.is_file():
        raise ValueError(f"model {path.name} is missing")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"model {path.name} is not a zip file")
    with zipfile.ZipFile(path) as archive:
        damaged = archive.testzip()
        if damaged is not None:
            raise ValueError(f"model {path.name}: member {damaged} is damaged")
        missing = [member for member in MODEL_MEMBERS if member not in archive.namelist()]
        if missing:
            raise ValueError(f"model {path.name} lacks {', '.join(missing)}")


def _check_record(folder: Path, record_path: Path, needs_normalizer: bool, trust_pickle: bool) -> tuple[Path, int]:
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"record does not parse ({error})") from None
    if not isinstance(record, dict):
        raise ValueError("record is not a JSON object")
    steps = record.get("num_timesteps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"num_timesteps = {steps!r} is not an integer >= 0")
    model = _inside(folder, record.get("model"), "model")
    _check_model_zip(model)
    if record.get("normalizer") is not None:
        read_statistics(_inside(folder, record["normalizer"], "normalizer"))  # raises ValueError when damaged
    elif needs_normalizer and load_normalizer(model, trust_pickle) is None:  # a record of an older run
        raise ValueError("the run normalises observations, but no normaliser statistics lie beside the model")
    return model, steps


def _record_steps(record_path: Path) -> int:
    """Timesteps in a record's file name (``<prefix>_<t>_steps.json``), to try newer records first."""
    digits = record_path.stem.removesuffix("_steps").rsplit("_", 1)[-1]
    return int(digits) if digits.isdigit() else -1


def find_checkpoint(folder: Path, needs_normalizer: bool = False, trust_pickle: bool = False) -> CheckpointChoice:
    """The newest checkpoint in ``folder`` that loads (see the module docstring).

    Args:
        folder: The run's ``checkpoints/`` folder.
        needs_normalizer: The run normalises observations, so a checkpoint without readable statistics is unusable.
        trust_pickle: Accept a legacy pickled normaliser beside a checkpoint of an older run (runs the file's code).

    Returns:
        The choice; ``model`` is None when no record loads (``skipped`` says why each failed).
    """
    folder = Path(folder)
    skipped: list[tuple[Path, str]] = []
    for record_path in sorted(folder.glob("*_steps.json"), key=_record_steps, reverse=True):
        try:
            model, steps = _check_record(folder, record_path, needs_normalizer, trust_pickle)
        except ValueError as error:
            skipped.append((record_path, str(error)))
            continue
        return CheckpointChoice(model, steps, tuple(skipped))
    return CheckpointChoice(None, 0, tuple(skipped))


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files that writes cut short by a kill left in ``folder``; return them.

    Call it only while holding the run's lock (:mod:`training.run_lock`): then no write is in progress.
    """
    leftovers = sorted(Path(folder).glob(f".*{TEMPORARY_SUFFIX}"))
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers
