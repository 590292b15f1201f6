"""Reproduce CEAS Fig. 4: honest nodes' test accuracy over rounds, protocol x scheduler in a 2 x 2 table.

    python -m evaluation.paper_fig4 --seeds 5 --out results/paper_fig4

Runs ``ceas_gym/EntanglementScheduling-v0`` (N = 50, 40 % Byzantine, 300 rounds, 250 attempts per round,
tau_c in [3, 6]) once per seed and arm, in parallel processes:

* protocol **CEAS** (``protocol="ceas"``: fidelity-weighted gossip, BFT checkpoints, quarantine) or **random
  selection** (``protocol="random-selection"``: random participants, plain mean, no fidelity weights, no quarantine),
* scheduled by **EEF** (earliest-expiring-first) or **uniform** (the entanglement-oblivious equal split of the
  budget over links).

The paper compares CEAS + EEF with random selection + uniform, which changes protocol and scheduler at once; the
two other arms separate the effects (same scheduler, other protocol; same protocol, other scheduler).

The Byzantine nodes follow a coordinated schedule (``--attack phased``, default: the ``phased`` attack of
:mod:`ceas_gym.learning.phased_attack`: they behave for 100 rounds, strike together with the reversal attack, then
switch to Gaussian noise at round 150 and to scaling at 200; ``--attack switching`` keeps the environment's default
per-round switching). The summary reports, per arm, the **dip** when the attack strikes (mean accuracy of the 10
rounds before the strike minus the lowest of the 50 after, per seed) and the share of it **regained** by the end
of those 50 rounds (the mean of their last 10 rounds above the low, over the dip).

``--env-kwargs`` changes the scenario for every arm (for example attackers that pass the detector while they behave:
``roles:{byzantine_hardware: ceas-honest}`` and ``learning:{data: {byzantine_separation: 1.4,
byzantine_label_noise: 0.03}}``); the protocol, the attack and the episode length stay the command's own flags.

All arms see the same instance and, per seed, the same data and initial model. Writes ``rounds.csv`` (one row per
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
from ceas_gym.learning.phased_attack import DEFAULT_PHASES
from training.hyperparams import parse_key_values

ENV_ID = "ceas_gym/EntanglementScheduling-v0"
ARMS: dict[str, dict[str, str]] = {
    "CEAS (EEF)": {"protocol": "ceas", "policy": "eef"},
    "CEAS (uniform)": {"protocol": "ceas", "policy": "uniform"},
    "random selection (EEF)": {"protocol": "random-selection", "policy": "eef"},
    "random selection (uniform)": {"protocol": "random-selection", "policy": "uniform"},
}
ATTACK_SETTINGS: dict[str, dict[str, Any]] = {
    "phased": {"attack": "phased", "attack_params": {"phases": [list(phase) for phase in DEFAULT_PHASES]}},
    "switching": {},
}
STRIKE_ROUND = next(start for start, name in DEFAULT_PHASES if name != "none")
ROUND_METRICS = ("accuracy", "loss", "utilisation", "isolation_rate", "false_quarantine_rate", "active_nodes")


RESERVED_ENV_KWARGS = {
    "protocol": "the arms set it",
    "max_rounds": "use --rounds",
    "communication": "the arms compare schedulers",
}


def scenario_kwargs(attack: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The environment keyword arguments of every arm: ``env_kwargs`` with the attack's learning settings merged in.

    Raises:
        ValueError: On a key the arms set themselves, or a ``learning.attack`` / ``learning.attack_params`` that
            ``--attack`` sets.
    """
    for key, why in RESERVED_ENV_KWARGS.items():
        if key in env_kwargs:
            raise ValueError(f"--env-kwargs {key}: not allowed ({why})")
    attack_learning = ATTACK_SETTINGS[attack]
    learning = env_kwargs.get("learning", {})
    if not isinstance(learning, dict):
        raise ValueError(f"--env-kwargs learning: expected a mapping, got {learning!r}")
    for key in ("attack", "attack_params"):
        if key in learning:
            raise ValueError(f"--env-kwargs learning.{key}: not allowed (use --attack)")
    merged = {**env_kwargs}
    if attack_learning or learning:
        merged["learning"] = {**learning, **attack_learning}
    return merged


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


