"""Configuration of the learning-free scheduling environment, with named presets.

Every field is validated when the dataclass is built; :func:`make_lite_config` starts from a preset and applies
overrides strictly (unknown keys raise, nested sections accept mappings)::

    make_lite_config("small", budget=24, demand={"rate": 0.5})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ceas_gym.config import ConfigError, check_choice, check_int, check_range, replace
from ceas_gym.network.demand import StochasticDemandConfig
from ceas_gym.network.topology import TopologyConfig
from ceas_gym.registry import Registry

ServingOrder = Literal["agent", "oldest-first", "freshest-first"]
InvalidActionRule = Literal["clip", "raise"]


@dataclass(frozen=True)
class LinkConfig:
    """Physical parameters shared by the links of a generated instance.

    Attributes:
        eta: Per-attempt efficiency before fibre loss (source, coupling, detection), in (0, 1].
        attenuation_length_km: Fibre attenuation length L_att in ``p = eta exp(-L / L_att)``, km (> 0; fibre: 22).
        fidelity0: Werner fidelity of a freshly generated pair, in (0.25, 1].
        cutoff_min: Smallest coherence budget tau_c drawn per link, rounds (>= 1).
        cutoff_max: Largest tau_c, rounds (>= cutoff_min); each link draws tau_c uniformly in between (CEAS: 3-6).
        capacity: Memory slots per link, pairs (>= 1); also capped by the end nodes' memory qubits.
        fidelity_floor: Pairs below this Werner fidelity are discarded, in [0.25, 1).
        round_duration_s: Wall-clock length of one consensus round, seconds (> 0); converts memory coherence
            times (seconds) to rounds. The default 2 ms with NV-centre memories (T = 10 ms) gives T = 5 rounds,
            so stored fidelity matters within the CEAS coherence budget of 3-6 rounds.
        hardware: Hardware profile names assigned to nodes cyclically (node k gets ``hardware[k % len]``).
    """

    eta: float = 0.9
    attenuation_length_km: float = 22.0
    fidelity0: float = 0.95
    cutoff_min: int = 3
    cutoff_max: int = 6
    capacity: int = 4
    fidelity_floor: float = 0.5
    round_duration_s: float = 2e-3
    hardware: tuple[str, ...] = ("nv-centre",)

    def __post_init__(self) -> None:
        check_range("LinkConfig.eta", self.eta, 0.0, 1.0, low_inclusive=False)
        check_range("LinkConfig.attenuation_length_km", self.attenuation_length_km, 0.0, low_inclusive=False)
        check_range("LinkConfig.fidelity0", self.fidelity0, 0.25, 1.0, low_inclusive=False)
        check_int("LinkConfig.cutoff_min", self.cutoff_min, 1)
        check_int("LinkConfig.cutoff_max", self.cutoff_max, 1)
        if self.cutoff_max < self.cutoff_min:
            raise ConfigError(f"LinkConfig.cutoff_max = {self.cutoff_max} must be >= cutoff_min = {self.cutoff_min}")
        check_int("LinkConfig.capacity", self.capacity, 1)
        check_range("LinkConfig.fidelity_floor", self.fidelity_floor, 0.25, 1.0, high_inclusive=False)
        if self.fidelity_floor >= self.fidelity0:
            raise ConfigError(
                f"LinkConfig.fidelity_floor = {self.fidelity_floor} must be below fidelity0 = {self.fidelity0}"
            )
        check_range("LinkConfig.round_duration_s", self.round_duration_s, 0.0, low_inclusive=False)
        if not self.hardware:
            raise ConfigError("LinkConfig.hardware: give at least one hardware profile name")


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the scheduling reward (see the environment docstring for the formula).

    Attributes:
        served: Reward per request served on time (>= 0).
        fidelity: Reward per unit of mean delivered fidelity, summed over served requests (>= 0).
        missed: Penalty per request missed (deadline passed) or rejected (queue full) (>= 0).
        wasted: Penalty per pair wasted (expired in memory or overflowing a full memory) (>= 0).
        attempt: Penalty per generation attempt spent, as a fraction of the round budget (>= 0).
    """

    served: float = 1.0
    fidelity: float = 1.0
    missed: float = 1.0
    wasted: float = 0.05
    attempt: float = 0.0

    def __post_init__(self) -> None:
        for name in ("served", "fidelity", "missed", "wasted", "attempt"):
            check_range(f"RewardConfig.{name}", getattr(self, name), 0.0, finite=True)


