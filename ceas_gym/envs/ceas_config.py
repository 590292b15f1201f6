"""Configuration of the CEAS learning environments (``EntanglementScheduling-v0`` and ``-Small-v0``).

The scenario of the CEAS paper (Sec. IV) is the ``paper`` preset: N = 50 processors, 60 % honest at ~1 % gate
error training on delta_c = 1.4 / eta_y = 3 % data, 40 % Byzantine at ~20 % gate error on delta_c = 0.9 /
eta_y = 25 % data with adaptive attacks, 300 rounds, up to 250 generation attempts per round, tau_c in [3, 6].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ceas_gym.config import ConfigError, check_choice, check_int, check_range, replace
from ceas_gym.consensus.protocol import CONSENSUS_PROTOCOLS, load_config
from ceas_gym.envs.lite_config import InvalidActionRule, LinkConfig, ServingOrder
from ceas_gym.learning.circuit import CircuitConfig
from ceas_gym.learning.classifier import InitConfig
from ceas_gym.learning.data import DataConfig
from ceas_gym.learning.stamps import StampConfig
from ceas_gym.learning.training import TrainingConfig
from ceas_gym.network.hardware import HARDWARE_PROFILES
from ceas_gym.network.outages import OutageConfig
from ceas_gym.network.topology import TopologyConfig
from ceas_gym.registry import Registry

AttackTarget = Literal["weights", "update"]

NON_IID_ALPHA = 0.05
"""Default class-balance concentration of the CEAS environments' data (``DataConfig.dirichlet_alpha``).

The papers do not state how data is split. With ``Beta(0.05, 0.05)`` class balances most nodes hold nearly one
class, so a node alone ends near chance while the connected network learns the task: the outcome needs the network
(Small, 4 seeds, episode-mean honest accuracy, probe runs: idle 0.56 and perfect communication 0.73 with one local
step; with IID data and three local steps 0.78 and 0.83, i.e. a node alone already learns most of the task)."""

LOCAL_STEPS = 1
"""Default local optimiser steps per round (``TrainingConfig.local_steps``; not stated by the papers).

