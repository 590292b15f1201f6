"""Exact finite-horizon optimal scheduling for small ``EntanglementScheduling-Lite`` instances (the ``tiny`` preset).

**Model.** :class:`LiteTinyModel` is the MDP of :class:`~ceas_gym.envs.lite.EntanglementSchedulingLiteEnv`, written
independently of the env's vectorised code (plain loops over one link's pairs and requests, meant as a reference).
It is built from the env's configuration and instance arrays (success probability ``p``, cutoff tau_c in rounds,
coherence time T in rounds, fresh fidelity F0, memory capacity in pairs, demand rates and ranges, reward weights).

* A *link state* is ``(ages, queue)``: the ages (rounds) of the stored pairs, sorted ascending, and the pending
  requests as ``(deadline in rounds, pairs)`` in arrival order. A *state* is the tuple of link states, as seen by
  the agent after a round's arrivals (the observation instant). The round index is not part of the state: the
  finite horizon is handled by backward induction over rounds on the stationary tables (see below).
* An *action* is an integer split of the budget B: attempts per link, summing to at most B (the rest unspent);
  every distinct split is allowed. It is encoded as an env action by
  :meth:`agents.scheduling.SchedulingInterface.action`, whose weights the env's largest-remainder split maps back
  exactly. The serving order must be fixed by the config (``"oldest-first"`` or ``"freshest-first"``).
* One transition is one env round, in the env's order: generate (``Binomial(attempts, p)`` successes; those not
  fitting in free memory overflow), serve (earliest deadline first, ties by arrival, all-or-nothing, no
  overtaking; pairs taken oldest- or freshest-first; then deadlines drop by one and requests reaching 0 are
  missed), age (every pair ages one round and expires when ``age >= tau_c`` or ``F(age) < fidelity_floor``, with
  ``F(a) = 1/4 + (F0 - 1/4) exp(-a / T)``), arrive (Bernoulli(rate) per link, payload and deadline uniform on their
  ranges; a request finding the queue full is rejected).
* Reward (the env's formula): ``w_served * served + w_fidelity * sum_served F_mean - w_missed * (missed + rejected)
  - w_wasted * (expired + overflow) - w_attempt * attempts / B``, with ``F_mean`` the mean fidelity of the pairs a
  served request consumed, at their ages when served. Links are independent given the split, so a joint outcome
  is a product of per-link outcomes; outcomes leading to the same next state are merged, with their probability
  summed and their reward replaced by its conditional expectation (only expected rewards enter the solution).
* Start distribution: empty memories and queues, then the round-0 arrivals (as in ``reset``).

**Finite horizon.** The env's return is the undiscounted sum of ``max_rounds`` rewards (truncation), so the
faithful objective is finite-horizon: :func:`backward_induction` computes ``V_H = 0`` and
``V_t(s) = max_a [r(s, a) + sum_s' P(s' | s, a) V_{t+1}(s')]`` for ``t = H-1 .. 0`` on the tables of
:func:`agents.exact.enumerate_mdp`; the optimal policy depends on the round ``t``. :func:`evaluate_finite_horizon`
gives the exact expected return of any fixed (possibly randomised) stationary policy the same way.

**Policy.** :class:`ExactLitePolicy` reads the round from the observation's ``round`` entry (``t / max_rounds``).
The observation identifies the stored ages exactly (remaining-lifetime histogram with ``cutoff_max`` bins and the
per-link cutoff); it identifies the queue only with ``queue_capacity = 1`` (then ``demand_pairs > 0`` means one
request with deadline ``demand_deadline``). With a longer queue the policy reads the queue from the env's internal
state through ``env.unwrapped`` instead.

Run ``python -m agents.exact_lite`` for a table of exact expected returns of the optimum and the baselines on the
``tiny`` preset (add ``--episodes N`` for Monte-Carlo checks).
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from agents.mdp import (
    EnumeratedMDP,
    FiniteHorizonSolution,
    Transition,
    backward_induction,
    deterministic_row_weights,
    enumerate_mdp,
    evaluate_finite_horizon,
    uniform_row_weights,
)
from agents.scheduling import SchedulingInterface
from ceas_gym.envs.lite_config import LiteConfig
from ceas_gym.help_text import plain_text

__all__ = [
    "ExactLitePolicy",
    "FiniteHorizonSolution",
    "LiteTinyModel",
    "backward_induction",
    "budget_splits",
    "deterministic_row_weights",
    "evaluate_finite_horizon",
    "policy_action_indices",
    "solve_lite",
    "uniform_row_weights",
]

#: Stored pair ages (rounds, ascending) and pending requests ``(deadline rounds, pairs)`` in arrival order.
LinkState = tuple[tuple[int, ...], tuple[tuple[int, int], ...]]
#: One link state per link.
LiteState = tuple[LinkState, ...]
#: Attempts per link.
Split = tuple[int, ...]


def budget_splits(num_links: int, budget: int) -> list[Split]:
    """Every split of at most ``budget`` attempts over ``num_links`` links (the rest unspent), in lexicographic order.

    Args:
        num_links: Number of links E (>= 1).
        budget: Attempts per round B (>= 0).

    Returns:
        ``C(B + E, E)`` tuples of non-negative attempts per link with sum at most ``budget``.
    """
    return [split for split in itertools.product(range(budget + 1), repeat=num_links) if sum(split) <= budget]


@dataclass(frozen=True)
class _LinkPhysics:
    """Scalar parameters of one link (see the module docstring)."""

    success_probability: float
    cutoff: int
    coherence_rounds: float
    fidelity0: float
    capacity: int

    def fidelity(self, age: int) -> float:
        """Werner fidelity of a pair of ``age`` rounds."""
        return 0.25 + (self.fidelity0 - 0.25) * math.exp(-age / self.coherence_rounds)


class LiteTinyModel:
    """The Lite scheduling env as a finite MDP (see the module docstring for states, actions and transitions).

    Args:
        config: The env's configuration (``env.unwrapped.config``); its serving order must be fixed.
        success_probability: Per-attempt success per link. ``(E,)``.
        cutoff: Coherence budget tau_c per link, rounds. ``(E,)`` int.
        coherence_rounds: Memory coherence time T per link, rounds. ``(E,)``.
        fidelity0: Fresh-pair Werner fidelity per link. ``(E,)``.
        capacity: Memory slots per link, pairs. ``(E,)`` int.

    Raises:
        ValueError: If the config lets the agent pick the serving order.
    """

    def __init__(
        self,
        config: LiteConfig,
        success_probability: np.ndarray,
        cutoff: np.ndarray,
        coherence_rounds: np.ndarray,
        fidelity0: np.ndarray,
        capacity: np.ndarray,
    ) -> None:
        if config.serving_order == "agent":
            raise ValueError(
                "LiteConfig.serving_order = 'agent' is not supported by the exact model; "
                "allowed: 'oldest-first', 'freshest-first'"
            )
        self.config = config
        self.links = [
            _LinkPhysics(float(p), int(c), float(t), float(f), int(k))
            for p, c, t, f, k in zip(success_probability, cutoff, coherence_rounds, fidelity0, capacity, strict=True)
        ]
        self.num_links = len(self.links)
        self.oldest_first = config.serving_order == "oldest-first"
        self.splits = budget_splits(self.num_links, config.budget)
        self._link_cache: dict[tuple[int, LinkState, int], list[tuple[float, LinkState, float]]] = {}
        self._arrival_cache: list[tuple[float, tuple[int, int] | None]] | None = None

    @classmethod
    def from_env(cls, env: gym.Env) -> LiteTinyModel:
        """Build the model of a (wrapped) ``EntanglementSchedulingLiteEnv``."""
        base = env.unwrapped
        instance = base.instance
        return cls(
            base.config,
            instance.success_probability,
            instance.cutoff,
            instance.coherence_rounds,
            instance.fidelity0,
            instance.capacity,
        )

    # ------------------------------------------------------------------------------------ FiniteMDP API
    def initial_distribution(self) -> list[tuple[float, LiteState]]:
        """Empty memories and queues, then round 0's arrivals, independently per link."""
        per_link = [self._arrive_outcomes(((), ()))] * self.num_links
        result: dict[LiteState, float] = {}
        for combo in itertools.product(*per_link):
            probability = math.prod(prob for prob, _, _ in combo)
            state = tuple(link_state for _, link_state, _ in combo)
            result[state] = result.get(state, 0.0) + probability
        return [(prob, state) for state, prob in result.items()]

    def actions(self, state: LiteState) -> list[Split]:
        """Every integer budget split (the same in every state)."""
        return self.splits

    def transitions(self, state: LiteState, action: Split) -> list[Transition]:
        """Outcomes of one round, as the product of per-link outcomes; never ``done`` (the horizon ends it)."""
        per_link = [self.link_outcomes(link, state[link], action[link]) for link in range(self.num_links)]
        merged: dict[LiteState, list[float]] = {}
        for combo in itertools.product(*per_link):
            probability = math.prod(prob for prob, _, _ in combo)
            next_state = tuple(link_state for _, link_state, _ in combo)
            reward = sum(link_reward for _, _, link_reward in combo)
            entry = merged.setdefault(next_state, [0.0, 0.0])
            entry[0] += probability
            entry[1] += probability * reward
        return [Transition(prob, nxt, weighted / prob, False) for nxt, (prob, weighted) in merged.items() if prob > 0]

    # ------------------------------------------------------------------------------------ one link
    def link_outcomes(self, link: int, link_state: LinkState, attempts: int) -> list[tuple[float, LinkState, float]]:
        """Outcomes ``(probability, next link state, expected reward)`` of one round on one link.

        Args:
            link: Link index.
            link_state: The link's stored ages and queue.
            attempts: Generation attempts spent on it this round.

        Returns:
            Outcomes with distinct next link states; probabilities sum to 1.
        """
        key = (link, link_state, attempts)
        if key not in self._link_cache:
            self._link_cache[key] = self._compute_link_outcomes(link, link_state, attempts)
        return self._link_cache[key]

    def _compute_link_outcomes(
        self, link: int, link_state: LinkState, attempts: int
    ) -> list[tuple[float, LinkState, float]]:
        physics = self.links[link]
        weights = self.config.reward
        ages, queue = link_state
        p = physics.success_probability
        attempt_cost = weights.attempt * attempts / max(self.config.budget, 1)
        merged: dict[LinkState, list[float]] = {}
        for successes in range(attempts + 1):
            gen_prob = math.comb(attempts, successes) * p**successes * (1.0 - p) ** (attempts - successes)
            if gen_prob <= 0.0:
                continue
            stored = min(successes, physics.capacity - len(ages))
            overflow = successes - stored
            held_ages = ages + (0,) * stored
            remaining_ages, remaining_queue, served, fidelity_sum, missed = self._serve(physics, held_ages, queue)
            aged = [age + 1 for age in remaining_ages]
            alive = tuple(
                sorted(
                    a for a in aged if a < physics.cutoff and physics.fidelity(a) >= self.config.links.fidelity_floor
                )
            )
            expired = len(aged) - len(alive)
            round_reward = (
                weights.served * served
                + weights.fidelity * fidelity_sum
                - weights.missed * missed
                - weights.wasted * (expired + overflow)
                - attempt_cost
            )
            for arrival_prob, next_state, arrival_reward in self._arrive_outcomes((alive, remaining_queue)):
                probability = gen_prob * arrival_prob
                entry = merged.setdefault(next_state, [0.0, 0.0])
                entry[0] += probability
                entry[1] += probability * (round_reward + arrival_reward)
        return [(prob, state, weighted / prob) for state, (prob, weighted) in merged.items()]

    def _serve(
        self, physics: _LinkPhysics, ages: tuple[int, ...], queue: tuple[tuple[int, int], ...]
    ) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...], int, float, int]:
        """Serve one link: returns (ages left, queue left after the countdown, served, fidelity sum, missed)."""
        pool = sorted(ages, reverse=self.oldest_first)  # serving order of the pairs
        order = sorted(range(len(queue)), key=lambda index: queue[index][0])  # stable: ties by arrival
        used, served, fidelity_sum = 0, 0, 0.0
        served_index: set[int] = set()
        for index in order:
            pairs = queue[index][1]
            if used + pairs > len(pool):
                break  # all-or-nothing, no overtaking
            taken = pool[used : used + pairs]
            fidelity_sum += sum(physics.fidelity(age) for age in taken) / pairs
            used += pairs
            served += 1
            served_index.add(index)
        waiting = [(deadline - 1, pairs) for i, (deadline, pairs) in enumerate(queue) if i not in served_index]
        missed = sum(1 for deadline, _ in waiting if deadline <= 0)
        kept = tuple((deadline, pairs) for deadline, pairs in waiting if deadline > 0)
        return tuple(sorted(pool[used:])), kept, served, fidelity_sum, missed

    def _arrive_outcomes(self, link_state: LinkState) -> list[tuple[float, LinkState, float]]:
        """Arrival outcomes on one link: ``(probability, next link state, reward of a rejection)``."""
        ages, queue = link_state
        results = []
        for probability, request in self._arrivals():
            if request is None:
                results.append((probability, link_state, 0.0))
            elif len(queue) < self.config.queue_capacity:
                results.append((probability, (ages, (*queue, request)), 0.0))
            else:
                results.append((probability, link_state, -self.config.reward.missed))
        return results

    def _arrivals(self) -> list[tuple[float, tuple[int, int] | None]]:
        """One link's arrivals: none, or ``(deadline, pairs)`` uniform on the demand ranges."""
        if self._arrival_cache is None:
            demand = self.config.demand
            payloads = range(demand.pairs_min, demand.pairs_max + 1)
            deadlines = range(demand.deadline_min, demand.deadline_max + 1)
            each = demand.rate / (len(payloads) * len(deadlines))
            self._arrival_cache = [(1.0 - demand.rate, None)] + [
                (each, (deadline, pairs)) for deadline in deadlines for pairs in payloads
            ]
        return self._arrival_cache

    # ------------------------------------------------------------------------------------ env state
    def state_from_env(self, env: gym.Env) -> LiteState:
        """The MDP state of a (wrapped) env, read from its internal inventory and queue."""
        layer = env.unwrapped.layer
        age = layer.inventory.age
        queue = layer.queue
        state = []
        for link in range(self.num_links):
            ages = tuple(sorted(int(a) for a in age[link] if a >= 0))
            slots = [slot for slot in range(queue.queue_capacity) if queue.pairs[link, slot] > 0]
            slots.sort(key=lambda slot: queue.sequence[link, slot])
            requests = tuple((int(queue.deadline[link, s]), int(queue.pairs[link, s])) for s in slots)
            state.append((ages, requests))
        return tuple(state)

    @property
    def observation_identifies_state(self) -> bool:
        """Whether the observation alone gives the state (true with one queue slot per link)."""
        return self.config.queue_capacity == 1

    def state_from_observation(self, view: dict[str, np.ndarray]) -> LiteState:
        """The MDP state from a ``Dict`` observation (requires :attr:`observation_identifies_state`).

        Ages come from the remaining-lifetime histogram: bin ``b`` holds pairs of age ``cutoff - (b + 1)``.
        """
        if not self.observation_identifies_state:
            raise ValueError("the observation does not identify the queue when queue_capacity > 1")
        histogram = np.rint(np.asarray(view["inventory"])).astype(np.int64)
        pending = np.rint(np.asarray(view["demand_pairs"])).astype(np.int64)
        deadline = np.rint(np.asarray(view["demand_deadline"])).astype(np.int64)
        state = []
        for link, physics in enumerate(self.links):
            ages = tuple(
                sorted(physics.cutoff - (b + 1) for b in range(histogram.shape[1]) for _ in range(histogram[link, b]))
            )
            requests = ((int(deadline[link]), int(pending[link])),) if pending[link] > 0 else ()
            state.append((ages, requests))
        return tuple(state)

    def load_into_env(self, env: gym.Env, state: LiteState, round_index: int = 0) -> None:
        """Write ``state`` into a (wrapped, already reset) env's inventory and queue, and set its round index.

        Used to read the observation the env would show in ``state`` and to test transitions from hand-set states.
        """
        base = env.unwrapped
        inventory = base.layer.inventory
        queue = base.layer.queue
        inventory.age.fill(-1)
        queue.reset()
        sequence = 0
        for link, (ages, requests) in enumerate(state):
            inventory.age[link, : len(ages)] = ages
            for slot, (deadline, pairs) in enumerate(requests):
                queue.pairs[link, slot] = pairs
                queue.deadline[link, slot] = deadline
                queue.sequence[link, slot] = sequence
                sequence += 1
        queue._next_sequence = sequence
        base.round_index = round_index


