"""The figure ``ceas-bench`` writes beside its JSON record: throughput per configuration, or PPO's time split.

* ``env``: one horizontal bar per measured configuration (single environment, each vector kind and size), in
  environment steps per second. Rates are ratios to zero, so these bars do start at 0.
* ``ppo``: one stacked bar of the run's wall time (s): environment stepping, the policy's share of the rollouts,
  the network updates, and the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluation.plots import pyplot, save_figure


def plot_bench(record: dict[str, Any], path: Path) -> Path:
    """Draw ``record`` (a ``ceas-bench env`` or ``ppo`` record) to ``path`` (PNG); return the path."""
    plt = pyplot()
    if record["benchmark"] == "env":
        labels = [f"{row['env_id'].split('/')[-1]}: single" for row in record["single"]]
        rates = [row["steps_per_second"] for row in record["single"]]
        for row in record["vectorised"]:
            labels.append(f"{row['env_id'].split('/')[-1]}: {row['vec_env']} x {row['n_envs']}")
            rates.append(row["steps_per_second"])
        figure, axes = plt.subplots(figsize=(7.5, 0.45 * len(labels) + 1.4))
        positions = range(len(labels))
        axes.barh(list(positions), rates, color="tab:blue")
        axes.set_yticks(list(positions), labels)
        axes.invert_yaxis()
        for position, rate in zip(positions, rates, strict=True):
            axes.text(rate, position, f" {rate:,.0f}", va="center", fontsize="small")
        axes.set_xlim(0, max(rates) * 1.2)
        axes.set_xlabel("environment steps per second (all copies)")
        axes.set_title("ceas-bench env")
        return save_figure(figure, plt, path)
    seconds = record["seconds"]
    parts = {
        "environment steps": seconds["env_step"],
        "policy (rollouts)": seconds["rollout"] - seconds["env_step"],
        "network updates": seconds["update"],
        "other": max(seconds["total"] - seconds["rollout"] - seconds["update"], 0.0),
    }
    figure, axes = plt.subplots(figsize=(7.5, 2.2))
    left = 0.0
    for name, value in parts.items():
        axes.barh([0], [value], left=left, label=f"{name} ({value / seconds['total']:.0%})")
        left += value
    axes.set_yticks([])
    axes.set_xlabel("wall time (s)")
    axes.set_title(f"ceas-bench ppo: {record['env_id']}, {record['num_timesteps']} timesteps")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=2, fontsize="small")
    return save_figure(figure, plt, path)
