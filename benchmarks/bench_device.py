"""Copy-steps per second of the batched CEAS environment with its learning layer on the CPU and on a CUDA GPU.

For each ``--presets`` entry, each ``--devices`` entry and each ``--copies`` count, one
:class:`~ceas_gym.envs.batched_ceas.BatchedEntanglementSchedulingEnv` (``learning.device`` set to the device) is
reset, stepped ``--warmup`` times untimed with pre-sampled random actions, then timed for ``--duration`` seconds.
Every step returns NumPy observations and rewards, so a timed step includes the GPU's work (no extra
synchronisation is needed). ``copies = 1`` is the single-copy rate; the single environment
(:class:`~ceas_gym.envs.ceas.EntanglementSchedulingEnv`) runs the same arithmetic per round.

Only the learning layer (circuit simulation, training, attacks, predictions, evaluation) moves to the GPU; the
link layer, gossip bookkeeping and BFT rule stay NumPy on the CPU. Devices that are not available are skipped
with a note.

python benchmarks/bench_device.py --presets small paper --copies 1 64 256 --devices cpu cuda --out results/device.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_batched_env import measure  # benchmarks/ is on the path when a script in it runs

from ceas_gym.envs.batched_ceas import BatchedEntanglementSchedulingEnv
from ceas_gym.provenance import environment_record


def copy_steps_per_second(
    preset: str, device: str, copies: int, duration_s: float, warmup: int, threads: int, seed: int
) -> float:
    """Copy-steps per second of ``copies`` batched copies of ``preset`` with the learning layer on ``device``."""
    env = BatchedEntanglementSchedulingEnv(copies, preset=preset, learning={"device": device, "torch_threads": threads})
    rng = np.random.default_rng(seed)
    space = env.action_space
    actions = rng.random((16, *space.shape)).astype(space.dtype)
    env.reset(seed=seed)
    return measure(env, actions, duration_s, warmup)


def main() -> None:
    """Measure every (preset, device, copies) combination and print (and optionally write) the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["small"], help="CEAS presets: small, paper")
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"], help="learning-layer devices")
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 64, 256], help="copies per batched env")
    parser.add_argument("--duration", type=float, default=4.0, help="timed seconds per combination")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (learning.torch_threads)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the JSON record here")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for device in args.devices:
        if device.startswith("cuda") and not torch.cuda.is_available():
            print(f"{device}: skipped (torch sees no CUDA device)")
            continue
        for preset in args.presets:
            for copies in args.copies:
                rate = copy_steps_per_second(
                    preset, device, copies, args.duration, args.warmup, args.threads, args.seed
                )
                rows.append({"preset": preset, "device": device, "copies": copies, "copy_steps_per_second": rate})
                print(f"{preset:6s} {device:5s} x {copies:5d}: {rate:9.0f} copy-steps/s", flush=True)
    if args.out is not None:
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        record = {"rows": rows, "threads": args.threads, "gpu": gpu, "environment": environment_record()}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2), encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