Three steps let the connected network learn faster (episode-mean honest accuracy, Small, 4 seeds, perfect
communication: 0.763 with 3 steps, 0.728 with 1), but the honest models then drift so far between checkpoints that
the BFT detector loses the attackers (EEF, 60 rounds, seeds 1, 2, 3, 5: isolation 0.19 with 3 steps, 0.69 with 1)."""


@dataclass(frozen=True)
class RolesConfig:
    """Which nodes are Byzantine and what hardware each kind runs on.

    Attributes:
        byzantine_fraction: Fraction of nodes that are Byzantine, in [0, 1) (CEAS: 0.4). The Byzantine nodes are
            drawn once per environment by the instance generator.
        honest_hardware: Hardware profile of honest nodes (CEAS: ~1 % gate error).
        byzantine_hardware: Hardware profile of Byzantine nodes (CEAS: ~20 % gate error).
        byzantine_link_eta: Per-attempt efficiency of the links with a Byzantine end, in (0, 1], in place of
            ``links.eta``: attackers whose links are cheap (they draw schedulers that favour likely successes).
            ``None`` (default): every link uses ``links.eta``.
    """

    byzantine_fraction: float = 0.4
    honest_hardware: str = "ceas-honest"
    byzantine_hardware: str = "ceas-byzantine"
    byzantine_link_eta: float | None = None

    def __post_init__(self) -> None:
        check_range("RolesConfig.byzantine_fraction", self.byzantine_fraction, 0.0, 1.0, high_inclusive=False)
        if self.byzantine_link_eta is not None:
            check_range("RolesConfig.byzantine_link_eta", self.byzantine_link_eta, 0.0, 1.0, low_inclusive=False)
        for name in ("honest_hardware", "byzantine_hardware"):
            HARDWARE_PROFILES.get(getattr(self, name))


@dataclass(frozen=True)
class LearningConfig:
    """The embedded distributed quantum neural network.

    Attributes:
        circuit: The variational classifier (qubits, layers, readout, complex dtype).
        data: Per-node data (honest / Byzantine / test separations and label noise, samples, non-IID alpha).
        training: Local optimisation per round (K local steps, learning rate, optimiser).
        init: Initial parameters (identical on every node).
        stamps: Shape of the fidelity stamp.
        attack: Registered attack used by Byzantine nodes (default: switching between Gaussian, reversal, scaling).
        attack_params: Keyword arguments of the attack.
        attack_target: ``"weights"`` applies the attack to the submitted parameters W (CEAS Sec. IV: W <- -1.05 W),
            ``"update"`` to the round's update W - W_start.
        probe_samples: Test-distribution samples of the probe set used for BFT divergences (>= 1).
        qfi_probe_samples: Samples over which the QFI of the stamp is averaged (>= 1).
        qfi_every: Rounds between recomputations of the stamp's QFI factor (>= 1; 1 = every round). The QFI of a
            node's circuit changes slowly with its parameters and costs 2nL + 1 circuit simulations per node, so it
            is refreshed on this cadence; the channel and Bell-pair factors of the stamp update every round.
        transport_noise: Perturb gossip messages according to the fidelity of the pairs they used.
        transport_receiver: ``"unbiased"`` (default) rescales a perturbed message by ``1 / (1 - p)`` using the
            pair's known fidelity, so messages arrive noisy but centred; ``"raw"`` uses it as it arrives, shrunk by
            ``1 - p`` on average, which pulls gossiping models toward zero: with it, more exchanges lowered accuracy
            (Small env, EEF 0.790 vs uniform split 0.818 over 6 seeds; unbiased: 0.843 vs 0.832)
            (:func:`ceas_gym.learning.transport.transmit`).
        node_test_samples: Test samples each honest node's own model is scored on every round (the first of the
            test set, the same for every node; >= 1, at most ``data.test_samples``; ``None`` = all of them). These
            scores are the outcome (``info["accuracy"]``); a fixed subset keeps a paper-scale step within 1.5x of a
            step without them. The diagnostic ``accuracy_ideal_aggregate`` uses the whole test set.
        device: Torch device of the learning layer (``"cpu"`` or ``"cuda"``).
        torch_threads: Torch intra-op CPU threads to use, set (process-wide, with ``torch.set_num_threads``) when
            the environment is built; ``None`` leaves torch's setting alone. The default 1 is fastest for these
            16 x 16 circuits and avoids a collapse under load: with 2 threads on a busy 2-core machine a paper-scale
            step was measured 45x slower than with 1.
    """

    circuit: CircuitConfig = field(default_factory=CircuitConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(test_samples=1000, dirichlet_alpha=NON_IID_ALPHA))
    training: TrainingConfig = field(
        default_factory=lambda: TrainingConfig(local_steps=LOCAL_STEPS, learning_rate=0.1, optimizer="adam")
    )
    init: InitConfig = field(default_factory=InitConfig)
    stamps: StampConfig = field(default_factory=StampConfig)
    attack: str = "switching"
    attack_params: Mapping[str, Any] = field(default_factory=dict)
    attack_target: AttackTarget = "weights"
    probe_samples: int = 64
    qfi_probe_samples: int = 2
    qfi_every: int = 4
    transport_noise: bool = True
    transport_receiver: Literal["raw", "unbiased"] = "unbiased"
    node_test_samples: int | None = 500
    device: str = "cpu"
    torch_threads: int | None = 1

    def __post_init__(self) -> None:
        if self.data.num_features != self.circuit.num_qubits:
            raise ConfigError(
                f"LearningConfig.data.num_features = {self.data.num_features} must equal "
                f"circuit.num_qubits = {self.circuit.num_qubits} (one angle-encoded feature per qubit)"
            )
        check_choice("LearningConfig.attack_target", self.attack_target, ("weights", "update"))
        check_choice("LearningConfig.transport_receiver", self.transport_receiver, ("raw", "unbiased"))
        check_int("LearningConfig.probe_samples", self.probe_samples, 1)
        check_int("LearningConfig.qfi_probe_samples", self.qfi_probe_samples, 1)
        check_int("LearningConfig.qfi_every", self.qfi_every, 1)
        if self.node_test_samples is not None:
            check_int("LearningConfig.node_test_samples", self.node_test_samples, 1, self.data.test_samples)
        if not isinstance(self.attack_params, Mapping):
            raise ConfigError("LearningConfig.attack_params: expected a mapping of attack keyword arguments")
        if self.torch_threads is not None:
            check_int("LearningConfig.torch_threads", self.torch_threads, 1)
        if not self.device.startswith(("cpu", "cuda")):
            raise ConfigError(f"LearningConfig.device = {self.device!r} is not allowed; choose 'cpu' or 'cuda[:N]'")


@dataclass(frozen=True)
class CEASRewardConfig:
    """Weights of the CEAS environment's reward (see the environment docstring).

    The default reward is learning only: the honest nodes' mean test accuracy every round (level) plus its change
    (gain, which sums to final minus initial accuracy over an episode). The other three are optional shaping, 0 by
    default: with ``exchanges = 0.5, wasted = 0.01`` (the weights before learning led) the return ranked an idle
    scheduler above one that communicated and lost no accuracy points by it.

    Attributes:
        accuracy: Reward per unit of the honest nodes' mean test accuracy, every round (>= 0).
        accuracy_gain: Reward per unit of change in that accuracy since the previous round (>= 0).
        exchanges: Reward per unit of the fraction of requested consensus exchanges that got their pairs (>= 0).
        wasted: Penalty per Bell pair wasted (expired or overflowing) (>= 0).
        attempt: Penalty per generation attempt, as a fraction of the round budget (>= 0).
    """

    accuracy: float = 1.0
    accuracy_gain: float = 1.0
    exchanges: float = 0.0
    wasted: float = 0.0
    attempt: float = 0.0

    def __post_init__(self) -> None:
        for name in ("accuracy", "accuracy_gain", "exchanges", "wasted", "attempt"):
            check_range(f"CEASRewardConfig.{name}", getattr(self, name), 0.0, finite=True)


@dataclass(frozen=True)
class CEASEnvConfig:
    """Everything that defines a CEAS learning environment.

    Attributes:
        topology: How the network graph is built.
        links: Link physics. Node hardware comes from ``roles``, so ``links.hardware`` must stay at its default.
        roles: Honest and Byzantine nodes and their hardware.
        learning: The embedded quantum classifier, its data, training and attacks.
        protocol: Registered consensus protocol: ``"ceas"`` (fidelity-weighted gossip + BFT quarantine) or
            ``"random-selection"`` (the paper's baseline), or a plug-in's name.
        protocol_config: Settings per protocol name, e.g. ``{"ceas": {"bft": {"min_active": 5}}}``; each entry is
            loaded strictly by that protocol's config class, and the entry of ``protocol`` is used (so a preset can
            configure every protocol and ``protocol`` can be switched alone).
        reward: Reward weights.
        outages: Link outages over time (:mod:`ceas_gym.network.outages`): a down link's attempts all fail, and
            the observation's ``success_probability`` shows 0 for it in the round it is down. Off by default.
        communication: ``"scheduled"`` (default): consensus messages travel only over the Bell pairs the schedule
            generated and stored. ``"perfect"``: every requested exchange is granted with pairs of fidelity 1 (no
            entanglement limit, same data, attacks and protocol): the upper end of the bracket a scheduler is placed
            in, whatever the actions (the ``small-perfect`` and ``paper-perfect`` presets).
        budget: Generation attempts per round over the whole network (>= 0; CEAS: 250).
        max_rounds: Episode length in rounds (>= 1; CEAS: 300).
        serving_order: As in the Lite environment: who picks oldest- or freshest-first per link.
        invalid_action: As in the Lite environment.
        flatten_observation: Return one flat Box (for MlpPolicy).
        instance_seed: Seed of the instance (graph, tau_c per link, which nodes are Byzantine).
    """

    topology: TopologyConfig = field(default_factory=lambda: TopologyConfig(kind="waxman", num_nodes=10))
    links: LinkConfig = field(default_factory=lambda: LinkConfig(round_duration_s=1e-3))
    roles: RolesConfig = field(default_factory=RolesConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    protocol: str = "ceas"
    protocol_config: Mapping[str, Any] = field(default_factory=dict)
    reward: CEASRewardConfig = field(default_factory=CEASRewardConfig)
    outages: OutageConfig = field(default_factory=OutageConfig)
    communication: Literal["scheduled", "perfect"] = "scheduled"
    budget: int = 40
    max_rounds: int = 100
    serving_order: ServingOrder = "agent"
    invalid_action: InvalidActionRule = "clip"
    flatten_observation: bool = False
    instance_seed: int = 0

    def __post_init__(self) -> None:
        if self.links.hardware != LinkConfig().hardware:
            raise ConfigError(
                "CEASEnvConfig.links.hardware: node hardware comes from roles.honest_hardware and "
                "roles.byzantine_hardware in the CEAS environments; leave links.hardware unset"
            )
        check_choice("CEASEnvConfig.protocol", self.protocol, CONSENSUS_PROTOCOLS.names())
        if not isinstance(self.protocol_config, Mapping):
            raise ConfigError("CEASEnvConfig.protocol_config: expected a mapping {protocol name: settings}")
        for name, settings in self.protocol_config.items():
            check_choice("CEASEnvConfig.protocol_config key", name, CONSENSUS_PROTOCOLS.names())
            config_class = getattr(CONSENSUS_PROTOCOLS.get(name), "config_class", None)
            if config_class is not None:
                load_config(config_class, settings)
        check_choice("CEASEnvConfig.communication", self.communication, ("scheduled", "perfect"))
        check_int("CEASEnvConfig.budget", self.budget, 0)
        check_int("CEASEnvConfig.max_rounds", self.max_rounds, 1)
        check_choice("CEASEnvConfig.serving_order", self.serving_order, ("agent", "oldest-first", "freshest-first"))
        check_choice("CEASEnvConfig.invalid_action", self.invalid_action, ("clip", "raise"))
        check_int("CEASEnvConfig.instance_seed", self.instance_seed, 0)


SCARCE_BUDGET = 50
"""Attempts per round of the ``paper-scarce`` preset (the paper network at a fifth of its budget of 250).