def policy_action_indices(model: LiteTinyModel, mdp: EnumeratedMDP, env: gym.Env, policy: Any) -> np.ndarray:
    """Action index per state of a deterministic, round-independent env policy (e.g. EEF).

    Each state is written into ``env`` (:meth:`LiteTinyModel.load_into_env`), the env's observation is passed to
    ``policy.act`` and the action is decoded by the env's budget split.

    Returns:
        ``(n_states,)`` int index into each state's actions.
    """
    base = env.unwrapped
    split_index = {split: i for i, split in enumerate(model.splits)}
    indices = np.zeros(mdp.n_states, dtype=np.int64)
    for index, state in enumerate(mdp.states):
        model.load_into_env(env, state)
        attempts, _ = base.decode_action(policy.act(base._observation(), {}))
        indices[index] = split_index[tuple(int(a) for a in attempts)]
    return indices


_SOLUTIONS: dict[str, tuple[LiteTinyModel, FiniteHorizonSolution]] = {}


def solve_lite(env: gym.Env) -> tuple[LiteTinyModel, FiniteHorizonSolution]:
    """Build, enumerate and solve the model of ``env`` over ``max_rounds`` rounds (cached per instance)."""
    base = env.unwrapped
    key = repr((base.config, base.instance.success_probability.tolist(), base.instance.cutoff.tolist()))
    if key not in _SOLUTIONS:
        model = LiteTinyModel.from_env(env)
        solution = backward_induction(enumerate_mdp(model), base.config.max_rounds)
        _SOLUTIONS[key] = (model, solution)
    return _SOLUTIONS[key]


