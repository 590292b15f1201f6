"""Rendering of scheduling environments: an ANSI table of links and an RGB drawing of the network.

matplotlib is imported lazily, only for ``rgb_array``; a missing install raises gymnasium's
``DependencyNotInstalled`` naming the package to install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ceas_gym.envs.instance import SchedulingInstance

if TYPE_CHECKING:
    from ceas_gym.envs.link_layer import LinkLayer


def render_ansi(instance: SchedulingInstance, layer: LinkLayer, round_index: int) -> str:
    """Return a compact table: one row per link with inventory, fidelity, lifetime and pending demand."""
    inventory = layer.inventory
    queue = layer.queue
    held = inventory.held
    fidelity = inventory.mean_fidelity(empty_value=np.nan)
    pending = queue.pending_pairs()
    deadline = queue.earliest_deadline(none_value=-1)
    lines = [
        f"round {round_index}  links {instance.num_links}  held {int(held.sum())}  pending pairs {int(pending.sum())}",
        f"{'link':>10} {'p':>5} {'tau_c':>5} {'held':>7} {'F_mean':>7} {'demand':>6} {'due_in':>6}",
    ]
    for link, (u, v) in enumerate(instance.edges):
        f_text = "   -   " if np.isnan(fidelity[link]) else f"{fidelity[link]:7.3f}"
        due = "-" if deadline[link] < 0 else str(int(deadline[link]))
        lines.append(
            f"{f'{u}-{v}':>10} {instance.success_probability[link]:5.2f} {int(instance.cutoff[link]):5d} "
            f"{int(held[link]):3d}/{int(instance.capacity[link]):<3d} {f_text} {int(pending[link]):6d} {due:>6}"
        )
    return "\n".join(lines) + "\n"


def render_rgb_array(instance: SchedulingInstance, layer: LinkLayer, round_index: int) -> np.ndarray:
    """Draw the network: links coloured by mean stored fidelity, width by stored pairs, nodes by hardware.

    Returns:
        An ``(H, W, 3)`` uint8 image.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.collections import LineCollection
    except ImportError as error:  # pragma: no cover - matplotlib is a core dependency
        from gymnasium.error import DependencyNotInstalled

        raise DependencyNotInstalled(
            'matplotlib is needed for rgb_array rendering: pip install "matplotlib"'
        ) from error

    inventory = layer.inventory
    fidelity = inventory.mean_fidelity(empty_value=0.25)
    fill = inventory.held / np.maximum(instance.capacity, 1)
    positions = instance.positions_km
    segments = positions[instance.edges]  # (E, 2, 2)
    figure, axes = plt.subplots(figsize=(5, 5), dpi=80)
    try:
        colours = plt.get_cmap("viridis")((fidelity - 0.25) / 0.75)
        axes.add_collection(LineCollection(segments, colors=colours, linewidths=1.0 + 5.0 * fill))
        platforms = sorted(set(instance.node_hardware))
        palette = plt.get_cmap("tab10")
        node_colours = [palette(platforms.index(name) % 10) for name in instance.node_hardware]
        edge_colours = ["red" if bad else "black" for bad in instance.byzantine]
        axes.scatter(positions[:, 0], positions[:, 1], s=60, c=node_colours, edgecolors=edge_colours, zorder=3)
        axes.set_title(f"round {round_index}: link colour = stored fidelity, width = inventory")
        axes.set_xlabel("x (km)")
        axes.set_ylabel("y (km)")
        axes.autoscale()
        axes.set_aspect("equal", adjustable="datalim")
        figure.tight_layout()
        figure.canvas.draw()
        image = np.asarray(figure.canvas.buffer_rgba())[:, :, :3].copy()
    finally:
        plt.close(figure)
    return image