@dataclass(frozen=True)
class LiteConfig:
    """Everything that defines an ``EntanglementScheduling-Lite`` environment.

    Attributes:
        topology: How the network graph is built (see :class:`~ceas_gym.network.topology.TopologyConfig`).
        links: Link physics (see :class:`LinkConfig`).
        demand: Stochastic request arrivals (see :class:`~ceas_gym.network.demand.StochasticDemandConfig`).
        reward: Reward weights (see :class:`RewardConfig`).
        budget: Generation attempts available per round over the whole network (>= 0; CEAS: 250 for N = 50).
        max_rounds: Episode length in rounds (>= 1); the episode is truncated after it.
        queue_capacity: Pending requests one link can hold (>= 1).
        serving_order: ``"agent"`` lets the action choose oldest-first or freshest-first per link; the other two
            values fix it for every link.
        invalid_action: ``"clip"`` clips action entries into [0, 1]; ``"raise"`` raises on any entry outside.
            Non-finite entries always raise.
        flatten_observation: Return one flat ``Box`` instead of the ``Dict`` (for ``MlpPolicy``).
        instance_seed: Seed of the instance generator (graph, per-link tau_c); fixed per environment.
    """

    topology: TopologyConfig = field(default_factory=TopologyConfig)
    links: LinkConfig = field(default_factory=LinkConfig)
    demand: StochasticDemandConfig = field(default_factory=StochasticDemandConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    budget: int = 16
    max_rounds: int = 100
    queue_capacity: int = 4
    serving_order: ServingOrder = "agent"
    invalid_action: InvalidActionRule = "clip"
    flatten_observation: bool = False
    instance_seed: int = 0

    def __post_init__(self) -> None:
        check_int("LiteConfig.budget", self.budget, 0)
        check_int("LiteConfig.max_rounds", self.max_rounds, 1)
        check_int("LiteConfig.queue_capacity", self.queue_capacity, 1)
        check_choice("LiteConfig.serving_order", self.serving_order, ("agent", "oldest-first", "freshest-first"))
        check_choice("LiteConfig.invalid_action", self.invalid_action, ("clip", "raise"))
        check_int("LiteConfig.instance_seed", self.instance_seed, 0)
        if self.demand.pairs_max > self.links.capacity:
            raise ConfigError(
                f"LiteConfig.demand.pairs_max = {self.demand.pairs_max} exceeds links.capacity = "
                f"{self.links.capacity}: such a request could never be served"
            )


LITE_PRESETS: Registry[LiteConfig] = Registry("Lite preset")

LITE_PRESETS.add(
    "tiny",
    # Small enough for the exact finite-horizon solver (agents/exact_lite.py): 3 links, one memory slot and one
    # queue slot per link, tau_c = 2 rounds, one-pair requests due within 1-2 rounds, fixed oldest-first serving.
    # Per link: stored pair {none, age 1} x queue {empty, deadline 1, deadline 2} -> at most 6^3 = 216 states,
    # and 10 integer splits of the budget of 2 attempts over 3 links plus "unspent".
    LiteConfig(
        topology=TopologyConfig(kind="ring", num_nodes=3, params={"length_km": 10.0}),
        links=LinkConfig(capacity=1, cutoff_min=2, cutoff_max=2),
        demand=StochasticDemandConfig(rate=0.3, pairs_min=1, pairs_max=1, deadline_min=1, deadline_max=2),
        budget=2,
        max_rounds=30,
        queue_capacity=1,
        serving_order="oldest-first",
    ),
)
LITE_PRESETS.add(
    "small",
    LiteConfig(
        topology=TopologyConfig(kind="waxman", num_nodes=8, params={"area_km": 40.0}),
        links=LinkConfig(capacity=4, cutoff_min=3, cutoff_max=6),
        demand=StochasticDemandConfig(rate=0.35, pairs_min=1, pairs_max=2, deadline_min=1, deadline_max=3),
        budget=16,
        max_rounds=100,
        queue_capacity=4,
    ),
)
LITE_PRESETS.add(
    "paper",
    LiteConfig(
        # Sparse Waxman graph (about 85 links, mean degree 3.4) over a 60 km square: fibre loss makes p vary 0.05-0.8.
        topology=TopologyConfig(kind="waxman", num_nodes=50, params={"area_km": 60.0, "beta": 0.15}),
        links=LinkConfig(capacity=6, cutoff_min=3, cutoff_max=6),
        demand=StochasticDemandConfig(rate=0.35, pairs_min=1, pairs_max=2, deadline_min=1, deadline_max=4),
        budget=250,
        max_rounds=300,
        queue_capacity=4,
    ),
)


def make_lite_config(preset: str = "small", **overrides: Any) -> LiteConfig:
    """Return the named preset with ``overrides`` applied strictly (unknown keys raise ConfigError)."""
    return replace(LITE_PRESETS.get(preset), **overrides) if overrides else LITE_PRESETS.get(preset)