class ExactLitePolicy:
    """The exact finite-horizon optimal scheduler for a small Lite env (see the module docstring).

    The round comes from the observation's ``round`` entry; the state from the observation when it identifies it
    (``queue_capacity = 1``), otherwise from the env's internal state through ``env.unwrapped``.

    Args:
        env: The environment the policy acts in (solved here, or taken from the per-instance cache).
    """

    name = "exact-optimal"

    def __init__(self, env: gym.Env) -> None:
        self.env = env
        self.interface = SchedulingInterface.from_env(env)
        self.model, self.solution = solve_lite(env)
        self.max_rounds = env.unwrapped.config.max_rounds

    @property
    def expected_return(self) -> float:
        """Optimal expected episode return from the start distribution."""
        return self.solution.initial_value

    def reset(self, seed: int | None = None) -> None:
        """The policy is deterministic; nothing to reset."""

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        """Return the env action of the optimal budget split for this state and round."""
        view = self.interface.read(observation)
        round_index = int(np.rint(float(np.asarray(view["round"]).ravel()[0]) * self.max_rounds))
        if self.model.observation_identifies_state:
            state = self.model.state_from_observation(view)
        else:
            state = self.model.state_from_env(self.env)
        try:
            split = self.solution.action(state, round_index)
        except KeyError:
            raise ValueError(f"state {state} is not reachable in the solved model; config mismatch?") from None
        return self.interface.action(np.asarray(split))


