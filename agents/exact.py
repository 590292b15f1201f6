"""Exact solution of small finite MDPs, and the exact-optimal swap policy for ``RepeaterChain-v0``.

The MDP core (enumeration, value and policy iteration) lives in :mod:`agents.mdp`; its names are re-exported here.

**Repeater chain.** :class:`RepeaterChainModel` is the MDP of :mod:`ceas_gym.envs.repeater_chain`, written
independently of the environment's vectorised code (plain loops over pairs, meant as a reference): a state is the
tuple of stored pairs ``(left, right, age)``; an action is the tuple of intermediate nodes that swap, chosen among
the *feasible* ones (nodes holding a pair to each side), every subset allowed; one transition is one env step
(swaps and delivery, then ageing/cutoff and generation of the next round) with reward -1, so the optimal value of
the start distribution is minus the minimal expected delivery time in rounds. The start distribution is the
chain after the first round's generation (each link holds a fresh pair with probability ``p``), as in the env.

Run ``python -m agents.exact --n 4 --p 0.5 --p-s 0.5 --t-cut 2`` for optimal and swap-asap expected delivery
times (several values per option give a Markdown table over their product).
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.mdp import (
    EnumeratedMDP,
    FiniteMDP,
    MDPSolution,
    Transition,
    enumerate_mdp,
    evaluate_policy,
    greedy_policy,
    policy_from_function,
    q_values,
    solve,
    value_iteration,
)
from ceas_gym.envs.repeater_chain import ChainState, RepeaterChainConfig, chain_state_from_observation

__all__ = [
    "DELIVERED",
    "EnumeratedMDP",
    "ExactRepeaterPolicy",
    "FiniteMDP",
    "MDPSolution",
    "RepeaterChainModel",
    "SwapNodes",
    "Transition",
    "enumerate_mdp",
    "evaluate_policy",
    "feasible_swaps",
    "greedy_policy",
    "policy_from_function",
    "q_values",
    "solve",
    "solve_repeater_chain",
    "value_iteration",
]

# ---------------------------------------------------------------------------------------------- repeater chain
#: Placeholder next state of a delivering (``done``) transition.
DELIVERED = "delivered"
#: An action of the repeater-chain model: the intermediate nodes that swap, ascending.
SwapNodes = tuple[int, ...]


def feasible_swaps(state: ChainState) -> SwapNodes:
    """Nodes holding a pair to each side (the right end of one stored pair and the left end of another)."""
    right_ends = {right for _, right, _ in state}
    return tuple(sorted(left for left, _, _ in state if left in right_ends))


class RepeaterChainModel:
    """The exact MDP of :class:`~ceas_gym.envs.repeater_chain.RepeaterChainEnv` (see the module docstring).

    Args:
        config: The chain's configuration (fidelity parameters and ``max_steps`` do not enter the model).
    """

    def __init__(self, config: RepeaterChainConfig) -> None:
        self.config = config

    def initial_distribution(self) -> list[tuple[float, ChainState]]:
        """The chain after the first round's generation: each link holds a fresh pair with probability ``p``."""
        return self._generate(())

    def actions(self, state: ChainState) -> list[SwapNodes]:
        """Every subset of the feasible swapping nodes (the empty action first)."""
        nodes = feasible_swaps(state)
        return [combo for size in range(len(nodes) + 1) for combo in itertools.combinations(nodes, size)]

    def transitions(self, state: ChainState, action: SwapNodes) -> list[Transition]:
        """Swap at ``action``'s nodes; deliver, or age/cut and generate. Reward -1 per step."""
        swapping = set(action)
        outcomes: dict[Any, float] = {}
        for prob, after_swaps in self._swap(state, swapping):
            if any(left == 0 and right == self.config.n_nodes - 1 for left, right, _ in after_swaps):
                outcomes[DELIVERED] = outcomes.get(DELIVERED, 0.0) + prob
                continue
            aged = tuple((left, right, age + 1) for left, right, age in after_swaps if age + 1 <= self.config.t_cut)
            for gen_prob, next_state in self._generate(aged):
                outcomes[next_state] = outcomes.get(next_state, 0.0) + prob * gen_prob
        return [Transition(prob, nxt, -1.0, nxt == DELIVERED) for nxt, prob in outcomes.items()]

    def _swap(self, state: ChainState, swapping: set[int]) -> list[tuple[float, ChainState]]:
        """Outcomes of the swaps: groups of pairs joined at swapping nodes merge or are all lost."""
        groups: list[list[tuple[int, int, int]]] = []
        for pair in state:
            if groups and groups[-1][-1][1] == pair[0] and pair[0] in swapping:
                groups[-1].append(pair)
            else:
                groups.append([pair])
        choices: list[list[tuple[float, tuple[int, int, int] | None]]] = []
        for group in groups:
            if len(group) == 1:
                choices.append([(1.0, group[0])])
                continue
            success = self.config.p_s ** (len(group) - 1)
            merged = (group[0][0], group[-1][1], max(age for _, _, age in group))
            choices.append([(success, merged), (1.0 - success, None)])
        results = []
        for combo in itertools.product(*choices):
            prob = math.prod(prob for prob, _ in combo)
            if prob > 0:
                results.append((prob, tuple(pair for _, pair in combo if pair is not None)))
        return results

    def _generate(self, state: ChainState) -> list[tuple[float, ChainState]]:
        """Outcomes of one attempt on every link not spanned by a stored pair."""
        spanned = {link for left, right, _ in state for link in range(left, right)}
        free = [link for link in range(self.config.n_links) if link not in spanned]
        p = self.config.p
        results = []
        for success in itertools.product((False, True), repeat=len(free)):
            made = sum(success)
            prob = p**made * (1.0 - p) ** (len(free) - made)
            if prob > 0:
                new = [(link, link + 1, 0) for link, ok in zip(free, success, strict=True) if ok]
                results.append((prob, tuple(sorted(list(state) + new))))
        return results


