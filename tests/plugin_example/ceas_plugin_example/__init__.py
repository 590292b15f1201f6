"""An example ceas-gym plug-in: a line topology, a Lite environment on it, an attack and a consensus protocol.

:func:`register` adds its topology (``example-line``), attack (``example-free-rider``) and consensus protocol
(``example-single-gossip``) to ceas-gym's registries and its environment to Gymnasium. It is idempotent (adding
the same object under the same name again is a no-op) and also runs on import, so both the entry point
(``example = ceas_plugin_example:register`` in ``entry_points.txt``) and
``gym.make("ceas_plugin_example:ceas_plugin_example/EntanglementScheduling-Lite-Line-v0")`` work. (The
``@REGISTRY.register(name)`` decorators of ``docs/plugins.md`` are the shorter form when registering once on
import is enough.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import networkx as nx
import numpy as np
import torch

from ceas_gym.config import check_int, check_range
from ceas_gym.consensus import CONSENSUS_PROTOCOLS, CEASConfig, CEASProtocol
from ceas_gym.learning.attacks import ATTACKS, Attack
from ceas_gym.network.topology import TOPOLOGIES

ENV_ID = "ceas_plugin_example/EntanglementScheduling-Lite-Line-v0"
"""The plug-in's environment: the Lite ``tiny`` preset on a 4-node line of 10 km links."""

LINE_KWARGS: dict[str, Any] = {
    "preset": "tiny",
    "topology": {"kind": "example-line", "num_nodes": 4, "params": {"length_km": 10.0}},
}


def line(num_nodes: int, rng: np.random.Generator, *, length_km: float = 10.0) -> nx.Graph:
    """A path ``0 - 1 - ... - (N-1)`` of links ``length_km`` long (km), nodes on the x axis (km). Needs N >= 2.

    ``rng`` is unused (the line is deterministic) but is part of the generator signature.
    """
    check_int("example-line.num_nodes", num_nodes, 2)
    check_range("example-line.length_km", length_km, 0.0, None, low_inclusive=False)
    graph = nx.Graph()
    graph.add_nodes_from((i, {"pos": (i * length_km, 0.0)}) for i in range(num_nodes))
    graph.add_edges_from((i, i + 1, {"length_km": length_km}) for i in range(num_nodes - 1))
    return graph


class FreeRiderAttack(Attack):
    """A free rider submits an all-zero update (it trains nothing and contributes nothing)."""

    def __call__(self, updates: torch.Tensor, round_index: int, generator: torch.Generator) -> torch.Tensor:
        """Return zeros shaped like ``updates`` ``(B, P)``."""
        return torch.zeros_like(updates)


class SingleGossipProtocol(CEASProtocol):
    """The CEAS protocol with one gossip mixing step per round unless configured otherwise (fewer Bell pairs)."""

    name = "example-single-gossip"

    def __init__(self, num_nodes: int, edges: np.ndarray, config: CEASConfig | Mapping[str, Any] | None = None):
        if config is None or (isinstance(config, Mapping) and "mixing_steps" not in config):
            config = {**(config or {}), "mixing_steps": 1}
        super().__init__(num_nodes, edges, config)


def register() -> None:
    """Register the topology, attack, protocol and environment (idempotent)."""
    TOPOLOGIES.add("example-line", line)
    ATTACKS.add("example-free-rider", FreeRiderAttack)
    CONSENSUS_PROTOCOLS.add("example-single-gossip", SingleGossipProtocol)
    if ENV_ID not in gym.registry:
        gym.register(
            id=ENV_ID,
            entry_point="ceas_gym.envs.lite:EntanglementSchedulingLiteEnv",
            max_episode_steps=30,  # the tiny preset's episode length (rounds)
            kwargs=LINE_KWARGS,
        )


register()
