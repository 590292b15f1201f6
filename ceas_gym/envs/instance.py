"""A scheduling instance: the fixed physical description of one network, as arrays for the hot path.

An instance is drawn once per environment by an :class:`~ceas_gym.envs.generator.InstanceGenerator` (the
Jumanji ``Generator`` pattern) and fixes the shapes of the observation and action spaces, so spaces never change
between episodes. Episode randomness (generation successes, demand) comes from the environment's ``np_random``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SchedulingInstance:
    """Physical parameters of one network.

    Attributes:
        num_nodes: Number of processors N.
        edges: Link endpoints, ``u < v``, in a stable order. ``(num_links, 2)`` int.
        positions_km: Node coordinates for drawing. ``(num_nodes, 2)`` float, km.
        length_km: Fibre length per link. ``(num_links,)`` float, km.
        success_probability: Per-attempt generation success ``p = eta exp(-L / L_att)``. ``(num_links,)``.
        fidelity0: Werner fidelity of a fresh pair. ``(num_links,)`` in (0.25, 1].
        coherence_rounds: Memory coherence time T of a stored pair. ``(num_links,)`` float, rounds.
        cutoff: Coherence budget tau_c: a pair is usable while its age is below it. ``(num_links,)`` int, rounds.
        capacity: Memory slots per link. ``(num_links,)`` int, pairs.
        node_hardware: Hardware profile name per node. ``(num_nodes,)`` str.
        byzantine: Whether each node is Byzantine (all False in learning-free envs). ``(num_nodes,)`` bool.
    """

    num_nodes: int
    edges: np.ndarray
    positions_km: np.ndarray
    length_km: np.ndarray
    success_probability: np.ndarray
    fidelity0: np.ndarray
    coherence_rounds: np.ndarray
    cutoff: np.ndarray
    capacity: np.ndarray
    node_hardware: tuple[str, ...]
    byzantine: np.ndarray

    @property
    def num_links(self) -> int:
        """Number of links E."""
        return int(self.edges.shape[0])

    @property
    def decay_rate(self) -> np.ndarray:
        """Per-round fidelity decay rate 1/T of each link (0 for T = inf). ``(num_links,)`` float, 1/rounds."""
        return 1.0 / self.coherence_rounds


def disjoint_union(instance: SchedulingInstance, copies: int) -> SchedulingInstance:
    """``copies`` side-by-side copies of ``instance`` as one instance (for environments batched in lock-step).

    Copy ``c`` owns nodes ``c N ... c N + N - 1`` and links ``c E ... c E + E - 1``, in the original order, so a
    per-link or per-node array of the union reshapes to ``(copies, E)`` or ``(copies, N)``.

    Raises:
        ValueError: If ``copies < 1``.
    """
    if copies < 1:
        raise ValueError(f"copies = {copies}: must be >= 1")
    offsets = (np.arange(copies) * instance.num_nodes)[:, None, None]
    return SchedulingInstance(
        num_nodes=instance.num_nodes * copies,
        edges=(instance.edges[None] + offsets).reshape(-1, 2),
        positions_km=np.tile(instance.positions_km, (copies, 1)),
        length_km=np.tile(instance.length_km, copies),
        success_probability=np.tile(instance.success_probability, copies),
        fidelity0=np.tile(instance.fidelity0, copies),
        coherence_rounds=np.tile(instance.coherence_rounds, copies),
        cutoff=np.tile(instance.cutoff, copies),
        capacity=np.tile(instance.capacity, copies),
        node_hardware=tuple(instance.node_hardware) * copies,
        byzantine=np.tile(instance.byzantine, copies),
    )