def solve_repeater_chain(config: RepeaterChainConfig, max_states: int = 200_000) -> MDPSolution:
    """Enumerate and solve the repeater-chain MDP of ``config`` (minimal expected delivery time)."""
    return solve(enumerate_mdp(RepeaterChainModel(config), max_states=max_states))


class ExactRepeaterPolicy:
    """The exact-optimal swap policy for ``RepeaterChain-v0`` (minimal expected delivery time).

    Args:
        config: The env's configuration (``env.unwrapped.config``).
        solution: A precomputed :func:`solve_repeater_chain` result for ``config``; solved here if None.
    """

    name = "exact-optimal"

    def __init__(self, config: RepeaterChainConfig, solution: MDPSolution | None = None) -> None:
        self.config = config
        self.solution = solution if solution is not None else solve_repeater_chain(config)
        self._action_size = max(config.n_nodes - 2, 1)

    @property
    def expected_delivery_time(self) -> float:
        """Minimal expected delivery time from the start distribution, in rounds."""
        return -self.solution.initial_value

    def reset(self, seed: int | None = None) -> None:
        """The policy is deterministic; nothing to reset."""

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        """Return the optimal ``MultiBinary`` swap vector for the chain in ``observation``."""
        state = chain_state_from_observation(observation, self.config.n_nodes)
        try:
            nodes = self.solution.action(state)
        except KeyError:
            raise ValueError(f"chain state {state} is not reachable in the solved model; config mismatch?") from None
        action = np.zeros(self._action_size, dtype=np.int8)
        action[np.asarray(nodes, dtype=np.int64) - 1] = 1
        return action


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m agents.exact",
        description="Optimal and swap-asap expected delivery times (rounds) of small repeater chains.",
    )
    parser.add_argument("--n", type=int, nargs="+", default=[4], help="number of nodes (>= 2)")
    parser.add_argument("--p", type=float, nargs="+", default=[0.5], help="elementary generation probability")
    parser.add_argument("--p-s", type=float, nargs="+", default=[1.0], help="swap success probability")
    parser.add_argument("--t-cut", type=int, nargs="+", default=[2], help="cutoff in rounds")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Print a Markdown table of expected delivery times over the product of the given parameter values."""
    from agents.repeater import swap_asap_expected_delivery_time

    args = _parse_arguments(argv)
    print("| n | p | p_s | t_cut | states | optimal E[T] (rounds) | swap-asap E[T] (rounds) |")
    print("|---|---|---|---|---|---|---|")
    for n, p, p_s, t_cut in itertools.product(args.n, args.p, args.p_s, args.t_cut):
        config = RepeaterChainConfig(n_nodes=n, p=p, p_s=p_s, t_cut=t_cut)
        solution = solve_repeater_chain(config)
        asap = swap_asap_expected_delivery_time(config, mdp=solution.mdp)
        optimal = -solution.initial_value
        print(f"| {n} | {p:g} | {p_s:g} | {t_cut} | {solution.mdp.n_states} | {optimal:.6f} | {asap:.6f} |")


if __name__ == "__main__":
    main()
