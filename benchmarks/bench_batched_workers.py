"""Aggregate steps per second of the batched CEAS environment in one process against its shards in worker processes.

``--copies`` copies of a CEAS environment, stepped with the same pre-sampled random actions, in alternating timed
windows of ``--duration`` seconds (``--repeats`` each, after ``--warmup`` untimed steps), so that a change in the
machine's load hits every form alike:

* ``in-process``: one :class:`~ceas_gym.envs.batched_ceas.BatchedEntanglementSchedulingEnv` with ``--threads`` torch
  threads;
* ``W workers`` for each ``--workers`` value: a :class:`~ceas_gym.envs.batched_shards.ShardedBatchedEnv` of ``W``
  shards, each worker with ``--worker-threads`` torch threads.

python benchmarks/bench_batched_workers.py --copies 64 --threads 2 --workers 2 --worker-threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any

import numpy as np
from bench_batched_env import measure  # benchmarks/ is on the path when a script in it runs

from ceas_gym.envs.batched_ceas import BatchedEntanglementSchedulingEnv
from ceas_gym.envs.batched_sb3 import PRESET_OF_ID
from ceas_gym.envs.batched_shards import ShardedBatchedEnv


def main() -> None:
    """Measure every form and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="ceas_gym/EntanglementScheduling-Small-v0", choices=sorted(PRESET_OF_ID))
    parser.add_argument("--copies", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the in-process environment")
    parser.add_argument("--workers", type=int, nargs="+", default=[2], help="shard counts to measure")
    parser.add_argument("--worker-threads", type=int, default=1, help="torch threads of each worker")
    parser.add_argument("--duration", type=float, default=8.0, help="timed window per measurement, seconds")
    parser.add_argument("--repeats", type=int, default=3, help="alternating windows of each form")
    parser.add_argument("--warmup", type=int, default=3, help="untimed vector steps before each window")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    preset = PRESET_OF_ID[args.env]
    forms: dict[str, Any] = {
        "in-process": BatchedEntanglementSchedulingEnv(
            args.copies, preset=preset, learning={"torch_threads": args.threads}
        )
    }
    for workers in args.workers:
        forms[f"{workers} workers"] = ShardedBatchedEnv(
            args.copies, workers=workers, preset=preset, learning={"torch_threads": args.worker_threads}
        )
    space = forms["in-process"].action_space
    actions = np.random.default_rng(args.seed).random((64, *space.shape)).astype(space.dtype)
    rates: dict[str, list[float]] = {name: [] for name in forms}
    try:
        for vector in forms.values():
            vector.reset(seed=args.seed)
        for _ in range(args.repeats):
            for name, vector in forms.items():
                rates[name].append(measure(vector, actions, args.duration, args.warmup))
    finally:
        for vector in forms.values():
            vector.close()
    base = statistics.median(rates["in-process"])
    print(
        f"{args.env} x {args.copies} copies "
        f"(in-process: {args.threads} torch threads; workers: {args.worker_threads} each)"
    )
    for name, values in rates.items():
        median = statistics.median(values)
        print(
            f"  {name:11s} {median:7.0f} steps/s, {1e3 * args.copies / median:6.1f} ms per vector step, "
            f"{median / base:4.2f}x  (windows: {[round(value) for value in values]})"
        )
    print(f"  load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
