"""Run the baseline policies on a scheduling environment over several seeds and print a table.

Example::

    python -m evaluation.quickstart --env ceas_gym/EntanglementScheduling-Lite-v0 --episodes 20

Prints, per policy, the episode return, served-on-time fraction and Bell-pair utilisation (means with 95 %
confidence intervals over the seeds 0..episodes-1) and the environment's steps per second.
"""

from __future__ import annotations

import argparse
import difflib
import time
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import ceas_gym
from agents.baselines import EarliestExpiringFirst, GreedyByDemand, UniformRandom
from ceas_gym.help_text import plain_text
from evaluation.statistics import mean_ci95

POLICIES = {"eef": EarliestExpiringFirst, "greedy": GreedyByDemand, "random": UniformRandom}
METRICS = ("return", "served_on_time", "utilisation", "mean_delivered_fidelity")


def run_policy(env_id: str, policy_name: str, seeds: Sequence[int], progress: bool = True) -> dict[str, np.ndarray]:
    """Run one episode per seed; return per-episode metrics and the measured steps per second."""
    env = gym.make(env_id)
    policy = POLICIES[policy_name](env)
    rows: dict[str, list[float]] = {name: [] for name in METRICS}
    steps, elapsed = 0, 0.0
    for seed in tqdm(seeds, desc=policy_name, disable=not progress, leave=False):
        policy.reset(seed)
        observation, info = env.reset(seed=seed)
        total, fidelity_sum, served, done = 0.0, 0.0, 0.0, False
        start = time.perf_counter()
        while not done:
            observation, reward, terminated, truncated, info = env.step(policy.act(observation, info))
            total += reward
            fidelity_sum += info["mean_delivered_fidelity"] * info["served"]
            served += info["served"]
            steps += 1
            done = terminated or truncated
        elapsed += time.perf_counter() - start
        rows["return"].append(total)
        rows["served_on_time"].append(info["served_on_time"])
        rows["utilisation"].append(info["utilisation"])
        rows["mean_delivered_fidelity"].append(fidelity_sum / served if served else 0.0)
    result = {name: np.array(values) for name, values in rows.items()}
    result["steps_per_second"] = np.array([steps / elapsed])
    return result


def format_table(results: dict[str, dict[str, np.ndarray]]) -> str:
    """Render results as a Markdown table of means ± 95 % CI half-widths."""
    header = "| policy | " + " | ".join(METRICS) + " | steps/s (policy + env) |"
    lines = [header, "|" + " --- |" * (len(METRICS) + 2)]
    for name, metrics in results.items():
        cells = []
        for metric in METRICS:
            mean, half = mean_ci95(metrics[metric])
            cells.append(f"{mean:.3f} ± {half:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {metrics['steps_per_second'][0]:.0f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=plain_text(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="ceas_gym/EntanglementScheduling-Lite-v0", help="registered environment id")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per policy (seeds 0..N-1)")
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    if args.env not in gym.registry:
        close = difflib.get_close_matches(args.env, ceas_gym.registered_ids(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        parser.error(f"unknown environment id {args.env!r}{hint}")
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    seeds = list(range(args.episodes))
    results = {name: run_policy(args.env, name, seeds, progress=not args.no_progress) for name in args.policies}
    print(f"{args.env}, seeds 0..{args.episodes - 1}")
    print(format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
