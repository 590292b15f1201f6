"""Instance generators: draw a :class:`SchedulingInstance` from a random generator (the Jumanji pattern).

:class:`InstanceGenerator` builds the graph from a :class:`~ceas_gym.network.topology.TopologyConfig`, assigns
hardware profiles to nodes, and derives every per-link array: success probability ``p = eta exp(-L / L_att)``,
coherence time in rounds (the worse of the two end memories), a coherence budget tau_c drawn uniformly from
``[cutoff_min, cutoff_max]``, and the memory capacity (the configured slots per link: each link has its own
communication memories at both ends; the hardware profile's ``memory_qubits`` describes the processor register).
"""

from __future__ import annotations

import numpy as np

from ceas_gym.config import check_range
from ceas_gym.envs.instance import SchedulingInstance
from ceas_gym.envs.lite_config import LinkConfig
from ceas_gym.network.hardware import HARDWARE_PROFILES
from ceas_gym.network.physics import link_coherence_rounds, link_success_probability
from ceas_gym.network.topology import Topology, TopologyConfig, build_topology


class InstanceGenerator:
    """Draws scheduling instances for a topology and link configuration.

    Args:
        topology: How to build the graph.
        links: Link physics and node hardware.
        byzantine_fraction: Fraction of nodes marked Byzantine (``floor(fraction * N)`` nodes drawn uniformly
            without replacement), in [0, 1).
        role_hardware: ``(honest, byzantine)`` profile names. When given, every node runs its role's hardware;
            otherwise nodes take ``links.hardware`` cyclically, and a graph's own ``hardware`` node attributes win.
        byzantine_link_eta: Per-attempt efficiency of every link with a Byzantine end, in (0, 1], instead of
            ``links.eta`` (a scenario where attackers' links are cheap); ``None`` keeps ``links.eta``.
    """

    def __init__(
        self,
        topology: TopologyConfig,
        links: LinkConfig,
        byzantine_fraction: float = 0.0,
        role_hardware: tuple[str, str] | None = None,
        byzantine_link_eta: float | None = None,
    ) -> None:
        self.topology_config = topology
        self.links = links
        self.byzantine_fraction = byzantine_fraction
        self.role_hardware = role_hardware
        if byzantine_link_eta is not None:
            check_range("byzantine_link_eta", byzantine_link_eta, 0.0, 1.0, low_inclusive=False)
        self.byzantine_link_eta = byzantine_link_eta
        for name in (*links.hardware, *(role_hardware or ())):
            HARDWARE_PROFILES.get(name)  # fail early on an unknown profile name

    def __call__(self, rng: np.random.Generator) -> SchedulingInstance:
        """Draw one instance."""
        topology: Topology = build_topology(self.topology_config, rng)
        links = self.links
        num_nodes = topology.num_nodes
        num_byzantine = int(np.floor(self.byzantine_fraction * num_nodes))
        byzantine = np.zeros(num_nodes, dtype=bool)
        byzantine[rng.permutation(num_nodes)[:num_byzantine]] = True
        if self.role_hardware is not None:
            honest_name, byzantine_name = self.role_hardware
            node_hardware = tuple(byzantine_name if bad else honest_name for bad in byzantine)
        else:
            cyclic = (links.hardware[k % len(links.hardware)] for k in range(num_nodes))
            node_hardware = tuple(
                given or default for given, default in zip(topology.node_hardware, cyclic, strict=True)
            )
        profiles = [HARDWARE_PROFILES.get(name) for name in node_hardware]
        edges = topology.edges
        u, v = edges[:, 0], edges[:, 1]
        eta = np.where(np.isnan(topology.eta), links.eta, topology.eta)  # graph attributes win over defaults
        if self.byzantine_link_eta is not None:
            eta = np.where(byzantine[u] | byzantine[v], self.byzantine_link_eta, eta)
        fidelity0 = np.where(np.isnan(topology.fidelity0), links.fidelity0, topology.fidelity0)
        capacity = np.full(len(edges), links.capacity, dtype=np.int64)
        return SchedulingInstance(
            num_nodes=num_nodes,
            edges=edges,
            positions_km=topology.positions,
            length_km=topology.length_km,
            success_probability=link_success_probability(eta, topology.length_km, links.attenuation_length_km),
            fidelity0=np.asarray(fidelity0, dtype=np.float64),
            coherence_rounds=np.atleast_1d(
                link_coherence_rounds([profiles[k] for k in u], [profiles[k] for k in v], links.round_duration_s)
            ),
            cutoff=rng.integers(links.cutoff_min, links.cutoff_max + 1, size=len(edges)).astype(np.int64),
            capacity=capacity.astype(np.int64),
            node_hardware=node_hardware,
            byzantine=byzantine,
        )
