"""``ceas_gym/UnitaryPartition-v0`` and ``-Small-v0``: a chain of processors teleports the forward state (CEAS Fig. 1b).

This module also holds :class:`PartitionSchedulingEnv`, the part both partition environments share (slots,
passes, serving the demand from the link memories, layer-wise consensus, training, observation and reward); the
circuit-level environment (:mod:`ceas_gym.envs.partition_circuit`) subclasses it.

Passes and slots. Training proceeds in **passes**: one forward pass of a minibatch through the distributed model,
then one Adam step. A pass takes ``slots_per_pass`` environment steps (slots): one per scheduled piece of
communication, plus a final **readout slot** where the output is read, the loss computed and the parameters
updated. The scheme fixes a demand table ``demand[slot, link]`` (pairs due on each link at each slot of a pass):

* Unitary level: the ``L`` layers are cut into ``K`` consecutive blocks, block ``k`` run by chain node ``k``
  (nodes ``0 .. K-1``, chain links ``k - (k+1)``). Hop ``k`` teleports all ``n`` qubits from node ``k`` to node
  ``k + 1`` and is due at slot ``k``: ``n`` pairs on chain link ``k``. A pass has ``K`` slots (``K - 1`` hops and
  the readout slot). The minibatch is one ensemble: the brief's accounting is ``n`` pairs per hop **per batch**
  (one pair per qubit), and every sample of the batch sees that hop's channel.

Each slot runs, in order: (1) generation (the action splits the slot budget over links; successes are stored),
(2) serving: every link with demand due now gets ``min(held, due)`` pairs from its memory in the link's serving
order, (3) at the readout slot, the pass is executed (below), (4) stored pairs age one slot and expire at their
cutoff or fidelity floor. Demand that is not served at its slot is lost (the hop goes ahead without it).

Channels (documented in :mod:`ceas_gym.learning.distributed_circuit`). Unitary level: qubit ``q`` of hop ``k``
uses the ``q``-th granted pair of that hop; with ``g`` pairs granted at mean Werner fidelity ``F``, qubits
``0 .. g-1`` pass a depolarising channel of strength ``p = 4 (1 - F) / 3`` and qubits ``g .. n-1`` arrive
maximally mixed (``p = 1``). Every qubit of a hop is charged the hop's mean fidelity (the per-pair spread is
not tracked).

Layer-wise consensus (CEAS Fig. 1b: "a layer-wise consensus round synchronises parameter updates"). Every node
trains its own block from the pass's gradient (the working model). Every ``consensus_every``-th pass the readout
slot additionally asks ``consensus_pairs`` pairs on every link the scheme uses; if all of them are granted the
working parameters are committed and become the **served model**, otherwise the served model stays as it was.
Cost: ``consensus_pairs x (links used)`` pairs per consensus round.

Accuracy. At each readout slot the served model classifies the test set through this pass's channel (the test
queries ride the same teleportations as the training batch): ``accuracy`` and ``loss`` in the observation, info
and reward. A starved chain (no pairs) outputs the maximally mixed state, ``<Z> = 0``, so the classifier falls
back to its bias: about 50 % accuracy. The working model is trained on the minibatch through the same channel
(gradients by autograd through the noisy forward pass; the gradient estimation shots are not charged pairs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from ceas_gym.config import ConfigError
from ceas_gym.envs.base import SchedulingEnv
from ceas_gym.envs.generator import InstanceGenerator
from ceas_gym.envs.instance import SchedulingInstance
from ceas_gym.envs.link_layer import LinkLayer
from ceas_gym.envs.observation import box, link_state, link_state_spaces
from ceas_gym.envs.partition_config import UNITARY_PRESETS, PartitionEnvConfig
from ceas_gym.learning.classifier import QuantumClassifier
from ceas_gym.learning.data import make_gaussian_data
from ceas_gym.learning.distributed_circuit import (
    ChannelTrainer,
    DensityMatrixCircuit,
    Forward,
    chain_expectations,
    layer_blocks,
)
from ceas_gym.learning.transport import depolarising_strength

PARTITION_INFO_METRICS = (
    "accuracy",
    "loss",
    "utilisation",
    "exchanges_granted_fraction",
    "requests_missed",
    "pairs_expired",
    "wasted",
)
"""Scalar info keys every partition environment reports each step."""


def link_index(instance: SchedulingInstance, pairs: np.ndarray, field: str) -> np.ndarray:
    """Return the link index of each node pair ``(M, 2)``; raise ConfigError naming ``field`` for a missing link."""
    lookup = {(int(u), int(v)): index for index, (u, v) in enumerate(instance.edges)}
    result = np.empty(len(pairs), dtype=np.int64)
    for row, (u, v) in enumerate(np.sort(np.asarray(pairs, dtype=np.int64), axis=1)):  # setup, once per env
        if (int(u), int(v)) not in lookup:
            raise ConfigError(
                f"{field}: the scheme needs a link between nodes {int(u)} and {int(v)}, but the topology has none; "
                "choose a topology containing it (the ring presets do)"
            )
        result[row] = lookup[(int(u), int(v))]
    return result


class PartitionSchedulingEnv(SchedulingEnv):
    """Shared machinery of the partition environments (see the module docstring); subclasses set the scheme.

    Subclasses implement :meth:`_schedule` (the demand table and used links) and :meth:`_forward` (the forward
    pass of the pass just completed, given the pairs served at each slot).
    """

    presets = UNITARY_PRESETS

    def __init__(
        self,
        preset: str = "paper",
        render_mode: str | None = None,
        config: PartitionEnvConfig | None = None,
        **overrides: Any,
    ) -> None:
        self._configure(preset, render_mode, config, overrides)
        self.config: PartitionEnvConfig
        config = self.config
        self.instance: SchedulingInstance = InstanceGenerator(config.topology, config.links)(
            np.random.default_rng(config.instance_seed)
        )
        self.num_links = self.instance.num_links
        self.num_nodes = self.instance.num_nodes
        if config.parties > self.num_nodes:
            raise ConfigError(
                f"PartitionEnvConfig.parties = {config.parties} exceeds the topology's {self.num_nodes} nodes; "
                f"allowed: [2, {self.num_nodes}]"
            )
        self.layer = LinkLayer(self.instance, queue_capacity=1, fidelity_floor=config.links.fidelity_floor)
        learning = config.learning
        self.device = torch.device(learning.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("PartitionLearningConfig.device = 'cuda' but no CUDA device is available; use 'cpu'")
        self.model = QuantumClassifier(learning.circuit, device=self.device)
        self.simulator = DensityMatrixCircuit(learning.circuit, device=self.device)
        self.trainer = ChannelTrainer(self.model, learning.learning_rate)
        self.demand_table, self.used_links = self._schedule()  # (slots, E) int, (E,) bool
        self.slots_per_pass = self.demand_table.shape[0]
        self.max_steps = config.max_passes * self.slots_per_pass
        self.lifetime_bins = int(config.links.cutoff_max)
        self._set_spaces(self._build_observation_space())
        self.step_index = 0
        self._reset_trackers()

    # ------------------------------------------------------------------------------------- scheme hooks
    def _schedule(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the demand table ``(slots_per_pass, E)`` int (readout slot last, all zero) and used links."""
        raise NotImplementedError

    def _forward(self, granted: np.ndarray, fidelity_sum: np.ndarray) -> Forward:
        """Return the forward pass of the completed pass, given pairs granted and their fidelity sum per slot."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ helpers
    def _reset_trackers(self) -> None:
        slots, links = self.demand_table.shape
        self._granted = np.zeros((slots, links), dtype=np.int64)
        self._fidelity_sum = np.zeros((slots, links))
        self._granted_fraction = np.ones(links)
        self._accuracy = 0.5
        self._loss = float(np.log(2.0))
        self._train_loss = float(np.log(2.0))
        self._passes = 0
        self._commits = 0
        self._generated_total = 0
        self._consumed_total = 0

    @property
    def slot(self) -> int:
        """Slot of the coming step within its pass (0-based)."""
        return self.step_index % self.slots_per_pass

    def _consensus_pass(self) -> bool:
        """Whether the current pass ends with a layer-wise consensus round."""
        return (self.step_index // self.slots_per_pass + 1) % self.config.learning.consensus_every == 0

    def pass_demand(self) -> np.ndarray:
        """Demand table of the current pass, consensus included. ``(slots_per_pass, E)`` int, pairs."""
        table = self.demand_table.copy()
        if self._consensus_pass():
            table[-1] += np.where(self.used_links, self.config.learning.consensus_pairs, 0)
        return table

    # -------------------------------------------------------------------------------------------- spaces
    def _build_observation_space(self) -> spaces.Dict:
        links = self.num_links
        most = float(max(self.demand_table.max() + self.config.learning.consensus_pairs, 1))
        return spaces.Dict(
            {
                **link_state_spaces(self.instance, self.lifetime_bins),
                "demand_pairs": box(0.0, most, (links,)),
                "demand_deadline": box(0.0, float(self.slots_per_pass + 1), (links,)),
                "demand_pass": box(0.0, most * self.slots_per_pass, (links,)),
                "granted_fraction": box(0.0, 1.0, (links,)),
                "slot": box(0.0, 1.0, (1,)),
                "round": box(0.0, 1.0, (1,)),
                "accuracy": box(0.0, 1.0, (1,)),
                "loss": box(0.0, 10.0, (1,)),
            }
        )

    def _observation(self) -> Any:
        remaining = self.pass_demand()[self.slot :]  # (slots left, E)
        due = remaining > 0
        has_demand = due.any(axis=0)
        first = np.argmax(due, axis=0)
        demand = np.where(has_demand, remaining[first, np.arange(self.num_links)], 0)
        observation = {
            **link_state(self.instance, self.layer.inventory, self.lifetime_bins),
            "demand_pairs": demand.astype(np.float32),
            "demand_deadline": np.where(has_demand, first + 1, self.slots_per_pass + 1).astype(np.float32),
            "demand_pass": remaining.sum(axis=0).astype(np.float32),
            "granted_fraction": self._granted_fraction.astype(np.float32),
            "slot": np.array([self.slot / self.slots_per_pass], dtype=np.float32),
            "round": np.array([self.step_index / self.max_steps], dtype=np.float32),
            "accuracy": np.array([self._accuracy], dtype=np.float32),
            "loss": np.array([min(self._loss, 10.0)], dtype=np.float32),
        }
        return self._emit(observation)

    # ---------------------------------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Fresh data and initial parameters (served = working), empty memories, slot 0 of pass 0."""
        super().reset(seed=seed)
        self.layer.reset()
        self.step_index = 0
        self._reset_trackers()
        data = self.config.learning.data
        rng = self.np_random
        dtype = self.model.dtype
        train = make_gaussian_data(
            np.array([data.honest_separation]),
            np.array([data.honest_label_noise]),
            data.samples_per_node,
            data.num_features,
            rng,
            dtype=dtype,
            device=self.device,
        )
        test = make_gaussian_data(
            np.array([data.test_separation]),
            np.array([data.test_label_noise]),
            data.test_samples,
            data.num_features,
            rng,
            dtype=dtype,
            device=self.device,
        )
        self._train_features, self._train_labels = train.features[0], train.labels[0]
        self._test_features, self._test_labels = test.features[0], test.labels[0]
        generator = torch.Generator(device="cpu").manual_seed(int(rng.integers(2**63 - 1)))
        initial = self.model.init_parameters(1, generator, self.config.learning.init)[0]
        self.trainer.reset(initial)
        self.served_params = initial.detach().clone()
        self._start_episode()
        return self._observation(), self._info(0, 0, 0, 0, 0, 0)

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        """Run one slot: generate, serve the slot's demand, execute the pass at the readout slot, age."""
        self._check_can_step()
        attempts, freshest = self.decode_action(action)
        generated, overflow = self.layer.generate(attempts, self.np_random)
        slot = self.slot
        due = self.pass_demand()[slot]
        inventory = self.layer.inventory
        counts = np.minimum(inventory.held, due)
        result = inventory.consume(counts, freshest)
        self._granted[slot] = counts
        self._fidelity_sum[slot] = result.fidelity_sum
        self._granted_fraction = np.where(due > 0, counts / np.maximum(due, 1), 1.0)
        committed = False
        if slot == self.slots_per_pass - 1:
            committed = self._run_pass(consensus_due=self._consensus_pass())
        expired = self.layer.age()
        self._generated_total += int(generated.sum())
        self._consumed_total += int(counts.sum())
        self.step_index += 1
        demanded, granted = int(due.sum()), int(counts.sum())
        info = self._info(
            int(attempts.sum()), int(generated.sum()), int(expired.sum()), int(overflow.sum()), demanded, granted
        )
        info["committed"] = committed
        info["mean_delivered_fidelity"] = float(result.fidelity_sum.sum() / granted) if granted else 0.0
        weights = self.config.reward
        reward = (
            weights.accuracy * self._accuracy
            + weights.served * info["exchanges_granted_fraction"]
            - weights.wasted * info["wasted"]
            - weights.attempt * info["attempts"] / max(self.config.budget, 1)
        )
        truncated = self.step_index >= self.max_steps
        self._end_episode_if(truncated)
        return self._observation(), float(reward), False, truncated, info

    def _run_pass(self, consensus_due: bool) -> bool:
        """Execute the completed pass: train the working model, commit on consensus, score the served model."""
        forward = self._forward(self._granted, self._fidelity_sum)
        batch = self.np_random.choice(self._train_features.shape[0], self.config.learning.batch_size, replace=False)
        index = torch.as_tensor(batch, device=self.device)
        self._train_loss = self.trainer.step(forward, self._train_features[index], self._train_labels[index])
        committed = False
        if consensus_due:
            needed = self.demand_table[-1] + self.config.learning.consensus_pairs
            committed = bool(np.all(self._granted[-1][self.used_links] >= needed[self.used_links]))
            if committed:
                self.served_params = self.trainer.params.detach().clone()
                self._commits += 1
        self._accuracy, self._loss = self.trainer.evaluate(
            self.served_params, forward, self._test_features, self._test_labels
        )
        self._passes += 1
        self._granted.fill(0)
        self._fidelity_sum.fill(0.0)
        return committed

    def _info(
        self, attempts: int, generated: int, expired: int, overflow: int, demanded: int, granted: int
    ) -> dict[str, Any]:
        return {
            "round": self.step_index,
            "passes": self._passes,
            "commits": self._commits,
            "accuracy": self._accuracy,
            "loss": self._loss,
            "train_loss": self._train_loss,
            "utilisation": self._consumed_total / self._generated_total if self._generated_total else 0.0,
            "exchanges_granted_fraction": granted / demanded if demanded else 1.0,
            "requests_missed": demanded - granted,
            "pairs_expired": expired,
            "wasted": expired + overflow,
            "attempts": attempts,
            "generated": generated,
            "consumed": granted,
            "committed": False,
            "mean_delivered_fidelity": 0.0,
        }

    def _render_header(self) -> str:
        return (
            f"pass {self._passes}  slot {self.slot}/{self.slots_per_pass}  accuracy {self._accuracy:.3f}  "
            f"loss {self._loss:.3f}  commits {self._commits}\n"
        )

    def _render_round(self) -> int:
        return self.step_index


