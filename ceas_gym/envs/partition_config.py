"""Configuration of the partition environments (CEAS Fig. 1b and 1c): ``UnitaryPartition-v0``, ``CircuitPartition-v0``.

Both environments share one configuration class, :class:`PartitionEnvConfig`; the scheme (unitary-level chain or
circuit-level register split) is fixed by the environment class, and each scheme has its own preset registry
(:data:`UNITARY_PRESETS`, :data:`CIRCUIT_PRESETS`) with a ``small`` and a ``paper`` preset.

Time unit. One environment step is one **slot**: the time one hop of the chain (unitary level) or one layer of
the circuit (circuit level) takes. Pair ages, coherence budgets ``tau_c`` and the memory coherence time are
counted in slots (``links.round_duration_s`` is the slot duration, seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ceas_gym.config import ConfigError, check_choice, check_int, check_range, replace
from ceas_gym.envs.lite_config import InvalidActionRule, LinkConfig, ServingOrder
from ceas_gym.learning.circuit import CircuitConfig
from ceas_gym.learning.classifier import InitConfig
from ceas_gym.learning.data import DataConfig
from ceas_gym.network.topology import TopologyConfig
from ceas_gym.registry import Registry


@dataclass(frozen=True)
class PartitionLearningConfig:
    """The distributed classifier trained by a partition environment.

    Attributes:
        circuit: The classifier circuit (qubits, layers, readout, complex dtype).
        data: Data: ``samples_per_node`` is the size of the training pool (honest separation and label noise),
            ``test_samples`` the test set (test separation and label noise); ``num_features`` = qubits.
        batch_size: Training samples per pass, at most the pool size (minibatch drawn without replacement from the
            pool with the env's ``np_random``).
        learning_rate: Adam step size per pass (radians per unit gradient for the angles).
        init: Initial parameters.
        consensus_every: Passes between layer-wise consensus rounds (>= 1): on every ``consensus_every``-th pass
            the readout slot asks ``consensus_pairs`` pairs on every link the scheme uses, and the trained
            parameters are committed (become the served model) only if every one of them was granted.
        consensus_pairs: Pairs per used link a consensus round consumes (>= 1).
        device: Torch device of the learning layer (``"cpu"`` or ``"cuda[:N]"``).
    """

    circuit: CircuitConfig = field(default_factory=lambda: CircuitConfig(num_qubits=4, num_layers=4, readout="first"))
    data: DataConfig = field(default_factory=lambda: DataConfig(num_features=4, samples_per_node=512, test_samples=256))
    batch_size: int = 32
    learning_rate: float = 0.1
    init: InitConfig = field(default_factory=InitConfig)
    consensus_every: int = 4
    consensus_pairs: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.data.num_features != self.circuit.num_qubits:
            raise ConfigError(
                f"PartitionLearningConfig.data.num_features = {self.data.num_features} must equal "
                f"circuit.num_qubits = {self.circuit.num_qubits} (one angle-encoded feature per qubit)"
            )
        check_int("PartitionLearningConfig.batch_size", self.batch_size, 1, self.data.samples_per_node)
        check_range("PartitionLearningConfig.learning_rate", self.learning_rate, 0.0, 10.0, low_inclusive=False)
        check_int("PartitionLearningConfig.consensus_every", self.consensus_every, 1)
        check_int("PartitionLearningConfig.consensus_pairs", self.consensus_pairs, 1)
        if not self.device.startswith(("cpu", "cuda")):
            raise ConfigError(
                f"PartitionLearningConfig.device = {self.device!r} is not allowed; choose 'cpu' or 'cuda[:N]'"
            )


@dataclass(frozen=True)
class PartitionRewardConfig:
    """Weights of the partition environments' reward (see the environment docstring).

    Attributes:
        accuracy: Reward per unit of the served model's test accuracy (last completed pass), every slot (>= 0).
        served: Reward per unit of the fraction of this slot's demanded pairs that were granted (>= 0).
        wasted: Penalty per Bell pair wasted (expired or overflowing) (>= 0).
        attempt: Penalty per generation attempt, as a fraction of the slot budget (>= 0).
    """

    accuracy: float = 1.0
    served: float = 0.5
    wasted: float = 0.01
    attempt: float = 0.0

    def __post_init__(self) -> None:
        for name in ("accuracy", "served", "wasted", "attempt"):
            check_range(f"PartitionRewardConfig.{name}", getattr(self, name), 0.0, finite=True)


@dataclass(frozen=True)
class PartitionEnvConfig:
    """Everything that defines a partition environment.

    Attributes:
        topology: The network graph. The scheme's parties are nodes ``0 .. parties - 1``; the links it needs
            (chain ``k - (k+1)`` or the links between register partitions) must exist in the graph.
        links: Link physics and node hardware (ages and ``tau_c`` in slots).
        parties: Processors that run the model (>= 2): chain length (unitary level) or number of register
            partitions (circuit level).
        learning: The distributed classifier.
        reward: Reward weights.
        budget: Generation attempts per slot over the whole network (>= 0).
        max_passes: Episode length in training passes (>= 1); the episode has ``max_passes * slots_per_pass``
            steps.
        serving_order: Who picks oldest- or freshest-first per link (as in the Lite environment).
        invalid_action: As in the Lite environment.
        flatten_observation: Return one flat Box (for MlpPolicy).
        instance_seed: Seed of the instance (graph, ``tau_c`` per link).
    """

    topology: TopologyConfig = field(
        default_factory=lambda: TopologyConfig(kind="ring", num_nodes=4, params={"length_km": 10.0})
    )
    links: LinkConfig = field(default_factory=lambda: LinkConfig(capacity=6, cutoff_min=3, cutoff_max=6))
    parties: int = 4
    learning: PartitionLearningConfig = field(default_factory=PartitionLearningConfig)
    reward: PartitionRewardConfig = field(default_factory=PartitionRewardConfig)
    budget: int = 16
    max_passes: int = 60
    serving_order: ServingOrder = "agent"
    invalid_action: InvalidActionRule = "clip"
    flatten_observation: bool = False
    instance_seed: int = 0

    def __post_init__(self) -> None:
        check_int("PartitionEnvConfig.parties", self.parties, 2, self.topology.num_nodes)
        check_int("PartitionEnvConfig.budget", self.budget, 0)
        check_int("PartitionEnvConfig.max_passes", self.max_passes, 1)
        check_choice(
            "PartitionEnvConfig.serving_order", self.serving_order, ("agent", "oldest-first", "freshest-first")
        )
        check_choice("PartitionEnvConfig.invalid_action", self.invalid_action, ("clip", "raise"))
        check_int("PartitionEnvConfig.instance_seed", self.instance_seed, 0)


def _learning(qubits: int, layers: int, test_samples: int = 256, **changes: Any) -> PartitionLearningConfig:
    return PartitionLearningConfig(
        circuit=CircuitConfig(num_qubits=qubits, num_layers=layers, readout="first"),
        data=DataConfig(num_features=qubits, samples_per_node=512, test_samples=test_samples),
        **changes,
    )


FAST_SLOT_LINKS = LinkConfig(capacity=6, cutoff_min=3, cutoff_max=6, round_duration_s=5e-4)
"""Links of the paper presets: 0.5 ms slots, so NV-centre memories (T = 10 ms) keep pairs for T = 20 slots."""

UNITARY_PRESETS: Registry[PartitionEnvConfig] = Registry("unitary-partition preset")
"""Presets of ``UnitaryPartition``: ``small`` and ``paper``."""

UNITARY_PRESETS.add(
    "small",
    # A 4-node chain on a 4-node ring of 10 km links (p = 0.9 exp(-10/22) = 0.57); 4 qubits, one layer per node;
    # 3 hops x 4 pairs per pass; the ring's closing link is not on the chain. 4 slots per pass, 60 passes.
    PartitionEnvConfig(
        topology=TopologyConfig(kind="ring", num_nodes=4, params={"length_km": 10.0}),
        parties=4,
        learning=_learning(4, 4),
        budget=16,
        max_passes=60,
    ),
)
UNITARY_PRESETS.add(
    "paper",
    # A 6-node chain on an 8-node ring of 15 km links (p = 0.9 exp(-15/22) = 0.45); 4 qubits, 6 layers (one per
    # node); 5 hops x 4 pairs per pass; 6 slots per pass, 100 passes (600 steps). Slots of 0.5 ms give the
    # NV-centre memories T = 20 slots. Longer chains starve: with 10 nodes (parties=10, num_layers=10) EEF no
    # longer learns within 100 passes (every one of 9 hops must deliver 4 good pairs).
    PartitionEnvConfig(
        topology=TopologyConfig(kind="ring", num_nodes=8, params={"length_km": 15.0}),
        links=FAST_SLOT_LINKS,
        parties=6,
        learning=_learning(4, 6),
        budget=30,
        max_passes=100,
    ),
)

CIRCUIT_PRESETS: Registry[PartitionEnvConfig] = Registry("circuit-partition preset")
"""Presets of ``CircuitPartition``: ``small`` and ``paper``."""

CIRCUIT_PRESETS.add(
    "small",
    # 4 qubits split 2 + 2 over nodes 0 and 1 of a 3-node ring (10 km links); 3 layers; per layer the ring CNOTs
    # (1, 2) and (3, 0) cross the partition: 2 pairs per layer on link 0-1. 4 slots per pass, 60 passes.
    PartitionEnvConfig(
        topology=TopologyConfig(kind="ring", num_nodes=3, params={"length_km": 10.0}),
        parties=2,
        learning=_learning(4, 3),
        budget=8,
        max_passes=60,
    ),
)
CIRCUIT_PRESETS.add(
    "paper",
    # 6 qubits split 2 + 2 + 2 over a 3-node ring (triangle, 15 km links, p = 0.45); 4 layers; per layer the
    # ring CNOTs (1, 2), (3, 4) and (5, 0) cross partitions: one pair per layer on each of links 0-1, 1-2, 0-2.
    # 5 slots per pass, 100 passes (500 steps); 0.5 ms slots (T = 20 slots).
    PartitionEnvConfig(
        topology=TopologyConfig(kind="ring", num_nodes=3, params={"length_km": 15.0}),
        links=FAST_SLOT_LINKS,
        parties=3,
        # 64 x 64 density matrices: a smaller test set and batch keep a pass near a tenth of a second.
        learning=_learning(6, 4, test_samples=128, batch_size=16),
        budget=12,
        max_passes=100,
    ),
)


def make_partition_config(scheme: str, preset: str = "small", **overrides: Any) -> PartitionEnvConfig:
    """Return the named preset of ``scheme`` (``"unitary"`` or ``"circuit"``) with ``overrides`` applied strictly."""
    presets = {"unitary": UNITARY_PRESETS, "circuit": CIRCUIT_PRESETS}
    if scheme not in presets:
        raise ConfigError(f"scheme = {scheme!r} is not allowed; choose 'unitary' or 'circuit'")
    base = presets[scheme].get(preset)
    return replace(base, **overrides) if overrides else base
