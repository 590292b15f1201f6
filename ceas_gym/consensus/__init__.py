"""Consensus layer: gossip mixing, BFT checkpoints and quarantine, trust, QBA/QDS committees, the ledger.

This module holds the registration table of the built-in protocols (each lives in its own module and none of them
registers itself, so no module of the package imports another that imports it back):

* ``ceas``: :class:`~ceas_gym.consensus.ceas_protocol.CEASProtocol` (fidelity-weighted gossip, BFT checkpoints);
* ``qba``: :class:`~ceas_gym.consensus.qba_protocol.QBAProtocol` (stake-elected committee, QBA over QDS keys);
* ``random-selection``: :class:`~ceas_gym.consensus.random_selection.RandomSelectionProtocol` (the baseline).

A plug-in registers its own protocol with ``@CONSENSUS_PROTOCOLS.register("name")`` (see ``docs/plugins.md``).
"""

from __future__ import annotations

from ceas_gym.consensus.ceas_protocol import CEASConfig, CEASProtocol
from ceas_gym.consensus.protocol import CONSENSUS_PROTOCOLS, ConsensusProtocol, ConsensusRoundResult
from ceas_gym.consensus.qba_protocol import QBAProtocol
from ceas_gym.consensus.random_selection import RandomSelectionProtocol

__all__ = [
    "CONSENSUS_PROTOCOLS",
    "CEASConfig",
    "CEASProtocol",
    "ConsensusProtocol",
    "ConsensusRoundResult",
    "QBAProtocol",
    "RandomSelectionProtocol",
]

CONSENSUS_PROTOCOLS.add("ceas", CEASProtocol)
CONSENSUS_PROTOCOLS.add("qba", QBAProtocol)
CONSENSUS_PROTOCOLS.add("random-selection", RandomSelectionProtocol)
