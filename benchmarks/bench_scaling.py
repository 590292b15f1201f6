"""How the CEAS environment's step time grows with the network: N = 50 ... 5000 nodes on sparse graphs.

    python benchmarks/bench_scaling.py --nodes 50 200 1000 5000 --out results/scaling.json

Each size is a random geometric graph with about the same mean degree (the square grows with sqrt(N), the link
radius is fixed), a budget of 5 attempts per node, EEF scheduling, the CEAS protocol with a fixed number of gossip
mixing steps (``--mixing-steps``, default 6; the protocol's own default ceil(log2 N) would add a log N factor on
purpose) and the BFT readmission floor at a quarter of the nodes. After a warm-up the median step time over
``--steps`` steps is reported, and the growth exponent is fitted by least squares on log(step time) against
log(N + E) over the sizes from ``--fit-from`` nodes on (1.0 = linear).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from agents.baselines import EarliestExpiringFirst
from ceas_gym.envs.ceas import EntanglementSchedulingEnv
from ceas_gym.provenance import environment_record


def make_env(num_nodes: int, mixing_steps: int) -> EntanglementSchedulingEnv:
    """The paper preset rescaled to ``num_nodes`` nodes on a sparse random geometric graph."""
    return EntanglementSchedulingEnv(
        preset="paper",
        topology={
            "kind": "random-geometric",
            "num_nodes": num_nodes,
            "params": {"area_km": 60.0 * np.sqrt(num_nodes / 50), "radius_km": 14.0},
        },
        budget=5 * num_nodes,
        protocol_config={"ceas": {"mixing_steps": mixing_steps, "bft": {"min_active": max(15, num_nodes // 4)}}},
    )


def time_steps(env: EntanglementSchedulingEnv, steps: int, warmup: int) -> list[float]:
    """Seconds per step for ``steps`` EEF steps after ``warmup`` untimed ones."""
    policy = EarliestExpiringFirst(env)
    observation, info = env.reset(seed=0)
    for _ in range(warmup):
        observation, _, _, _, info = env.step(policy.act(observation, info))
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        observation, _, _, _, info = env.step(policy.act(observation, info))
        times.append(time.perf_counter() - start)
    return times


def growth_exponent(sizes: np.ndarray, seconds: np.ndarray) -> float:
    """Least-squares slope of log(seconds) against log(sizes)."""
    slope, _ = np.polyfit(np.log(sizes), np.log(seconds), 1)
    return float(slope)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[50, 200, 1000, 5000])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per size")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--mixing-steps", type=int, default=6)
    parser.add_argument("--fit-from", type=int, default=200, help="smallest N included in the fit")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for num_nodes in args.nodes:
        start = time.perf_counter()
        env = make_env(num_nodes, args.mixing_steps)
        build = time.perf_counter() - start
        times = time_steps(env, args.steps, args.warmup)
        row = {
            "nodes": num_nodes,
            "links": env.num_links,
            "build_s": build,
            "step_ms_median": 1000 * float(np.median(times)),
            "step_ms_min": 1000 * float(np.min(times)),
        }
        rows.append(row)
        print(
            f"N={num_nodes:5d}  E={env.num_links:6d}  build {build:6.2f} s  step median {row['step_ms_median']:8.2f} ms"
            f"  min {row['step_ms_min']:8.2f} ms",
            flush=True,
        )
    fitted = [row for row in rows if row["nodes"] >= args.fit_from]
    exponent = float("nan")
    if len(fitted) >= 2:
        sizes = np.array([row["nodes"] + row["links"] for row in fitted], dtype=float)
        exponent = growth_exponent(sizes, np.array([row["step_ms_median"] for row in fitted]))
        print(f"growth exponent of step time in N + E (N >= {args.fit_from}): {exponent:.3f}  (1.0 = linear)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {"rows": rows, "exponent": exponent, "settings": vars(args) | {"out": str(args.out)}}
        args.out.write_text(json.dumps(record | {"environment": environment_record()}, indent=2))


if __name__ == "__main__":
    main()
