"""``ceas_gym/EntanglementScheduling-v0`` and ``-Small-v0``: scheduling Bell pairs for a learning quantum network."""

from __future__ import annotations

from typing import Any

import numpy as np

from ceas_gym.envs.base import SchedulingEnv
from ceas_gym.envs.ceas_config import CEAS_PRESETS, CEASEnvConfig
from ceas_gym.envs.ceas_outputs import INFO_METRICS, info_row
from ceas_gym.envs.ceas_round import CEASRound

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
    ``random-selection`` is the paper's entanglement-oblivious baseline. Every node keeps its own model: a message
    reaches a node only over pairs that were consumed, so with no pairs each node learns from its own data alone.
    The data is non-IID by default (class balance ``Beta(0.05, 0.05)`` per node: most nodes hold nearly one
    class), so a node alone stays near chance and the outcome needs the network. The agent is the entanglement
    scheduler: before the consensus of each round it splits the network's budget of generation attempts over the
    links and may choose, per link, whether exchanges use the oldest or the freshest stored pairs. A round runs:
    generate pairs, local training and attacks, stamps, consensus (consuming pairs), evaluation, pairs age and
    expire. This environment is a batch of one of :class:`~ceas_gym.envs.ceas_round.CEASRound`, the round the vector
    environment runs for E copies.

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
    |                       |              | this round (0 while the link is down, with ``outages``)         |
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
    | accuracy              | (1,)         | mean test accuracy of the models the honest nodes hold          |
    | loss                  | (1,)         | their mean test loss (nats), clipped to [0, 10]                 |

    ## Rewards

    Per round, with ``CEASRewardConfig`` weights: ``w_accuracy * accuracy + w_gain * (accuracy - previous accuracy)
    + w_exchanges * granted / requested - w_wasted * (expired + overflow pairs) - w_attempt * attempts / B``, where
    ``accuracy`` is the honest nodes' mean. By default the reward is learning only (``w_accuracy = w_gain = 1``,
    the rest 0): the return is the area under the honest nodes' accuracy curve plus its final gain, so it ranks
    schedulers as their accuracy does; the other terms are optional shaping.

    ## Starting State

    Fresh data and identical initial parameters on every node (drawn from ``np_random``), empty memories, all
    nodes active with trust 1, every link up.

    ## Episode End

    No termination; truncation after ``max_rounds`` (registered ``max_episode_steps``).

    ## Arguments

    ``gymnasium.make("ceas_gym/EntanglementScheduling-v0", render_mode=None, **overrides)`` (``preset="paper"``)
    or ``"...-Small-v0"`` (``preset="small"``); ``overrides`` are :class:`~ceas_gym.envs.ceas_config.CEASEnvConfig`
    fields, e.g. ``protocol="random-selection"``, ``learning={"training": {"local_steps": 2}}``,
    ``protocol_config={"ceas": {"bft": {"checkpoint_every": 2}}}``, ``communication="perfect"`` (every exchange
    granted at fidelity 1: the top of the bracket), ``roles={"byzantine_link_eta": 1.0}`` (cheap attacker links).
    Render modes: ``"ansi"``, ``"rgb_array"``.

    ## info

    ``accuracy`` / ``loss`` (mean over the models every honest node holds, quarantined or not, on a fixed test
    subset of ``learning.node_test_samples``), ``accuracy_worst`` (the worst honest node), ``consensus_distance``
    (mean L2 distance of the honest models to their phi-weighted mean), ``accuracy_ideal_aggregate`` (the
    protocol's exact aggregate on the whole test set: a diagnostic no node holds), ``utilisation`` (pairs consumed
    / generated, episode so far), ``isolation_rate``
    (Byzantine nodes quarantined / Byzantine nodes), ``false_quarantine_rate`` (honest nodes quarantined / honest
    nodes), ``active_nodes``, ``exchanges_granted_fraction`` (this round), ``requests_missed`` (exchanges skipped
    for lack of pairs), ``pairs_expired``, ``wasted`` (expired + overflow), ``attempts``, ``generated``,
    ``consumed``, ``mean_delivered_fidelity``, ``checkpoint``, ``committed``.

    ## Version History

    * v0: initial version. The outcome became the honest nodes' own models (the central aggregate is the
      diagnostic ``accuracy_ideal_aggregate``), the data non-IID and the reward learning-led (CHANGELOG).
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
        self.round = CEASRound(self.config, copies=1)
        self.instance = self.round.instance
        self.num_links = self.instance.num_links
        self.num_nodes = self.instance.num_nodes
        self.layer = self.round.layer
        self.protocol = self.round.protocol
        """Copy 0's protocol object: the one the round runs for protocols that run per copy (``qba``, plug-ins),
        the configuration of the batched phase for ``ceas`` and ``random-selection`` (whose per-round state is in
        :attr:`active` and :attr:`trust`)."""
        self.lifetime_bins = self.round.lifetime_bins
        self._set_spaces(self.round.observation_space)

    @property
    def round_index(self) -> int:
        """Rounds played this episode."""
        return int(self.round.round_index[0])

    @property
    def active(self) -> np.ndarray:
        """Active (not quarantined) nodes. ``(N,)`` bool."""
        return self.round.active[0]

    @property
    def trust(self) -> np.ndarray:
        """Trust score of every node. ``(N,)`` float."""
        return self.round.trust[0]

    # ---------------------------------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Fresh data and parameters, empty memories, all nodes active."""
        super().reset(seed=seed)
        self.layer.queue.reset()
        self.round.reset(np.zeros(1, dtype=np.intp), [self.np_random])
        self._start_episode()
        return self._observation(), info_row(self.round.infos())

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        """Run one round: generate, train, attack, stamp, consensus over the pairs, evaluate, age."""
        self._check_can_step()
        attempts, freshest = self.decode_action(action)
        rewards, infos = self.round.step(attempts[None], freshest[None])
        truncated = self.round_index >= self.config.max_rounds
        self._end_episode_if(truncated)
        return self._observation(), float(rewards[0]), False, truncated, info_row(infos)

    def _observation(self) -> Any:
        return self._emit({key: value[0] for key, value in self.round.observation().items()})

    def _render_header(self) -> str:
        active = self.active
        quarantined = np.flatnonzero(~active).tolist()
        return (
            f"accuracy {self.round.accuracy[0]:.3f}  loss {self.round.loss[0]:.3f}  active {int(active.sum())}/"
            f"{self.num_nodes}  quarantined {quarantined}\n"
        )

    def _render_round(self) -> int:
        return self.round_index