# -------------------------------------------------------------------------------------------------- CLI
def _monte_carlo(env: gym.Env, policy: Any, episodes: int, seed: int) -> tuple[float, float]:
    """Mean episode return and its standard error over ``episodes`` seeded episodes."""
    returns = []
    for episode in range(episodes):
        policy.reset(seed + episode)
        observation, info = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            observation, reward, terminated, truncated, info = env.step(policy.act(observation, info))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    values = np.asarray(returns)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(episodes)) if episodes > 1 else 0.0


def main(argv: Sequence[str] | None = None) -> None:
    """Print a Markdown table of exact expected returns on a Lite preset (default ``tiny``)."""
    from agents.baselines import EarliestExpiringFirst, GreedyByDemand, UniformRandom, UniformSplit
    from ceas_gym.envs.lite import EntanglementSchedulingLiteEnv

    parser = argparse.ArgumentParser(prog="python -m agents.exact_lite", description=plain_text(main.__doc__))
    parser.add_argument("--preset", default="tiny", help="Lite preset (must be small enough)")
    parser.add_argument("--episodes", type=int, default=0, help="Monte-Carlo episodes per policy (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="first episode seed")
    args = parser.parse_args(argv)
    env = EntanglementSchedulingLiteEnv(preset=args.preset)
    start = time.perf_counter()
    model, solution = solve_lite(env)
    seconds = time.perf_counter() - start
    mdp, horizon = solution.mdp, solution.horizon
    print(f"preset {args.preset}: {mdp.n_states} states, {len(model.splits)} actions, {mdp.n_rows} state-action rows,")
    print(
        f"{mdp.transition_matrix.nnz} transitions, horizon {horizon} rounds; enumerated and solved in {seconds:.2f} s"
    )
    print()
    print("| policy | exact expected return | Monte-Carlo mean ± s.e. |")
    print("|---|---|---|")
    rows: list[tuple[str, float | None, Any]] = [("exact-optimal", solution.initial_value, ExactLitePolicy(env))]
    for policy in (EarliestExpiringFirst(env), GreedyByDemand(env), UniformSplit(env)):
        weights = deterministic_row_weights(mdp, policy_action_indices(model, mdp, env, policy))
        rows.append((policy.name, float(mdp.initial @ evaluate_finite_horizon(mdp, horizon, weights)[0]), policy))
    uniform = float(mdp.initial @ evaluate_finite_horizon(mdp, horizon, uniform_row_weights(mdp))[0])
    rows.append(("random integer split (uniform)", uniform, None))
    rows.append(("random (uniform Box action)", None, UniformRandom(env)))
    for name, exact, policy in rows:
        exact_text = f"{exact:.4f}" if exact is not None else "-"
        mc_text = "-"
        if policy is not None and args.episodes > 0:
            mean, error = _monte_carlo(env, policy, args.episodes, args.seed)
            mc_text = f"{mean:.3f} ± {error:.3f}"
        print(f"| {name} | {exact_text} | {mc_text} |")


if __name__ == "__main__":
    main()
