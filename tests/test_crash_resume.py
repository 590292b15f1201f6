"""Real faults: ``ceas-train`` killed with SIGKILL at 10 points, then resumed, ends as if it had never died.

Half the kill points fall at seeded random times after the first checkpoint, half the moment a checkpoint's
temporary file appears (the process is inside a checkpoint write). After each kill, ``--resume`` must finish the
run: it ends at exactly the requested timesteps, its checkpoints hold each step once, and no TensorBoard step
appears twice for any tag (counted on the raw event records, which TensorBoard's own loader would tidy up).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from training.checkpoints import find_checkpoint

pytestmark = pytest.mark.slow

TOTAL = 512
ROLLOUT = 64
COMMAND = [
    sys.executable, "-m", "training.train", "--env", "ceas_gym/EntanglementScheduling-Lite-Tiny-v0",
    "-n", str(TOTAL), "--seed", "0", "--eval-freq", "0", "--save-freq", str(ROLLOUT), "--hyperparams",
    f"n_steps:{ROLLOUT}", f"batch_size:{ROLLOUT}", "n_epochs:1", "--n-envs", "1", "--no-progress", "--verbose", "0",
]  # fmt: skip
KILL_POINTS = [("time", float(delay)) for delay in np.random.default_rng(7).uniform(0.0, 1.2, 5)] + [
    ("checkpoint write", float(after)) for after in (0, 1, 2, 3, 4)
]


def _wait_for(condition, timeout_s: float = 120.0, poll_s: float = 0.0005) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the training process")
        time.sleep(poll_s)


def _temporaries(checkpoints: Path) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(checkpoints) if entry.name.endswith(".tmp")]
    except FileNotFoundError:
        return []


def _kill_during(process: subprocess.Popen, checkpoints: Path, kind: str, value: float) -> bool:
    """Kill ``process`` at the kill point; return True when it died inside a checkpoint write."""
    _wait_for(lambda: any(checkpoints.glob("*_steps.json")) or process.poll() is not None)
    if kind == "time":
        time.sleep(value)
    else:  # the (value + 1)-th temporary file seen after the first checkpoint
        for _ in range(int(value) + 1):
            seen = set(_temporaries(checkpoints))
            _wait_for(lambda seen=seen: bool(set(_temporaries(checkpoints)) - seen) or process.poll() is not None)
    writing = bool(_temporaries(checkpoints))
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait()
    return writing and process.returncode == -signal.SIGKILL


def _event_steps(run: Path) -> Counter:
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2

    counts: Counter = Counter()
    for path in sorted((run / "tensorboard").rglob("events.out.tfevents.*")):
        for record in RawEventFileLoader(str(path)).Load():
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                counts[(value.tag, event.step)] += 1
    return counts


def test_runs_killed_at_ten_points_resume_to_exactly_the_requested_steps(tmp_path: Path) -> None:
    repository = Path(__file__).resolve().parents[1]
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    killed_in_writes = 0
    for index, (kind, value) in enumerate(KILL_POINTS):
        logs = tmp_path / f"logs_{index}"
        run = logs / "ppo" / "ceas_gym-EntanglementScheduling-Lite-Tiny-v0_1"
        process = subprocess.Popen(
            [*COMMAND, "-f", str(logs)], cwd=repository, env=environment, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        killed_in_writes += _kill_during(process, run / "checkpoints", kind, value)
        resume = ["--resume", str(run), "--save-freq", str(ROLLOUT), "--eval-freq", "0", *COMMAND[-3:]]
        resumed = subprocess.run(
            [sys.executable, "-m", "training.train", *resume],
            cwd=repository, env=environment, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert resumed.returncode == 0, (kind, value, resumed.stderr[-2000:])
        choice = find_checkpoint(run / "checkpoints", needs_normalizer=True)
        assert choice.num_timesteps == TOTAL and not choice.skipped, (kind, value, choice)
        with zipfile.ZipFile(run / "ceas_gym-EntanglementScheduling-Lite-Tiny-v0.zip") as archive:
            assert json.loads(archive.read("data"))["num_timesteps"] == TOTAL
        records = [json.loads(path.read_text()) for path in (run / "checkpoints").glob("*_steps.json")]
        steps = sorted(record["num_timesteps"] for record in records)
        assert steps == list(range(ROLLOUT, TOTAL + 1, ROLLOUT)), (kind, value, steps)  # each step once
        assert not list((run / "checkpoints").glob(".*.tmp"))  # writes cut short were cleaned up
        events = _event_steps(run)
        twice = sorted(key for key, count in events.items() if count > 1)
        assert not twice, (kind, value, twice[:5])
        logged = sorted({step for tag, step in events if tag == "train/loss"})
        assert logged[-1] == TOTAL and logged == sorted(set(logged))
        assert not (run / ".lock").read_text()  # the resumed run released its lock
    assert killed_in_writes >= 1  # at least one kill landed inside a checkpoint write
