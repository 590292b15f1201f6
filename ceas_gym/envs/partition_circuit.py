"""``ceas_gym/CircuitPartition-v0`` and ``-Small-v0``: a register split over processors, non-local gates (CEAS Fig. 1c).

The classifier's ``n``-qubit register is partitioned into ``K`` contiguous blocks of qubits (as even as possible,
earlier nodes taking the extra qubit), block ``j`` held by node ``j``. Rotations are local. Every CNOT of the
entangling ring whose control and target sit on different nodes is a **non-local gate**, done by gate
teleportation: it consumes one Bell pair on the link between the two nodes. The circuit's gate schedule sets the
demand: the non-local gates of layer ``l`` are due at slot ``l`` of the pass (``demand[l, link]`` = number of
non-local ring gates on that link per layer, the same every layer). A pass has ``L + 1`` slots (``L`` layers and
the readout slot); training, layer-wise consensus, accuracy and the slot order are those of
:class:`~ceas_gym.envs.partition_unitary.PartitionSchedulingEnv`.

Channels (documented in :mod:`ceas_gym.learning.distributed_circuit`). The pairs granted on a link at a slot go
to that link's gates of the layer in ring order; each such gate is applied and followed by a two-qubit
depolarising channel on its control and target with ``p = 4 (1 - F) / 3``, ``F`` the mean Werner fidelity of the
pairs the link served at that slot. A non-local gate without a pair is **not applied** (skipped). Local gates are
perfect.
"""

from __future__ import annotations

import numpy as np
import torch

from ceas_gym.config import ConfigError
from ceas_gym.envs.partition_config import CIRCUIT_PRESETS
from ceas_gym.envs.partition_unitary import PartitionSchedulingEnv, link_index
from ceas_gym.learning.distributed_circuit import Forward, layer_blocks, partitioned_expectations
from ceas_gym.learning.transport import depolarising_strength


class CircuitPartitionEnv(PartitionSchedulingEnv):
    """Schedule entanglement for the non-local gates of a quantum register split over processors.

    ## Description

    CEAS Fig. 1c, circuit-level partition: the ``n`` qubits are split over nodes ``0 .. K-1``; every ring CNOT
    that crosses a partition consumes one Bell pair on the link between its nodes at the slot of its layer (gate
    teleportation). A missing pair skips the gate; a pair of Werner fidelity ``F`` applies two-qubit depolarising
    noise ``p = 4 (1 - F) / 3`` to the gate's qubits. Passes, readout slot, training, layer-wise consensus and
    accuracy are as in ``UnitaryPartition-v0``. Details in the module docstrings and ``docs/partitions.md``.

    ## Action Space

    As in ``EntanglementScheduling-v0``: ``Box(0, 1, (2E + 1,))`` or ``(E + 1,)`` with a fixed serving order.

    ## Observation Space

    The same keys as ``UnitaryPartition-v0`` (see :class:`~ceas_gym.envs.partition_unitary.UnitaryPartitionEnv`):
    the per-link state, ``demand_pairs`` / ``demand_deadline`` of each link's next due slot (deadline in slots,
    1 = this step), ``demand_pass``, ``granted_fraction``, ``slot``, ``round``, ``accuracy``, ``loss``.

    ## Rewards

    As in ``UnitaryPartition-v0``.

    ## Starting State

    Fresh data and initial parameters (from ``np_random``), empty memories, slot 0 of pass 0.

    ## Episode End

    No termination; truncation after ``max_passes * (L + 1)`` steps (registered ``max_episode_steps``).

    ## Arguments

    ``gymnasium.make("ceas_gym/CircuitPartition-v0", **overrides)`` (``preset="paper"``) or ``"...-Small-v0"``;
    ``overrides`` are :class:`~ceas_gym.envs.partition_config.PartitionEnvConfig` fields.

    ## info

    As in ``UnitaryPartition-v0``.

    ## Version History

    * v0: initial version.
    """

    presets = CIRCUIT_PRESETS

    def _schedule(self) -> tuple[np.ndarray, np.ndarray]:
        parties = self.config.parties
        circuit = self.config.learning.circuit
        if circuit.num_qubits < parties:
            raise ConfigError(
                f"PartitionEnvConfig.parties = {parties} exceeds learning.circuit.num_qubits = {circuit.num_qubits}; "
                "every partition needs at least one qubit"
            )
        self.qubit_owner = (
            np.searchsorted(layer_blocks(circuit.num_qubits, parties), np.arange(circuit.num_qubits), "right") - 1
        )
        ring = np.asarray(self.simulator.ring, dtype=np.int64).reshape(-1, 2)  # (G, 2) control, target
        owners = self.qubit_owner[ring]  # (G, 2)
        self.nonlocal_gate = owners[:, 0] != owners[:, 1]
        self.gate_link = np.full(len(ring), -1, dtype=np.int64)
        if self.nonlocal_gate.any():
            self.gate_link[self.nonlocal_gate] = link_index(
                self.instance, owners[self.nonlocal_gate], "PartitionEnvConfig.topology"
            )
        # Rank of each non-local gate among the earlier non-local gates of its link in the same layer.
        same_link = (self.gate_link[:, None] == self.gate_link[None, :]) & self.nonlocal_gate[None, :]
        self.gate_rank = np.tril(same_link, k=-1).sum(axis=1)
        per_layer = np.bincount(self.gate_link[self.nonlocal_gate], minlength=self.instance.num_links)
        if per_layer.sum() == 0:
            raise ConfigError(
                "PartitionEnvConfig.parties: no ring CNOT crosses a partition, so the scheme needs no pairs; "
                "use at least two parties with at least one qubit each and num_qubits >= 2"
            )
        table = np.zeros((circuit.num_layers + 1, self.instance.num_links), dtype=np.int64)
        table[:-1] = per_layer
        return table, per_layer > 0

    def gate_channel(self, granted: np.ndarray, fidelity_sum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which ring gates were applied and their depolarising strength, per layer.

        Args:
            granted: ``(slots, E)`` pairs served per slot and link.
            fidelity_sum: ``(slots, E)`` sum of their Werner fidelities.

        Returns:
            ``(applied (L, G) bool, strength (L, G) float)``.
        """
        layers = self.config.learning.circuit.num_layers
        served = granted[:layers]  # (L, E)
        fidelity = np.where(served > 0, fidelity_sum[:layers] / np.maximum(served, 1), 1.0)
        link_strength = depolarising_strength(torch.as_tensor(fidelity)).numpy()  # (L, E)
        link = np.maximum(self.gate_link, 0)
        has_pair = self.gate_rank[None, :] < served[:, link]  # (L, G)
        applied = ~self.nonlocal_gate[None, :] | has_pair
        strength = np.where(self.nonlocal_gate[None, :] & has_pair, link_strength[:, link], 0.0)
        return applied, strength

    def _forward(self, granted: np.ndarray, fidelity_sum: np.ndarray) -> Forward:
        applied, strength = self.gate_channel(granted, fidelity_sum)

        def forward(angles: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
            return partitioned_expectations(self.simulator, angles, features, applied, strength)

        return forward