class UnitaryPartitionEnv(PartitionSchedulingEnv):
    """Schedule entanglement for a chain of processors that each run one block of the classifier's layers.

    ## Description

    CEAS Fig. 1b, unitary-level partition: the variational unitary ``U = U_K ... U_1`` is cut into ``K`` blocks of
    consecutive layers, block ``k`` on node ``k`` of a chain ``0 - 1 - ... - (K-1)`` through the topology. A forward
    pass teleports the ``n``-qubit state node to node: hop ``k`` needs ``n`` Bell pairs on chain link ``k`` at slot
    ``k`` of the pass (one pair per qubit per batch). A missing pair leaves its qubit maximally mixed; a pair of
    Werner fidelity ``F`` depolarises its qubit with ``p = 4 (1 - F) / 3``. The readout slot trains the working
    model (Adam, one step per pass) and every ``consensus_every``-th pass runs a layer-wise consensus round
    (``consensus_pairs`` on every chain link) that commits the working model as the served model. The agent splits
    every slot's generation budget over the links. Details in the module docstring and ``docs/partitions.md``.

    ## Action Space

    As in ``EntanglementScheduling-v0``: ``Box(0, 1, (2E + 1,))`` (``E`` link weights, one "unspent" weight, ``E``
    serving-order entries, ``> 0.5`` = freshest-first), or ``(E + 1,)`` with a fixed serving order.

    ## Observation Space

    A flat ``Dict`` of float32 ``Box`` arrays (or one flat ``Box`` with ``flatten_observation=True``):

    | key                 | shape        | meaning                                                             |
    |---------------------|--------------|---------------------------------------------------------------------|
    | inventory           | (E, tau_max) | stored pairs per link by remaining lifetime (slots)                 |
    | mean_fidelity       | (E,)         | mean stored Werner fidelity (0 if none)                             |
    | decay_rate          | (E,)         | 1/T per slot                                                        |
    | success_probability | (E,)         | per-attempt generation success p                                    |
    | cutoff              | (E,)         | coherence budget tau_c (slots)                                      |
    | demand_pairs        | (E,)         | pairs due at the link's next due slot of this pass (0 if none)      |
    | demand_deadline     | (E,)         | slots until then, 1 = this step (slots_per_pass + 1 if none)        |
    | demand_pass         | (E,)         | pairs still due on the link in the rest of this pass                |
    | granted_fraction    | (E,)         | fraction of last slot's demand on the link that was served          |
    | slot                | (1,)         | slot index / slots_per_pass                                         |
    | round               | (1,)         | step index / episode steps                                          |
    | accuracy            | (1,)         | test accuracy of the served model through the last pass's channel   |
    | loss                | (1,)         | its test loss (nats), clipped to [0, 10]                            |

    ## Rewards

    Per slot, with ``PartitionRewardConfig`` weights: ``w_accuracy * accuracy + w_served * granted / demanded
    (1 without demand) - w_wasted * (expired + overflow pairs) - w_attempt * attempts / B``.

    ## Starting State

    Fresh data and initial parameters (from ``np_random``), empty memories, slot 0 of pass 0.

    ## Episode End

    No termination; truncation after ``max_passes * slots_per_pass`` steps (registered ``max_episode_steps``).

    ## Arguments

    ``gymnasium.make("ceas_gym/UnitaryPartition-v0", **overrides)`` (``preset="paper"``) or ``"...-Small-v0"``;
    ``overrides`` are :class:`~ceas_gym.envs.partition_config.PartitionEnvConfig` fields.

    ## info

    ``round`` (steps so far), ``accuracy``, ``loss``, ``train_loss``, ``utilisation`` (consumed / generated),
    ``exchanges_granted_fraction`` (this slot's served / demanded pairs), ``requests_missed`` (pairs demanded
    and not served this slot), ``pairs_expired``, ``wasted``, ``attempts``, ``generated``, ``consumed``,
    ``mean_delivered_fidelity``, ``passes``, ``commits``, ``committed``.

    ## Version History

    * v0: initial version.
    """

    presets = UNITARY_PRESETS

    def _schedule(self) -> tuple[np.ndarray, np.ndarray]:
        parties = self.config.parties
        layers = self.config.learning.circuit.num_layers
        if layers < parties:
            raise ConfigError(
                f"PartitionEnvConfig.parties = {parties} exceeds learning.circuit.num_layers = {layers}; "
                "every chain node needs at least one layer"
            )
        self.blocks = layer_blocks(layers, parties)
        nodes = np.arange(parties)
        self.chain_links = link_index(
            self.instance, np.stack([nodes[:-1], nodes[1:]], axis=1), "PartitionEnvConfig.topology"
        )
        hops = parties - 1
        table = np.zeros((hops + 1, self.instance.num_links), dtype=np.int64)
        table[np.arange(hops), self.chain_links] = self.config.learning.circuit.num_qubits
        used = np.zeros(self.instance.num_links, dtype=bool)
        used[self.chain_links] = True
        return table, used

    def hop_strength(self, granted: np.ndarray, fidelity_sum: np.ndarray) -> np.ndarray:
        """Depolarising probability of every qubit on every hop. ``(hops, n)`` float in [0, 1].

        Args:
            granted: ``(slots, E)`` pairs served per slot and link.
            fidelity_sum: ``(slots, E)`` sum of their Werner fidelities.
        """
        hops = np.arange(self.config.parties - 1)
        served = granted[hops, self.chain_links]  # (H,)
        fidelity = np.where(served > 0, fidelity_sum[hops, self.chain_links] / np.maximum(served, 1), 1.0)
        strength = depolarising_strength(torch.as_tensor(fidelity)).numpy()
        qubits = np.arange(self.config.learning.circuit.num_qubits)
        return np.where(qubits[None, :] < served[:, None], strength[:, None], 1.0)

    def _forward(self, granted: np.ndarray, fidelity_sum: np.ndarray) -> Forward:
        strength = self.hop_strength(granted, fidelity_sum)

        def forward(angles: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
            return chain_expectations(self.simulator, angles, features, self.blocks, strength)

        return forward