def dip_and_recovery(rounds: np.ndarray, accuracy: np.ndarray, strike: int, span: int = 50) -> tuple[float, float]:
    """The dip of one run when the attack strikes after round ``strike``, and the share of it regained.

    Args:
        rounds: Rounds played at each row (1-based). ``(T,)``.
        accuracy: Accuracy after each. ``(T,)``.
        strike: Rounds played when the attack strikes (its first attacked round is ``strike + 1``).
        span: Rounds after the strike that the dip and the recovery are read over.

    Returns:
        ``(dip, regained)``: mean of the 10 rounds up to the strike minus the lowest of the ``span`` after it, and
        (mean of the last 10 of those minus the low) / dip; NaN where the run does not cover the window or
        nothing dipped.
    """
    before = accuracy[(rounds > strike - 10) & (rounds <= strike)]
    after = accuracy[(rounds > strike) & (rounds <= strike + span)]
    if before.size == 0 or after.size < span:
        return float("nan"), float("nan")
    low = float(after.min())
    dip = float(before.mean()) - low
    regained = (float(after[-10:].mean()) - low) / dip if dip > 0 else float("nan")
    return dip, regained


def summarise(rows: list[dict[str, Any]], window: int = 50) -> list[dict[str, Any]]:
    """Per arm: final accuracy (mean of the last ``window`` rounds per seed), its std across seeds, and more."""
    summary = []
    for arm in ARMS:
        arm_rows = [row for row in rows if row["arm"] == arm]
        seeds = sorted({row["seed"] for row in arm_rows})
        final, wobble, utilisation, isolation, false_quarantine, dips, regained = [], [], [], [], [], [], []
        for seed in seeds:
            trace = sorted((row for row in arm_rows if row["seed"] == seed), key=lambda row: row["round"])
            final.append(np.mean([row["accuracy"] for row in trace[-window:]]))
            wobble.append(np.std([row["accuracy"] for row in trace[-window:]]))
            utilisation.append(trace[-1]["utilisation"])
            isolation.append(np.mean([row["isolation_rate"] for row in trace[-window:]]))
            false_quarantine.append(np.mean([row["false_quarantine_rate"] for row in trace[-window:]]))
            dip, back = dip_and_recovery(
                np.array([row["round"] for row in trace]), np.array([row["accuracy"] for row in trace]), STRIKE_ROUND
            )
            dips.append(dip)
            regained.append(back)
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
                "dip": float(np.mean(dips)),
                "regained_in_50": float(np.nanmean(regained)) if np.isfinite(regained).any() else float("nan"),
            }
        )
    return summary


def markdown(summary: list[dict[str, Any]], window: int) -> str:
    """Render the summary as a Markdown table."""
    lines = [
        f"| arm | seeds | final accuracy (last {window} rounds) | std across seeds | std over those rounds "
        "| utilisation | isolation | false quarantine | dip at the strike | regained in 50 rounds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in summary:
        lines.append(
            f"| {row['arm']} | {row['seeds']} | {row['final_accuracy']:.3f} | {row['final_accuracy_std']:.3f} | "
            f"{row['within_run_std']:.3f} | {row['utilisation']:.3f} | {row['isolation_rate']:.3f} | "
            f"{row['false_quarantine_rate']:.3f} | {row['dip']:.3f} | {row['regained_in_50']:.2f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path, phases: Sequence[Sequence[Any]] = ()) -> None:
    """Mean accuracy over rounds per arm with a +/- one standard deviation envelope, the attack phases marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 4), dpi=120)
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
    last = max(row["round"] for row in rows)
    for start, name in phases[1:]:
        if start < last:
            axes.axvline(start, color="grey", linestyle="--", linewidth=0.8)
            axes.text(start + 2, 0.32, name, fontsize="x-small", color="dimgrey")
    axes.set_xlabel("training round")
    axes.set_ylabel("honest nodes' test accuracy")
    axes.set_title("protocol x scheduler (N = 50, 40 % Byzantine)")
    axes.set_ylim(0.3, 1.0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
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
    parser.add_argument("--attack", choices=sorted(ATTACK_SETTINGS), default="phased", help="Byzantine schedule")
    parser.add_argument("--env-kwargs", nargs="+", default=[], metavar="K:V", help="environment keyword arguments")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        env_kwargs = scenario_kwargs(args.attack, parse_key_values(args.env_kwargs, "--env-kwargs"))
    except ValueError as error:
        parser.error(str(error))
    if args.seeds < 2:
        parser.error("--seeds must be >= 2 (the summary reports a standard deviation across seeds)")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be >= 1")
    jobs = [(arm, seed) for arm in ARMS for seed in range(args.seeds)]
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        futures = [pool.submit(run_arm, arm, seed, args.rounds, env_kwargs) for arm, seed in jobs]
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
    plot(rows, args.out / "accuracy.png", phases=DEFAULT_PHASES if args.attack == "phased" else ())
    print(table)
    print(f"wrote {args.out}/rounds.csv, summary.csv, summary.md, accuracy.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