At the paper's budget the built-in heuristics end within 2.3 points of each other (docs/stakes.md); at 100 within
2.6; at 50 within 6.3 (paper network, seeds 0-9, episode-mean honest accuracy: random 0.722, value 0.721, uniform
0.690, greedy 0.659, EEF 0.659; idle 0.573, perfect 0.820), because rules that follow the demand spend a scarce
budget on the links that need the most attempts, and a spread of cheap attempts completes more exchanges."""

CEAS_PRESETS: Registry[CEASEnvConfig] = Registry("CEAS preset")

CEAS_PRESETS.add(
    "small",
    CEASEnvConfig(
        # 10 nodes (4 Byzantine) on a Waxman graph in a 40 km square; BFT readmission floor scaled to the size.
        topology=TopologyConfig(kind="waxman", num_nodes=10, params={"area_km": 40.0, "beta": 0.5}),
        links=LinkConfig(capacity=6, cutoff_min=3, cutoff_max=6, round_duration_s=1e-3),
        protocol_config={"ceas": {"bft": {"min_active": 5}}},
        budget=40,
        max_rounds=100,
    ),
)
CEAS_PRESETS.add(
    "paper",
    CEASEnvConfig(
        # CEAS Sec. IV: N = 50, 40 % Byzantine, 300 rounds, up to 250 per round, tau_c in [3, 6], min_active 15.
        topology=TopologyConfig(kind="waxman", num_nodes=50, params={"area_km": 60.0, "beta": 0.15}),
        links=LinkConfig(capacity=6, cutoff_min=3, cutoff_max=6, round_duration_s=1e-3),
        budget=250,
        max_rounds=300,
    ),
)

# The upper end of the bracket as named scenarios: every requested exchange granted at fidelity 1.
CEAS_PRESETS.add("small-perfect", replace(CEAS_PRESETS.get("small"), communication="perfect"))
CEAS_PRESETS.add("paper-perfect", replace(CEAS_PRESETS.get("paper"), communication="perfect"))
CEAS_PRESETS.add("paper-scarce", replace(CEAS_PRESETS.get("paper"), budget=SCARCE_BUDGET))


def make_ceas_config(preset: str = "small", **overrides: Any) -> CEASEnvConfig:
    """Return the named preset with ``overrides`` applied strictly (unknown keys raise ConfigError)."""
    base = CEAS_PRESETS.get(preset)
    return replace(base, **overrides) if overrides else base
