"""Exact solution of small finite MDPs: enumeration, infinite-horizon and finite-horizon optima, policy values.

A finite MDP is given by three functions (:class:`FiniteMDP`): ``initial_distribution()`` (start
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

**Finite horizon.** :func:`backward_induction` gives the exact optimum over H rounds (values per round and a
round-dependent policy); :func:`evaluate_finite_horizon` the exact value of a stationary, possibly randomised,
policy given as weights on the enumerated rows.

The repeater-chain model (:mod:`agents.exact`) and the tiny Lite model (:mod:`agents.exact_lite`) are solved with it.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

__all__ = [
    "EnumeratedMDP",
    "FiniteHorizonSolution",
    "FiniteMDP",
    "MDPSolution",
    "Transition",
    "backward_induction",
    "deterministic_row_weights",
    "enumerate_mdp",
    "evaluate_finite_horizon",
    "evaluate_policy",
    "greedy_policy",
    "policy_from_function",
    "q_values",
    "solve",
    "uniform_row_weights",
    "value_iteration",
]

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


# ---------------------------------------------------------------------------------------------- finite horizon
@dataclass(frozen=True)
class FiniteHorizonSolution:
    """Optimal finite-horizon values and a round-dependent optimal policy.

    Attributes:
        mdp: The enumerated (stationary) MDP.
        horizon: Number of rounds H.
        values: ``(H + 1, n_states)``: ``values[t, s]`` is the optimal expected reward of rounds ``t .. H-1``.
        policy: ``(H, n_states)`` int: index into ``mdp.actions[s]`` of the action taken in round ``t``.
    """

    mdp: EnumeratedMDP
    horizon: int
    values: np.ndarray
    policy: np.ndarray

    @property
    def initial_value(self) -> float:
        """Expected return of the whole episode from the start distribution."""
        return float(self.mdp.initial @ self.values[0])

    def value(self, state: Any, round_index: int = 0) -> float:
        """Optimal expected reward from ``state`` at round ``round_index`` to the end (KeyError if unreachable)."""
        return float(self.values[round_index, self.mdp.state_index[state]])

    def action(self, state: Any, round_index: int) -> Any:
        """The optimal action in ``state`` at round ``round_index`` (KeyError if unreachable)."""
        index = self.mdp.state_index[state]
        row = min(max(round_index, 0), self.horizon - 1)
        return self.mdp.actions[index][int(self.policy[row, index])]


def backward_induction(mdp: EnumeratedMDP, horizon: int) -> FiniteHorizonSolution:
    """Exact finite-horizon optimum: ``V_H = 0``, ``V_t = max_a (r + P V_{t+1})`` for ``t = H-1 .. 0``.

    Ties go to the first best action (within a relative 1e-12).

    Args:
        mdp: The enumerated MDP (``done`` outcomes end the episode early).
        horizon: Number of rounds H (>= 1).

    Returns:
        Values per round and a round-dependent optimal policy.
    """
    if horizon < 1:
        raise ValueError(f"horizon = {horizon!r} is out of range; allowed: >= 1")
    starts = mdp.action_offset[:-1]
    rows = np.arange(mdp.n_rows)
    values = np.zeros((horizon + 1, mdp.n_states))
    policy = np.zeros((horizon, mdp.n_states), dtype=np.int64)
    for t in range(horizon - 1, -1, -1):
        q = mdp.expected_reward + mdp.transition_matrix @ values[t + 1]
        best = np.maximum.reduceat(q, starts)
        good = q >= (best - 1e-12 * np.maximum(1.0, np.abs(best)))[mdp.row_state]
        policy[t] = np.minimum.reduceat(np.where(good, rows, mdp.n_rows), starts) - starts
        values[t] = best
    return FiniteHorizonSolution(mdp=mdp, horizon=horizon, values=values, policy=policy)


def evaluate_finite_horizon(mdp: EnumeratedMDP, horizon: int, row_weights: np.ndarray) -> np.ndarray:
    """Exact values of a stationary (possibly randomised) policy over ``horizon`` rounds.

    Args:
        mdp: The enumerated MDP.
        horizon: Number of rounds H (>= 1).
        row_weights: ``(n_rows,)`` probability of each state's action (sums to 1 over each state's rows).

    Returns:
        ``(H + 1, n_states)`` values: ``values[t, s]`` is the expected reward of rounds ``t .. H-1``.
    """
    row_weights = np.asarray(row_weights, dtype=np.float64)
    starts = mdp.action_offset[:-1]
    if row_weights.shape != (mdp.n_rows,) or not np.allclose(np.add.reduceat(row_weights, starts), 1.0):
        raise ValueError("row_weights: expected (n_rows,) action probabilities summing to 1 per state")
    values = np.zeros((horizon + 1, mdp.n_states))
    for t in range(horizon - 1, -1, -1):
        q = mdp.expected_reward + mdp.transition_matrix @ values[t + 1]
        values[t] = np.add.reduceat(row_weights * q, starts)
    return values


def deterministic_row_weights(mdp: EnumeratedMDP, action_index: np.ndarray) -> np.ndarray:
    """One-hot row weights of a deterministic policy given as an action index per state."""
    weights = np.zeros(mdp.n_rows)
    weights[mdp.action_offset[:-1] + np.asarray(action_index, dtype=np.int64)] = 1.0
    return weights


def uniform_row_weights(mdp: EnumeratedMDP) -> np.ndarray:
    """Row weights of the policy choosing uniformly among each state's actions."""
    counts = np.diff(mdp.action_offset)
    return 1.0 / counts[mdp.row_state]
