"""``ceas_gym/EntanglementScheduling-Lite-v0``: learning-free entanglement scheduling on a quantum network."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from ceas_gym.envs.base import SchedulingEnv
from ceas_gym.envs.generator import InstanceGenerator
from ceas_gym.envs.instance import SchedulingInstance
from ceas_gym.envs.link_layer import LinkLayer, RoundStats
from ceas_gym.envs.lite_config import LITE_PRESETS, LiteConfig
from ceas_gym.envs.observation import box, link_state, link_state_spaces
from ceas_gym.network.demand import StochasticDemand


class EntanglementSchedulingLiteEnv(SchedulingEnv):
    """Schedule Bell-pair generation over a quantum network so stochastic consensus requests are served in time.

    ## Description

    N quantum processors are joined by fibre links (a graph drawn once per environment by the instance generator).
    Each round, consensus messages ask for Bell pairs on links ("requests": a payload in pairs and a deadline in
    rounds). Stored pairs decay as Werner states, ``F(age) = 1/4 + (F0 - 1/4) exp(-age / T)``, and expire after the
    link's coherence budget tau_c (or below a fidelity floor). The agent is the entanglement scheduler: every round
    it splits a network-wide budget of generation attempts over the links and, optionally, picks per link whether
    requests take the oldest or the freshest stored pairs. A round runs: generate, serve (earliest deadline first),
    age and expire, new requests arrive (see :mod:`ceas_gym.envs.link_layer`).

    ## Action Space

    ``Box(0, 1, (E + 1,))`` or, with ``serving_order="agent"``, ``Box(0, 1, (2E + 1,))``, float32:

    | index          | meaning                                                                  |
    |----------------|--------------------------------------------------------------------------|
    | ``0 .. E-1``   | weight of link l in this round's split of the attempt budget             |
    | ``E``          | weight of "leave unspent"                                                |
    | ``E+1 .. 2E``  | serving order of link l: > 0.5 freshest-first, otherwise oldest-first     |

    The budget B is split in proportion to the weights by largest remainder (all-zero weights spend nothing).
    Invalid actions: entries outside [0, 1] are clipped (``invalid_action="clip"``, default) or raise
    (``"raise"``); NaN or infinite entries always raise ``ValueError``.

    ## Observation Space

    A flat ``Dict`` of fixed-shape float32 ``Box`` arrays (or one flat ``Box`` with ``flatten_observation=True``):

    | key                   | shape          | meaning                                                       |
    |-----------------------|----------------|---------------------------------------------------------------|
    | inventory             | (E, tau_max)   | stored pairs per link by remaining lifetime 1..tau_max rounds |
    | mean_fidelity         | (E,)           | mean Werner fidelity of stored pairs (0 if none)              |
    | decay_rate            | (E,)           | 1/T, per round                                                |
    | success_probability   | (E,)           | per-attempt generation success p                              |
    | cutoff                | (E,)           | coherence budget tau_c, rounds                                |
    | demand_pairs          | (E,)           | pairs requested by pending requests                           |
    | demand_due            | (E,)           | pairs requested by requests due this round (deadline 1)       |
    | demand_deadline       | (E,)           | earliest pending deadline, rounds (deadline_max + 1 if none)  |
    | round                 | (1,)           | round index / max_rounds                                      |

    ## Rewards

    Per round, with weights from ``RewardConfig``:
    ``r = w_served * served + w_fidelity * sum_served F_mean - w_missed * (missed + rejected)
    - w_wasted * (expired + overflow) - w_attempt * attempts / B``,
    where ``F_mean`` is the mean fidelity of the pairs a served request consumed.

    ## Starting State

    Empty memories; the first round's requests already queued (drawn from ``np_random``).

    ## Episode End

    No termination; truncation after ``max_rounds`` rounds (also the registered ``max_episode_steps``).

    ## Arguments

    ``gymnasium.make("ceas_gym/EntanglementScheduling-Lite-v0", preset="small", render_mode=None, **overrides)``:
    ``preset`` is ``"tiny"`` (3 nodes), ``"small"`` (8 nodes) or ``"paper"`` (50 nodes, B = 250, tau_c in [3, 6]);
    ``overrides`` are :class:`~ceas_gym.envs.lite_config.LiteConfig` fields (nested sections as mappings), checked
    strictly. ``render_mode`` is ``"ansi"`` (a table of links) or ``"rgb_array"`` (the network drawn with links
    coloured by stored fidelity and sized by inventory; needs matplotlib).

    ## info

    Per round: ``attempts``, ``generated``, ``consumed``, ``expired``, ``overflow``, ``wasted``, ``served``,
    ``missed`` (incl. rejected), ``mean_delivered_fidelity``; cumulative over the episode: ``utilisation``
    (pairs consumed / pairs generated), ``served_on_time`` (served / (served + missed)), ``pairs_expired_total``,
    ``requests_missed_total``, ``requests_served_total``.

    ## Version History

    * v0: initial version.
    """

    presets = LITE_PRESETS

    def __init__(
        self,
        preset: str = "small",
        render_mode: str | None = None,
        config: LiteConfig | None = None,
        **overrides: Any,
    ) -> None:
        self._configure(preset, render_mode, config, overrides)
        self.config: LiteConfig
        generator = InstanceGenerator(self.config.topology, self.config.links)
        self.instance: SchedulingInstance = generator(np.random.default_rng(self.config.instance_seed))
        self.layer = LinkLayer(self.instance, self.config.queue_capacity, self.config.links.fidelity_floor)
        self.demand = StochasticDemand(self.config.demand)
        self.num_links = self.instance.num_links
        self.lifetime_bins = int(self.config.links.cutoff_max)
        self._set_spaces(self._build_observation_space())
        self.round_index = 0
        self._totals = self._zero_totals()
        self._last_stats: RoundStats | None = None

    # -------------------------------------------------------------------------------------------- spaces
    def _build_observation_space(self) -> spaces.Dict:
        links = self.num_links
        demand_max = float(self.config.queue_capacity * self.config.demand.pairs_max)
        deadline_none = float(self.config.demand.deadline_max + 1)
        return spaces.Dict(
            {
                **link_state_spaces(self.instance, self.lifetime_bins),
                "demand_pairs": box(0.0, demand_max, (links,)),
                "demand_due": box(0.0, demand_max, (links,)),
                "demand_deadline": box(0.0, deadline_none, (links,)),
                "round": box(0.0, 1.0, (1,)),
            }
        )

    def _observation(self) -> Any:
        queue = self.layer.queue
        observation = {
            **link_state(self.instance, self.layer.inventory, self.lifetime_bins),
            "demand_pairs": queue.pending_pairs().astype(np.float32),
            "demand_due": queue.pairs_due_within(1).astype(np.float32),
            "demand_deadline": queue.earliest_deadline(self.config.demand.deadline_max + 1).astype(np.float32),
            "round": np.array([self.round_index / self.config.max_rounds], dtype=np.float32),
        }
        return self._emit(observation)

    # ---------------------------------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Empty the network and queue the first round's requests."""
        super().reset(seed=seed)
        self.layer.reset()
        self.demand.reset(self.num_links, self.np_random)
        self.round_index = 0
        self._totals = self._zero_totals()
        self._last_stats = None
        self.layer.arrive(self.demand.sample(0, self.np_random))
        self._start_episode()
        return self._observation(), self._info(None)

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        """Run one round: generate, serve, age, new requests arrive."""
        self._check_can_step()
        attempts, freshest = self.decode_action(action)
        generated, overflow = self.layer.generate(attempts, self.np_random)
        served = self.layer.serve(freshest)
        expired = self.layer.age()
        self.round_index += 1
        rejected = self.layer.arrive(self.demand.sample(self.round_index, self.np_random))
        stats = RoundStats(
            attempts=attempts,
            generated=generated,
            overflow=overflow,
            consumed=served.pairs_consumed,
            expired=expired,
            served=served.served,
            missed=served.missed,
            rejected=rejected,
            fidelity_served=served.fidelity_served,
        )
        self._last_stats = stats
        round_totals = stats.totals()
        for key, value in round_totals.items():
            self._totals[key] += value
        reward = self._reward(round_totals)
        truncated = self.round_index >= self.config.max_rounds
        self._end_episode_if(truncated)
        return self._observation(), reward, False, truncated, self._info(round_totals)

    def _reward(self, totals: dict[str, float]) -> float:
        weights = self.config.reward
        budget = max(self.config.budget, 1)
        return float(
            weights.served * totals["served"]
            + weights.fidelity * totals["fidelity_served"]
            - weights.missed * (totals["missed"] + totals["rejected"])
            - weights.wasted * (totals["expired"] + totals["overflow"])
            - weights.attempt * totals["attempts"] / budget
        )

    @staticmethod
    def _zero_totals() -> dict[str, float]:
        return {name: 0.0 for name in RoundStats.__dataclass_fields__}

    def _info(self, round_totals: dict[str, float] | None) -> dict[str, Any]:
        totals = self._totals
        this = round_totals or self._zero_totals()
        missed_total = totals["missed"] + totals["rejected"]
        decided = totals["served"] + missed_total
        return {
            "round": self.round_index,
            "attempts": this["attempts"],
            "generated": this["generated"],
            "consumed": this["consumed"],
            "expired": this["expired"],
            "overflow": this["overflow"],
            "wasted": this["expired"] + this["overflow"],
            "served": this["served"],
            "missed": this["missed"] + this["rejected"],
            "mean_delivered_fidelity": this["fidelity_served"] / this["served"] if this["served"] else 0.0,
            "utilisation": totals["consumed"] / totals["generated"] if totals["generated"] else 0.0,
            "served_on_time": totals["served"] / decided if decided else 0.0,
            "pairs_expired_total": totals["expired"],
            "pairs_wasted_total": totals["expired"] + totals["overflow"],
            "requests_served_total": totals["served"],
            "requests_missed_total": missed_total,
        }

    def _render_round(self) -> int:
        return self.round_index
