"""Reproduce CEAS Fig. 4: global test accuracy over rounds, CEAS + EEF against the random-selection baseline.

    python -m evaluation.paper_fig4 --seeds 5 --out results/paper_fig4

Runs ``ceas_gym/EntanglementScheduling-v0`` (N = 50, 40 % Byzantine, 300 rounds, 250 attempts per round,
tau_c in [3, 6]) once per seed and arm, in parallel processes:

* **CEAS**: ``protocol="ceas"`` (fidelity-weighted gossip, BFT checkpoints, quarantine) scheduled by
  earliest-expiring-first;
* **random selection**: ``protocol="random-selection"`` (random participants, plain mean, no fidelity weights, no
  quarantine) scheduled by an entanglement-oblivious equal split of the budget over links.

Both arms see the same instance and, per seed, the same data and initial model. Writes ``rounds.csv`` (one row per
arm, seed and round), ``summary.csv`` and ``summary.md`` (final accuracy = mean over the last 50 rounds, its
standard deviation across seeds, the round-to-round standard deviation within a run over the same window,
Bell-pair utilisation, isolation and false-quarantine rates) and
``accuracy.png`` (mean accuracy over rounds with a +/- one standard deviation envelope), and prints the summary.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ceas_gym.help_text import plain_text

ENV_ID = "ceas_gym/EntanglementScheduling-v0"
ARMS: dict[str, dict[str, str]] = {
    "CEAS (EEF)": {"protocol": "ceas", "policy": "eef"},
    "random selection": {"protocol": "random-selection", "policy": "uniform"},
}
ROUND_METRICS = ("accuracy", "loss", "utilisation", "isolation_rate", "false_quarantine_rate", "active_nodes")


def run_arm(arm: str, seed: int, rounds: int | None, env_kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """Run one episode of one arm; return one row per round."""
    import gymnasium as gym

    import ceas_gym  # noqa: F401
    from agents.baselines import EarliestExpiringFirst, UniformSplit

    settings = ARMS[arm]
    kwargs = {"protocol": settings["protocol"], **env_kwargs}
    if rounds is not None:
        kwargs["max_rounds"] = rounds
    env = gym.make(ENV_ID, max_episode_steps=rounds, **kwargs) if rounds else gym.make(ENV_ID, **kwargs)
    policy = {"eef": EarliestExpiringFirst, "uniform": UniformSplit}[settings["policy"]](env)
    policy.reset(seed)
    observation, info = env.reset(seed=seed)
    rows = []
    done = False
    while not done:
        observation, _, terminated, truncated, info = env.step(policy.act(observation, info))
        done = terminated or truncated
        rows.append({"arm": arm, "seed": seed, "round": info["round"], **{key: info[key] for key in ROUND_METRICS}})
    return rows


def summarise(rows: list[dict[str, Any]], window: int = 50) -> list[dict[str, Any]]:
    """Per arm: final accuracy (mean of the last ``window`` rounds per seed), its std across seeds, and more."""
    summary = []
    for arm in ARMS:
        arm_rows = [row for row in rows if row["arm"] == arm]
        seeds = sorted({row["seed"] for row in arm_rows})
        final, wobble, utilisation, isolation, false_quarantine = [], [], [], [], []
        for seed in seeds:
            trace = sorted((row for row in arm_rows if row["seed"] == seed), key=lambda row: row["round"])
            final.append(np.mean([row["accuracy"] for row in trace[-window:]]))
            wobble.append(np.std([row["accuracy"] for row in trace[-window:]]))
            utilisation.append(trace[-1]["utilisation"])
            isolation.append(np.mean([row["isolation_rate"] for row in trace[-window:]]))
            false_quarantine.append(np.mean([row["false_quarantine_rate"] for row in trace[-window:]]))
        summary.append(
            {
                "arm": arm,
                "seeds": len(seeds),
                "final_accuracy": float(np.mean(final)),
                "final_accuracy_std": float(np.std(final, ddof=1)) if len(final) > 1 else float("nan"),
                "within_run_std": float(np.mean(wobble)),
                "utilisation": float(np.mean(utilisation)),
                "isolation_rate": float(np.mean(isolation)),
                "false_quarantine_rate": float(np.mean(false_quarantine)),
            }
        )
    return summary


def markdown(summary: list[dict[str, Any]], window: int) -> str:
    """Render the summary as a Markdown table."""
    lines = [
        f"| arm | seeds | final accuracy (last {window} rounds) | std across seeds | std over those rounds "
        "| utilisation | isolation | false quarantine |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in summary:
        lines.append(
            f"| {row['arm']} | {row['seeds']} | {row['final_accuracy']:.3f} | {row['final_accuracy_std']:.3f} | "
            f"{row['within_run_std']:.3f} | {row['utilisation']:.3f} | {row['isolation_rate']:.3f} | "
            f"{row['false_quarantine_rate']:.3f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Mean accuracy over rounds per arm with a +/- one standard deviation envelope across seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=120)
    for arm in ARMS:
        arm_rows = [row for row in rows if row["arm"] == arm]
        seeds = sorted({row["seed"] for row in arm_rows})
        rounds = sorted({row["round"] for row in arm_rows})
        table = np.full((len(seeds), len(rounds)), np.nan)
        for row in arm_rows:
            table[seeds.index(row["seed"]), rounds.index(row["round"])] = row["accuracy"]
        mean, std = np.nanmean(table, axis=0), np.nanstd(table, axis=0)
        axes.plot(rounds, mean, label=arm)
        axes.fill_between(rounds, mean - std, mean + std, alpha=0.25)
    axes.set_xlabel("training round")
    axes.set_ylabel("global test accuracy")
    axes.set_title("CEAS vs random participant selection (N = 50, 40 % Byzantine)")
    axes.set_ylim(0.3, 1.0)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=plain_text(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1), >= 2")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per episode (default: the env's 300)")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes")
    parser.add_argument("--window", type=int, default=50, help="rounds averaged for the final accuracy")
    parser.add_argument("--out", type=Path, default=Path("results/paper_fig4"), help="output folder")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error("--seeds must be >= 2 (the summary reports a standard deviation across seeds)")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be >= 1")
    jobs = [(arm, seed) for arm in ARMS for seed in range(args.seeds)]
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        futures = [pool.submit(run_arm, arm, seed, args.rounds, {}) for arm, seed in jobs]
        for future in tqdm(futures, desc="episodes", disable=args.no_progress):
            rows.extend(future.result())
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "rounds.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    window = min(args.window, max(row["round"] for row in rows))
    summary = summarise(rows, window)
    with open(args.out / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    table = markdown(summary, window)
    (args.out / "summary.md").write_text(table + "\n")
    plot(rows, args.out / "accuracy.png")
    print(table)
    print(f"wrote {args.out}/rounds.csv, summary.csv, summary.md, accuracy.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
