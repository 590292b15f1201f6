"""Which consensus phase a protocol runs in the batched round: the table of batched phases and the factory.

:data:`BATCHED_CONSENSUS` maps a registered protocol's name to its batched phase (``ceas``, ``random-selection``,
``qba``); every other protocol (plug-ins) runs through
:class:`~ceas_gym.envs.round_consensus.PerCopyConsensus`. A plug-in that wants a batched phase adds its class here
(``BATCHED_CONSENSUS["my-protocol"] = MyPhase``, built as ``MyPhase(protocol, union_edges, copies)`` and
implementing :class:`~ceas_gym.envs.round_consensus.RoundConsensus`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ceas_gym.consensus import CONSENSUS_PROTOCOLS, CEASProtocol, QBAProtocol, RandomSelectionProtocol
from ceas_gym.envs.round_committee import CommitteeConsensus
from ceas_gym.envs.round_consensus import PerCopyConsensus, RoundConsensus
from ceas_gym.envs.round_gossip import GossipCheckpointConsensus
from ceas_gym.envs.round_selection import RandomSelectionConsensus

BATCHED_CONSENSUS: dict[str, tuple[type, Callable[..., RoundConsensus]]] = {
    "ceas": (CEASProtocol, GossipCheckpointConsensus),
    "random-selection": (RandomSelectionProtocol, RandomSelectionConsensus),
    "qba": (QBAProtocol, CommitteeConsensus),
}
"""Batched phases by protocol name, with the protocol class they batch (a different class registered under the
same name, e.g. a plug-in that replaces ``ceas``, runs per copy instead)."""


def build_protocol(name: str, num_nodes: int, edges: np.ndarray, settings: Any, byzantine: np.ndarray) -> Any:
    """One protocol object from the registry, told who is Byzantine where it has roles (committees)."""
    protocol = CONSENSUS_PROTOCOLS.get(name)(num_nodes, edges, settings)
    if hasattr(protocol, "set_byzantine"):
        protocol.set_byzantine(byzantine)
    return protocol


def make_round_consensus(
    name: str, num_nodes: int, edges: np.ndarray, settings: Any, byzantine: np.ndarray, union_edges: np.ndarray,
    copies: int,
) -> tuple[RoundConsensus, Any]:  # fmt: skip
    """The consensus phase of protocol ``name`` over ``copies`` copies, and copy 0's protocol object.

    Args:
        name: A registered protocol name.
        num_nodes: Nodes N of one copy.
        edges: Links of one copy ``(L, 2)``.
        settings: The protocol's configuration (mapping or dataclass, loaded strictly by the protocol).
        byzantine: Byzantine nodes of one copy ``(N,)`` bool.
        union_edges: Links of the copies' union ``(E x L, 2)``.
        copies: Number of copies E.

    Returns:
        ``(phase, protocol)``: the phase and the protocol object of copy 0 (for a per-copy phase, the object the
        round runs; for a batched phase, the configuration it was built from).
    """
    protocol = build_protocol(name, num_nodes, edges, settings, byzantine)
    batched = BATCHED_CONSENSUS.get(name)
    if batched is not None and type(protocol) is batched[0]:
        return batched[1](protocol, union_edges, copies), protocol
    others = [build_protocol(name, num_nodes, edges, settings, byzantine) for _ in range(copies - 1)]
    return PerCopyConsensus([protocol, *others], edges), protocol
