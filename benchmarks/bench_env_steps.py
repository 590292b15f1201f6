"""Single-environment throughput of the registered scheduling environments.

python benchmarks/bench_env_steps.py --duration 5 --out results/env_steps.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym

import ceas_gym
from evaluation.throughput import measure_steps_per_second, to_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", nargs="+", default=ceas_gym.registered_ids(), help="environment ids")
    parser.add_argument("--duration", type=float, default=3.0, help="timed seconds per environment")
    parser.add_argument("--out", type=Path, default=None, help="write JSON here")
    args = parser.parse_args()
    results = []
    for env_id in args.env:
        result = measure_steps_per_second(gym.make(env_id), env_id, duration_s=args.duration)
        results.append(result)
        print(f"{env_id:55s} {result.steps_per_second:9.0f} steps/s  ({result.steps} steps, {result.resets} resets)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(to_json(results))


if __name__ == "__main__":
    main()
