"""Aggregate steps per second: the batched CEAS environment against gymnasium's SyncVectorEnv, in one run.

Both vector environments hold ``--copies`` copies of the same registered CEAS environment and are stepped with the
same pre-sampled random actions after ``--warmup`` untimed steps, for ``--duration`` seconds each (alternating
``--repeats`` times, so a change in machine load hits both); an environment step of one copy counts as one step.

* ``sync``: ``gymnasium.make_vec(env_id, copies, vectorization_mode="sync")``: the copies are separate Python
  environments stepped one after the other.
* ``batched``: ``gymnasium.make_vec(env_id, copies, vectorization_mode="vector_entry_point")``: one
  :class:`~ceas_gym.envs.batched_ceas.BatchedEntanglementSchedulingEnv` stepping every copy as one computation.

``--threads`` sets torch's CPU threads for both (the environments' ``learning.torch_threads``); ``--protocol``
(repeatable; default every built-in protocol) measures each consensus protocol in turn.

python benchmarks/bench_batched_env.py --copies 64 --duration 10 --repeats 2 --out results/batched_env.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import ceas_gym  # noqa: F401  (registers the environments)
from ceas_gym.provenance import environment_record


def measure(vector: gym.vector.VectorEnv, actions: np.ndarray, duration_s: float, warmup: int) -> float:
    """Copy-steps per second of ``vector`` over a timed window of ``duration_s`` seconds."""
    for index in range(warmup):
        vector.step(actions[index % len(actions)])
    calls = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < duration_s:
        vector.step(actions[calls % len(actions)])
        calls += 1
    return calls * vector.num_envs / elapsed


BUILT_IN_PROTOCOLS = ("ceas", "random-selection", "qba")


def measure_protocol(args: argparse.Namespace, protocol: str) -> dict[str, Any]:
    """Both forms of the environment with ``protocol``, alternating windows; print and return the figures."""
    kwargs: dict[str, Any] = {"learning": {"torch_threads": args.threads}, "protocol": protocol}
    forms = {
        "sync": gym.make_vec(args.env, num_envs=args.copies, vectorization_mode="sync", **kwargs),
        "batched": gym.make_vec(args.env, num_envs=args.copies, vectorization_mode="vector_entry_point", **kwargs),
    }
    rng = np.random.default_rng(args.seed)
    space = forms["sync"].action_space
    actions = rng.random((64, *space.shape)).astype(space.dtype)
    rates: dict[str, list[float]] = {name: [] for name in forms}
    for vector in forms.values():
        vector.reset(seed=args.seed)
    for _ in range(args.repeats):
        for name, vector in forms.items():
            rates[name].append(measure(vector, actions, args.duration, args.warmup))
    median = {name: statistics.median(values) for name, values in rates.items()}
    speedup = median["batched"] / median["sync"]
    for name in forms:
        print(
            f"{protocol:16s} {name:8s} x {args.copies}: {median[name]:8.0f} steps/s  "
            f"(windows: {[round(r) for r in rates[name]]})"
        )
    print(f"{protocol:16s} speed-up of batched over sync: {speedup:.1f}x  (load average {os.getloadavg()})")
    return {"protocol": protocol, "steps_per_second": rates, "median_steps_per_second": median, "speedup": speedup}


def main() -> None:
    """Measure both vector environments and print (and optionally write) the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="ceas_gym/EntanglementScheduling-Small-v0")
    parser.add_argument("--copies", type=int, default=64, help="environment copies in each vector environment")
    parser.add_argument("--duration", type=float, default=10.0, help="timed window per measurement, seconds")
    parser.add_argument("--repeats", type=int, default=2, help="alternating measurements of each form")
    parser.add_argument("--warmup", type=int, default=3, help="untimed vector steps before each window")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--protocol", action="append", default=None, help="consensus protocol (repeatable; default: ceas, "
        "random-selection, qba)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="write the JSON record here")
    args = parser.parse_args()
    records = [measure_protocol(args, protocol) for protocol in args.protocol or BUILT_IN_PROTOCOLS]
    if args.out is not None:
        record = {
            "env_id": args.env,
            "copies": args.copies,
            "duration_s": args.duration,
            "threads": args.threads,
            "protocols": records,
            "load_average_1_5_15_min": list(os.getloadavg()),
            "environment": environment_record(),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2), encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
