"""``ceas_gym/EntanglementScheduling-v0`` and ``-Small-v0``: scheduling Bell pairs for a learning quantum network."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from ceas_gym.config import ConfigError
from ceas_gym.consensus.pairs import InventoryPairs
from ceas_gym.consensus.protocol import CONSENSUS_PROTOCOLS
from ceas_gym.envs.base import SchedulingEnv
from ceas_gym.envs.ceas_config import CEAS_PRESETS, CEASEnvConfig
from ceas_gym.envs.ceas_outputs import INFO_METRICS, RoundStats, info_row, round_infos, round_reward
from ceas_gym.envs.distributed_training import DistributedTraining
from ceas_gym.envs.generator import InstanceGenerator
from ceas_gym.envs.instance import SchedulingInstance
from ceas_gym.envs.link_layer import LinkLayer
from ceas_gym.envs.observation import box, link_state, link_state_spaces

__all__ = ["INFO_METRICS", "EntanglementSchedulingEnv"]


class EntanglementSchedulingEnv(SchedulingEnv):
    """Schedule entanglement for a quantum network that trains one classifier under Byzantine attack.

    ## Description

    N quantum processors train a variational quantum classifier together (CEAS, Chen et al.). Each round every
    node runs K local training steps through its own noisy circuit; Byzantine nodes (40 % in the paper scenario,
    ~20 % gate error, poor data) replace their submission by an adaptive attack. The nodes then reach consensus
    with the configured protocol: ``ceas`` runs ceil(log2 N) steps of fidelity-weighted gossip, where every
    exchange over a link consumes Bell pairs from that link's memory (an exchange without pairs does not happen)
    and arrives perturbed according to the pairs' Werner fidelity, followed every 4th round by a BFT checkpoint
    that quarantines nodes whose rolling KL divergence from the consensus exceeds a fidelity-dependent threshold;
    ``random-selection`` is the paper's entanglement-oblivious baseline. The agent is the entanglement scheduler:
    before the consensus of each round it splits the network's budget of generation attempts over the links and
    may choose, per link, whether exchanges use the oldest or the freshest stored pairs. A round runs: generate
    pairs, local training and attacks, stamps, consensus (consuming pairs), evaluation, pairs age and expire.

    ## Action Space

    As in ``EntanglementScheduling-Lite-v0``: ``Box(0, 1, (2E + 1,))`` (``E`` link weights, one "unspent" weight,
    ``E`` serving-order entries, ``> 0.5`` = freshest-first), or ``(E + 1,)`` with a fixed serving order.

    ## Observation Space

    A flat ``Dict`` of float32 ``Box`` arrays (or one flat ``Box`` with ``flatten_observation=True``):

    | key                   | shape        | meaning                                                         |
    |-----------------------|--------------|-----------------------------------------------------------------|
    | inventory             | (E, tau_max) | stored pairs per link by remaining lifetime                     |
    | mean_fidelity         | (E,)         | mean stored Werner fidelity (0 if none)                         |
    | decay_rate            | (E,)         | 1/T per round                                                   |
    | success_probability   | (E,)         | per-attempt generation success p                                |
    | cutoff                | (E,)         | coherence budget tau_c (rounds)                                 |
    | demand_pairs          | (E,)         | pairs the coming consensus round will request on the link       |
    | demand_deadline       | (E,)         | rounds until that demand is due (1; 2 where there is none)      |
    | granted_fraction      | (E,)         | fraction of last round's exchanges on the link that happened    |
    | trust                 | (N,)         | trust score tau_k                                               |
    | stamp                 | (N,)         | last fidelity stamp phi_k                                       |
    | quarantined           | (N,)         | 1 if the node is quarantined                                    |
    | round                 | (1,)         | round index / max_rounds                                        |
    | checkpoint_next       | (1,)         | 1 if the coming round ends with a BFT checkpoint (votes count   |
    |                       |              | only from nodes that receive a message), else 0                 |
    | accuracy              | (1,)         | test accuracy of the last consensus model                       |
    | loss                  | (1,)         | its test loss (nats), clipped to [0, 10]                        |

    ## Rewards

    Per round, with ``CEASRewardConfig`` weights: ``w_accuracy * accuracy + w_gain * (accuracy - previous accuracy)
    + w_exchanges * granted / requested - w_wasted * (expired + overflow pairs) - w_attempt * attempts / B``.
    The accuracy term rewards learning progress over the whole episode (area under the accuracy curve).

    ## Starting State

    Fresh data and identical initial parameters on every node (drawn from ``np_random``), empty memories, all
    nodes active with trust 1.

    ## Episode End

    No termination; truncation after ``max_rounds`` (registered ``max_episode_steps``).

    ## Arguments

    ``gymnasium.make("ceas_gym/EntanglementScheduling-v0", render_mode=None, **overrides)`` (``preset="paper"``)
    or ``"...-Small-v0"`` (``preset="small"``); ``overrides`` are :class:`~ceas_gym.envs.ceas_config.CEASEnvConfig`
    fields, e.g. ``protocol="random-selection"``, ``learning={"training": {"local_steps": 2}}``,
    ``protocol_config={"ceas": {"bft": {"checkpoint_every": 2}}}``. Render modes: ``"ansi"``, ``"rgb_array"``.

    ## info

    ``accuracy``, ``loss``, ``utilisation`` (pairs consumed / generated, episode so far), ``isolation_rate``
    (Byzantine nodes quarantined / Byzantine nodes), ``false_quarantine_rate`` (honest nodes quarantined / honest
    nodes), ``active_nodes``, ``exchanges_granted_fraction`` (this round), ``requests_missed`` (exchanges skipped
    for lack of pairs), ``pairs_expired``, ``wasted`` (expired + overflow), ``attempts``, ``generated``,
    ``consumed``, ``mean_delivered_fidelity``, ``checkpoint``, ``committed``.

    ## Version History

    * v0: initial version.
    """

    presets = CEAS_PRESETS

    def __init__(
        self,
        preset: str = "paper",
        render_mode: str | None = None,
        config: CEASEnvConfig | None = None,
        **overrides: Any,
    ) -> None:
        self._configure(preset, render_mode, config, overrides)
        self.config: CEASEnvConfig
        config = self.config
        roles = config.roles
        generator = InstanceGenerator(
            config.topology,
            config.links,
            byzantine_fraction=roles.byzantine_fraction,
            role_hardware=(roles.honest_hardware, roles.byzantine_hardware),
        )
        self.instance: SchedulingInstance = generator(np.random.default_rng(config.instance_seed))
        self.num_links = self.instance.num_links
        self.num_nodes = self.instance.num_nodes
        self.layer = LinkLayer(self.instance, queue_capacity=1, fidelity_floor=config.links.fidelity_floor)
        protocol_class = CONSENSUS_PROTOCOLS.get(config.protocol)
        settings = dict(config.protocol_config.get(config.protocol, {}))
        self.protocol = protocol_class(self.num_nodes, self.instance.edges, settings)
        if hasattr(self.protocol, "set_byzantine"):  # protocols with roles (committees) need to know who cheats
            self.protocol.set_byzantine(self.instance.byzantine)
        bft = getattr(getattr(self.protocol, "config", None), "bft", None)
        if bft is not None and bft.min_active > self.num_nodes:
            raise ConfigError(
                f"protocol_config.{config.protocol}.bft.min_active = {bft.min_active} exceeds the network's "
                f"{self.num_nodes} nodes (topology.num_nodes); allowed: 1 to {self.num_nodes}"
            )
        self.training = DistributedTraining(config.learning, self.instance.node_hardware, self.instance.byzantine)
        self.lifetime_bins = int(config.links.cutoff_max)
        self._set_spaces(self._build_observation_space())
        self.round_index = 0
        self._reset_trackers()

    def _reset_trackers(self) -> None:
        self._accuracy = 0.5
        self._loss = float(np.log(2.0))
        self._stamps = np.ones(self.num_nodes)
        self._granted_fraction = np.ones(self.num_links)
        self._generated_total = 0
        self._consumed_total = 0

    # -------------------------------------------------------------------------------------------- spaces
    def _build_observation_space(self) -> spaces.Dict:
        links, nodes = self.num_links, self.num_nodes
        if hasattr(self.protocol, "max_demand"):  # protocols whose demand moves between rounds declare a bound
            demand_max = float(self.protocol.max_demand())
        else:
            demand_max = float(self.protocol.expected_demand(self.instance.edges, 0)[0].max())
        return spaces.Dict(
            {
                **link_state_spaces(self.instance, self.lifetime_bins),
                "demand_pairs": box(0.0, max(demand_max, 1.0), (links,)),
                "demand_deadline": box(0.0, 2.0, (links,)),
                "granted_fraction": box(0.0, 1.0, (links,)),
                "trust": box(0.0, 1.0, (nodes,)),
                "stamp": box(0.0, 1.0, (nodes,)),
                "quarantined": box(0.0, 1.0, (nodes,)),
                "round": box(0.0, 1.0, (1,)),
                "checkpoint_next": box(0.0, 1.0, (1,)),
                "accuracy": box(0.0, 1.0, (1,)),
                "loss": box(0.0, 10.0, (1,)),
            }
        )

    def _observation(self) -> Any:
        demand, deadline = self.protocol.expected_demand(self.instance.edges, self.round_index)
        observation = {
            **link_state(self.instance, self.layer.inventory, self.lifetime_bins),
            "demand_pairs": np.asarray(demand, dtype=np.float32),
            "demand_deadline": np.where(demand > 0, deadline, 2).astype(np.float32),
            "granted_fraction": self._granted_fraction.astype(np.float32),
            "trust": np.asarray(self.protocol.trust, dtype=np.float32),
            "stamp": self._stamps.astype(np.float32),
            "quarantined": (~self.protocol.active).astype(np.float32),
            "round": np.array([self.round_index / self.config.max_rounds], dtype=np.float32),
            "checkpoint_next": np.array([self._checkpoint_next()], dtype=np.float32),
            "accuracy": np.array([self._accuracy], dtype=np.float32),
            "loss": np.array([min(self._loss, 10.0)], dtype=np.float32),
        }
        return self._emit(observation)

    def _checkpoint_next(self) -> float:
        """1.0 when the coming round ends with a checkpoint (protocols without ``checkpoint_due`` have none)."""
        due = getattr(self.protocol, "checkpoint_due", None)
        return float(due(self.round_index)) if due is not None else 0.0

    # ---------------------------------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Fresh data and parameters, empty memories, all nodes active."""
        super().reset(seed=seed)
        self.layer.reset()
        self.protocol.reset()
        self.training.reset(self.np_random)
        self.round_index = 0
        self._reset_trackers()
        self._accuracy, self._loss = self.training.evaluate(self.training.params[0])
        self._start_episode()
        return self._observation(), info_row(self._infos(RoundStats.empty(1)))

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        """Run one round: generate, train, attack, stamp, consensus over the pairs, evaluate, age."""
        self._check_can_step()
        attempts, freshest = self.decode_action(action)
        generated, overflow = self.layer.generate(attempts, self.np_random)
        training = self.training
        submitted = training.local_round(self.round_index)
        stamps = training.stamps(submitted, self.round_index)
        provider = InventoryPairs(self.layer.inventory, freshest)
        requested, _ = self.protocol.expected_demand(self.instance.edges, self.round_index)
        result = self.protocol.run_round(
            submitted,
            stamps,
            training.predict,
            provider,
            self.round_index,
            self.np_random,
            perturb=training.perturb,
        )
        training.finish_round(result.params, result.received_fidelity)
        expired = self.layer.age()
        previous_accuracy = self._accuracy
        self._accuracy, self._loss = training.evaluate(result.consensus_params)
        self._stamps = stamps.detach().cpu().numpy()
        self._granted_fraction = np.where(
            requested > 0, np.clip(result.pairs_per_edge / np.maximum(requested, 1e-12), 0.0, 1.0), 1.0
        )
        self._generated_total += int(generated.sum())
        self._consumed_total += int(result.pairs_consumed)
        self.round_index += 1
        stats = RoundStats(
            attempts=np.array([attempts.sum()], dtype=np.int64),
            generated=np.array([generated.sum()], dtype=np.int64),
            expired=np.array([expired.sum()], dtype=np.int64),
            overflow=np.array([overflow.sum()], dtype=np.int64),
            attempted=np.array([result.exchanges_attempted], dtype=np.int64),
            granted=np.array([result.exchanges_granted], dtype=np.int64),
            consumed=np.array([result.pairs_consumed], dtype=np.int64),
            mean_delivered_fidelity=np.array([result.mean_delivered_fidelity], dtype=np.float64),
            checkpoint=np.array([result.checkpoint], dtype=bool),
            committed=np.array([result.committed], dtype=bool),
        )
        infos = self._infos(stats)
        reward = round_reward(
            self.config.reward, infos["accuracy"], np.array([previous_accuracy]), infos, self.config.budget
        )
        info = info_row(infos)
        truncated = self.round_index >= self.config.max_rounds
        self._end_episode_if(truncated)
        return self._observation(), float(reward[0]), False, truncated, info

    def _infos(self, stats: RoundStats) -> dict[str, np.ndarray]:
        """This environment's info as a batch of one (:func:`~ceas_gym.envs.ceas_outputs.round_infos`)."""
        return round_infos(
            stats,
            round_index=np.array([self.round_index]),
            accuracy=np.array([self._accuracy]),
            loss=np.array([self._loss]),
            generated_total=np.array([self._generated_total]),
            consumed_total=np.array([self._consumed_total]),
            active=np.asarray(self.protocol.active, dtype=bool)[None, :],
            byzantine=self.instance.byzantine,
        )

    def _render_header(self) -> str:
        quarantined = np.flatnonzero(~self.protocol.active).tolist()
        return (
            f"accuracy {self._accuracy:.3f}  loss {self._loss:.3f}  active {int(self.protocol.active.sum())}/"
            f"{self.num_nodes}  quarantined {quarantined}\n"
        )

    def _render_round(self) -> int:
        return self.round_index
