"""Exact solution of small finite MDPs, and the exact-optimal swap policy for ``RepeaterChain-v0``.

**MDP core.** A finite MDP is given by three functions (:class:`FiniteMDP`): ``initial_distribution()`` (start
states with their probabilities), ``actions(state)`` (a non-empty sequence; every action listed is allowed) and
``transitions(state, action)`` (a list of :class:`Transition` ``(probability, next_state, reward, done)`` whose
probabilities sum to 1; ``next_state`` of a ``done`` transition is not visited). :func:`enumerate_mdp` finds every
reachable state by breadth-first search from the start states under all actions and stores the transition
probabilities exactly as given (nothing is sampled) in sparse arrays. The objective is the expected total reward
``E[sum_t discount^t r_t]`` until ``done``; ``discount = 1`` is the stochastic-shortest-path case, which needs at
least one policy that ends with probability 1 (a *proper* policy). :func:`solve` runs value iteration and then
policy iteration (exact policy evaluation by a sparse linear solve, greedy improvement that keeps the current
action unless another is better by more than a relative ``1e-12``) until the policy is stable, so the values are
exact up to floating-point round-off, not up to a value-iteration tolerance.

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
import warnings
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from ceas_gym.envs.repeater_chain import ChainState, RepeaterChainConfig, chain_state_from_observation

S = TypeVar("S", bound=Hashable)
A = TypeVar("A")

#: Relative tolerance within which two action values count as equal in policy improvement.
_IMPROVEMENT_TOLERANCE = 1e-12
#: Allowed deviation of a transition list's total probability from 1.
_PROBABILITY_TOLERANCE = 1e-9


class Transition(NamedTuple):
    """One outcome of taking an action in a state."""

    probability: float
    next_state: Any
    reward: float
    done: bool


class FiniteMDP(Protocol[S, A]):
    """What :func:`enumerate_mdp` needs to know about an MDP."""

    def initial_distribution(self) -> Sequence[tuple[float, S]]:
        """Return the start states with their probabilities (summing to 1)."""
        ...

    def actions(self, state: S) -> Sequence[A]:
        """Return the actions allowed in ``state`` (non-empty, in a fixed order)."""
        ...

    def transitions(self, state: S, action: A) -> Sequence[Transition]:
        """Return the outcomes of ``action`` in ``state``; probabilities sum to 1."""
        ...


@dataclass(frozen=True)
class EnumeratedMDP(Generic[S, A]):
    """A finite MDP with its reachable states numbered and its transitions in sparse arrays.

    Rows are state-action pairs, ordered by state: the rows of state ``s`` are
    ``action_offset[s] .. action_offset[s + 1] - 1``, one per entry of ``actions[s]``.

    Attributes:
        states: The reachable states, in BFS order (start states first).
        state_index: Position of each state in ``states``.
        actions: Allowed actions per state.
        action_offset: ``(n_states + 1,)`` int: first row of each state.
        row_state: ``(n_rows,)`` int: the state of each row.
        expected_reward: ``(n_rows,)`` float: expected immediate reward of each row.
        transition_matrix: ``(n_rows, n_states)`` sparse CSR: probability of moving to each state without
            ending (``done`` outcomes are left out, so rows sum to 1 minus the probability of ending).
        initial: ``(n_states,)`` float: start distribution.
    """

    states: list[S]
    state_index: dict[S, int]
    actions: list[list[A]]
    action_offset: np.ndarray
    row_state: np.ndarray
    expected_reward: np.ndarray
    transition_matrix: scipy.sparse.csr_matrix
    initial: np.ndarray

    @property
    def n_states(self) -> int:
        """Number of reachable states."""
        return len(self.states)

    @property
    def n_rows(self) -> int:
        """Number of state-action pairs."""
        return int(self.row_state.size)


def enumerate_mdp(mdp: FiniteMDP[S, A], max_states: int = 200_000) -> EnumeratedMDP[S, A]:
    """Find every state reachable from the start distribution under any actions, and tabulate the MDP.

    Args:
        mdp: The MDP.
        max_states: Give up (``ValueError``) beyond this many states.

    Returns:
        The enumerated MDP.

    Raises:
        ValueError: If a state has no action, a transition list's probabilities do not sum to 1 (within 1e-9),
            a probability is negative, or there are more than ``max_states`` states.
    """
    states: list[S] = []
    state_index: dict[S, int] = {}
    queue: deque[S] = deque()

    def visit(state: S) -> int:
        if state not in state_index:
            if len(states) >= max_states:
                raise ValueError(f"more than max_states = {max_states} reachable states; use a smaller instance")
            state_index[state] = len(states)
            states.append(state)
            queue.append(state)
        return state_index[state]

    initial_pairs = [(float(prob), visit(state)) for prob, state in mdp.initial_distribution()]
    if abs(sum(prob for prob, _ in initial_pairs) - 1.0) > _PROBABILITY_TOLERANCE:
        raise ValueError("initial_distribution: probabilities do not sum to 1")
    actions: list[list[A]] = []
    offsets = [0]
    rows, cols, probs, rewards = [], [], [], []
    while queue:
        state = queue.popleft()
        state_actions = list(mdp.actions(state))
        if not state_actions:
            raise ValueError(f"state {state!r} has no actions")
        actions.append(state_actions)
        for action in state_actions:
            row = len(rewards)
            outcomes = mdp.transitions(state, action)
            total = sum(outcome.probability for outcome in outcomes)
            if abs(total - 1.0) > _PROBABILITY_TOLERANCE or any(outcome.probability < 0 for outcome in outcomes):
                raise ValueError(f"transitions({state!r}, {action!r}): probabilities {total!r} do not sum to 1")
            rewards.append(sum(outcome.probability * outcome.reward for outcome in outcomes))
            for outcome in outcomes:
                if not outcome.done and outcome.probability > 0:
                    rows.append(row)
                    cols.append(visit(outcome.next_state))
                    probs.append(outcome.probability)
        offsets.append(len(rewards))
    n_states = len(states)
    offset = np.asarray(offsets, dtype=np.int64)
    matrix = scipy.sparse.csr_matrix(
        (np.asarray(probs, dtype=np.float64), (np.asarray(rows), np.asarray(cols))), shape=(len(rewards), n_states)
    )
    initial = np.zeros(n_states)
    np.add.at(initial, [index for _, index in initial_pairs], [prob for prob, _ in initial_pairs])
    return EnumeratedMDP(
        states=states,
        state_index=state_index,
        actions=actions,
        action_offset=offset,
        row_state=np.repeat(np.arange(n_states), np.diff(offset)),
        expected_reward=np.asarray(rewards, dtype=np.float64),
        transition_matrix=matrix,
        initial=initial,
    )


def q_values(mdp: EnumeratedMDP, values: np.ndarray, discount: float = 1.0) -> np.ndarray:
    """Action values ``Q(s, a) = r(s, a) + discount * sum_s' P(s' | s, a) V(s')`` for every row.

    Args:
        mdp: The enumerated MDP.
        values: ``(n_states,)`` state values.
        discount: Discount factor in (0, 1].

    Returns:
        ``(n_rows,)`` action values.
    """
    return mdp.expected_reward + discount * (mdp.transition_matrix @ values)


def _state_maximum(mdp: EnumeratedMDP, row_values: np.ndarray) -> np.ndarray:
    return np.maximum.reduceat(row_values, mdp.action_offset[:-1])


def greedy_policy(
    mdp: EnumeratedMDP, values: np.ndarray, discount: float = 1.0, current: np.ndarray | None = None
) -> np.ndarray:
    """The greedy policy for ``values``: per state the index (into ``mdp.actions[s]``) of a best action.

    Ties (within a relative 1e-12) keep the ``current`` action if given, else the first best action.

    Args:
        mdp: The enumerated MDP.
        values: ``(n_states,)`` state values.
        discount: Discount factor in (0, 1].
        current: Optional ``(n_states,)`` current action indices.

    Returns:
        ``(n_states,)`` int action indices.
    """
    q = q_values(mdp, values, discount)
    best = _state_maximum(mdp, q)
    slack = _IMPROVEMENT_TOLERANCE * np.maximum(1.0, np.abs(best))
    good = q >= (best - slack)[mdp.row_state]
    rows = np.arange(mdp.n_rows)
    first_good = np.minimum.reduceat(np.where(good, rows, mdp.n_rows), mdp.action_offset[:-1])
    choice = first_good - mdp.action_offset[:-1]
    if current is not None:
        keep = good[mdp.action_offset[:-1] + current]
        choice = np.where(keep, current, choice)
    return choice.astype(np.int64)


def evaluate_policy(mdp: EnumeratedMDP, policy: np.ndarray, discount: float = 1.0) -> np.ndarray:
    """Exact values of a deterministic policy: solve ``(I - discount P_pi) V = r_pi`` (sparse LU).

    Args:
        mdp: The enumerated MDP.
        policy: ``(n_states,)`` action index per state.
        discount: Discount factor in (0, 1].

    Returns:
        ``(n_states,)`` values.

    Raises:
        ValueError: If the system is singular or the values are not finite (with ``discount = 1``: the policy
            does not end with probability 1 from some state).
    """
    rows = mdp.action_offset[:-1] + np.asarray(policy, dtype=np.int64)
    transition = mdp.transition_matrix[rows]
    system = scipy.sparse.identity(mdp.n_states, format="csc") - discount * transition.tocsc()
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error", scipy.sparse.linalg.MatrixRankWarning)
        try:
            values = scipy.sparse.linalg.spsolve(system, mdp.expected_reward[rows])
        except (RuntimeError, scipy.sparse.linalg.MatrixRankWarning) as error:  # singular: some state never ends
            raise ValueError(
                f"policy evaluation failed ({error}); the policy does not end with probability 1"
            ) from error
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if not np.all(np.isfinite(values)):
        raise ValueError("policy evaluation gave non-finite values; the policy does not end with probability 1")
    return values


def value_iteration(
    mdp: EnumeratedMDP, discount: float = 1.0, tolerance: float = 1e-10, max_iterations: int = 100_000
) -> np.ndarray:
    """Bellman optimality iteration from ``V = 0`` until the largest change is below ``tolerance``.

    Args:
        mdp: The enumerated MDP.
        discount: Discount factor in (0, 1].
        tolerance: Stop when ``max |V_new - V| <= tolerance * max(1, max |V_new|)``.
        max_iterations: Upper bound on sweeps.

    Returns:
        ``(n_states,)`` approximate optimal values.
    """
    values = np.zeros(mdp.n_states)
    for _ in range(max_iterations):
        updated = _state_maximum(mdp, q_values(mdp, values, discount))
        change = np.max(np.abs(updated - values)) if updated.size else 0.0
        values = updated
        if change <= tolerance * max(1.0, float(np.max(np.abs(values), initial=0.0))):
            break
    return values


@dataclass(frozen=True)
class MDPSolution(Generic[S, A]):
    """Optimal values and a deterministic optimal policy of an enumerated MDP.

    Attributes:
        mdp: The enumerated MDP.
        values: ``(n_states,)`` optimal values.
        policy: ``(n_states,)`` index into ``mdp.actions[s]`` of the chosen action.
        iterations: Policy-iteration rounds used after value iteration.
    """

    mdp: EnumeratedMDP[S, A]
    values: np.ndarray
    policy: np.ndarray
    iterations: int

    @property
    def initial_value(self) -> float:
        """Expected total reward from the start distribution."""
        return float(self.mdp.initial @ self.values)

    def value(self, state: S) -> float:
        """Optimal value of ``state`` (KeyError if unreachable)."""
        return float(self.values[self.mdp.state_index[state]])

    def action(self, state: S) -> A:
        """The policy's action in ``state`` (KeyError if unreachable)."""
        index = self.mdp.state_index[state]
        return self.mdp.actions[index][int(self.policy[index])]


def solve(mdp: EnumeratedMDP[S, A], discount: float = 1.0, max_policy_iterations: int = 1000) -> MDPSolution[S, A]:
    """Optimal values and policy: value iteration, then policy iteration until the policy is stable.

    Args:
        mdp: The enumerated MDP.
        discount: Discount factor in (0, 1]; with 1 some policy must end with probability 1.
        max_policy_iterations: Upper bound on policy-iteration rounds.

    Returns:
        The solution (values exact up to round-off).
    """
    if not 0.0 < discount <= 1.0:
        raise ValueError(f"discount = {discount!r} is out of range; allowed: (0, 1]")
    policy = greedy_policy(mdp, value_iteration(mdp, discount), discount)
    values = evaluate_policy(mdp, policy, discount)
    for iteration in range(1, max_policy_iterations + 1):
        improved = greedy_policy(mdp, values, discount, current=policy)
        if np.array_equal(improved, policy):
            return MDPSolution(mdp=mdp, values=values, policy=policy, iterations=iteration)
        policy = improved
        values = evaluate_policy(mdp, policy, discount)
    raise RuntimeError(f"policy iteration did not settle in {max_policy_iterations} rounds")


def policy_from_function(mdp: EnumeratedMDP[S, A], choose: Callable[[S], A]) -> np.ndarray:
    """Action indices of the deterministic policy ``choose(state) -> action`` (which must be an allowed action)."""
    return np.array([mdp.actions[s].index(choose(state)) for s, state in enumerate(mdp.states)], dtype=np.int64)


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
