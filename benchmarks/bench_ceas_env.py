"""Steps per second of the CEAS environments (Small and paper presets) driven by the EEF baseline policy.

Each preset is built directly (no wrappers), reset with a fixed seed, warmed up, and then timed over ``--repeats``
blocks of ``--steps`` steps (episodes that end are reset with the next seed, inside the timing). Reported per preset:
wall-clock steps/s of every block and their median, process-CPU steps/s (``time.process_time``, less sensitive to
other processes loading the machine), and the load average (``/proc/loadavg``) before and after.

``--threads`` is passed to the environment as ``learning.torch_threads`` (default 1), which sets
``torch.set_num_threads`` process-wide when the environment is built. The environment's tensors are small
(50 nodes x 32 samples x 16 amplitudes), so intra-op parallelism only adds synchronisation, and under a loaded
machine a spinning second thread can slow a step down many times over.

python benchmarks/bench_ceas_env.py --steps 200 --repeats 5 --out results/ceas_env_steps.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from agents.baselines import EarliestExpiringFirst
from ceas_gym.envs.ceas import EntanglementSchedulingEnv
from ceas_gym.provenance import environment_record


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages (runnable processes), or [] where unavailable."""
    try:
        return [float(value) for value in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def measure_preset(preset: str, steps: int, repeats: int, warmup: int, seed: int, threads: int) -> dict[str, Any]:
    """Time ``repeats`` blocks of ``steps`` EEF-driven steps of one preset.

    Args:
        preset: ``"small"`` or ``"paper"``.
        steps: Steps per timed block.
        repeats: Timed blocks.
        warmup: Untimed steps before the first block.
        seed: Seed of the first reset (later resets use ``seed + 1``, ``seed + 2``, ...).
        threads: Torch intra-op threads (the environment's ``learning.torch_threads``).

    Returns:
        A JSON-ready record with per-block wall and CPU steps/s and their medians (steps per second).
    """
    env = EntanglementSchedulingEnv(preset=preset, learning={"torch_threads": threads})
    policy = EarliestExpiringFirst(env)
    episode_seed = seed
    observation, info = env.reset(seed=episode_seed)
    policy.reset(seed)

    def advance(count: int) -> int:
        nonlocal observation, info, episode_seed
        resets = 0
        for _ in range(count):  # loop over environment steps (the thing being timed)
            observation, _, terminated, truncated, info = env.step(policy.act(observation, info))
            if terminated or truncated:
                episode_seed += 1
                observation, info = env.reset(seed=episode_seed)
                resets += 1
        return resets

    advance(warmup)
    load_before = load_average()
    wall, cpu, resets = [], [], 0
    for _ in range(repeats):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        resets += advance(steps)
        wall.append(steps / (time.perf_counter() - wall_start))
        cpu.append(steps / max(time.process_time() - cpu_start, 1e-9))
    return {
        "preset": preset,
        "num_nodes": env.num_nodes,
        "num_links": int(env.instance.edges.shape[0]),
        "steps_per_block": steps,
        "repeats": repeats,
        "warmup_steps": warmup,
        "torch_threads": torch.get_num_threads(),
        "resets": resets,
        "wall_steps_per_second": wall,
        "cpu_steps_per_second": cpu,
        "median_wall_steps_per_second": statistics.median(wall),
        "median_cpu_steps_per_second": statistics.median(cpu),
        "loadavg_before": load_before,
        "loadavg_after": load_average(),
    }


def main() -> None:
    """Parse arguments, time each preset and print (and optionally write) the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["small", "paper"], help="CEAS presets to time")
    parser.add_argument("--steps", type=int, default=200, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per preset (median reported)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first reset")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (learning.torch_threads)")
    parser.add_argument("--out", type=Path, default=None, help="write JSON here")
    args = parser.parse_args()
    results = []
    for preset in args.presets:
        record = measure_preset(preset, args.steps, args.repeats, args.warmup, args.seed, args.threads)
        results.append(record)
        print(
            f"{preset:6s} N={record['num_nodes']:3d} E={record['num_links']:3d}  "
            f"wall median {record['median_wall_steps_per_second']:7.1f} steps/s  "
            f"cpu median {record['median_cpu_steps_per_second']:7.1f} steps/s  "
            f"blocks {[round(value) for value in record['wall_steps_per_second']]}  "
            f"load {record['loadavg_before']} -> {record['loadavg_after']}"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"threads": args.threads, "results": results, "environment": environment_record()}
        args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
