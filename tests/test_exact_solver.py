"""The generic exact MDP solver and the repeater-chain model: hand cases, closed forms, brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from agents.exact import (
    DELIVERED,
    RepeaterChainModel,
    Transition,
    enumerate_mdp,
    evaluate_policy,
    feasible_swaps,
    policy_from_function,
    solve,
    solve_repeater_chain,
)
from agents.repeater import swap_asap_expected_delivery_time
from ceas_gym.envs.repeater_chain import RepeaterChainConfig


class TableMDP:
    """An MDP given as a table {state: {action: [Transition, ...]}} with a fixed start state."""

    def __init__(self, table, start):
        self.table = table
        self.start = start
        self.visited_actions = []

    def initial_distribution(self):
        return [(1.0, self.start)]

    def actions(self, state):
        return list(self.table[state])

    def transitions(self, state, action):
        self.visited_actions.append(state)
        return self.table[state][action]


def closed_form_n3(p):
    """Expected delivery time of the 3-node chain with p_s = 1 and t_cut = 2 (reference formula)."""
    return (2 * p**3 - 6 * p**2 + 4 * p + 1) / (2 * p**4 - 6 * p**3 + 5 * p**2)


# ------------------------------------------------------------------------------------------- generic core
def test_choice_between_two_geometric_actions_by_hand():
    # "fast" costs 3 per try and ends w.p. 0.9: V = -3 / 0.9; "slow" costs 1 and ends w.p. 0.25: V = -4.
    table = {
        "s": {
            "slow": [Transition(0.25, None, -1.0, True), Transition(0.75, "s", -1.0, False)],
            "fast": [Transition(0.9, None, -3.0, True), Transition(0.1, "s", -3.0, False)],
        }
    }
    solution = solve(enumerate_mdp(TableMDP(table, "s")))
    assert solution.action("s") == "fast"
    assert solution.value("s") == pytest.approx(-3.0 / 0.9, abs=1e-12)
    slow = evaluate_policy(solution.mdp, np.array([0]))
    assert slow[0] == pytest.approx(-4.0, abs=1e-12)


def test_discounted_loop_has_geometric_series_value():
    table = {"a": {"stay": [Transition(1.0, "a", 1.0, False)]}}
    solution = solve(enumerate_mdp(TableMDP(table, "a")), discount=0.9)
    assert solution.initial_value == pytest.approx(1.0 / (1.0 - 0.9), rel=1e-12)


def test_bfs_enumerates_only_reachable_states():
    table = {
        "a": {"go": [Transition(0.5, "b", 0.0, False), Transition(0.5, None, 1.0, True)]},
        "b": {"go": [Transition(1.0, None, 2.0, True)]},
        "unreachable": {"go": [Transition(1.0, "a", 0.0, False)]},
    }
    mdp = enumerate_mdp(TableMDP(table, "a"))
    assert mdp.states == ["a", "b"]
    assert solve(mdp).initial_value == pytest.approx(0.5 * 1.0 + 0.5 * 2.0)


def test_bad_probabilities_and_improper_policies_are_errors():
    leaking = {"a": {"go": [Transition(0.5, "a", -1.0, False)]}}
    with pytest.raises(ValueError, match="sum to 1"):
        enumerate_mdp(TableMDP(leaking, "a"))
    never_ends = {"a": {"stay": [Transition(1.0, "a", -1.0, False)], "stop": [Transition(1.0, None, -5.0, True)]}}
    mdp = enumerate_mdp(TableMDP(never_ends, "a"))
    with pytest.raises(ValueError, match="end"):
        evaluate_policy(mdp, np.array([0]))
    assert solve(mdp).action("a") == "stop"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_solver_matches_brute_force_over_all_deterministic_policies(seed):
    rng = np.random.default_rng(seed)
    n_states, n_actions, discount = 4, 3, 0.9
    table = {}
    for s in range(n_states):
        table[s] = {}
        for a in range(n_actions):
            probs = rng.dirichlet(np.ones(n_states + 1))
            rewards = rng.normal(size=n_states + 1)
            outcomes = [Transition(float(probs[t]), t, float(rewards[t]), False) for t in range(n_states)]
            outcomes.append(Transition(float(probs[-1]), None, float(rewards[-1]), True))
            table[s][a] = outcomes
    mdp = enumerate_mdp(TableMDP(table, 0))
    order = [mdp.states.index(s) for s in range(n_states)]
    best = -np.inf
    # Independent reference: dense expected rewards and transition matrices, every policy evaluated by numpy.
    for choice in itertools.product(range(n_actions), repeat=n_states):
        matrix = np.zeros((n_states, n_states))
        reward = np.zeros(n_states)
        for s, a in enumerate(choice):
            for prob, nxt, rew, done in table[s][a]:
                reward[s] += prob * rew
                if not done:
                    matrix[s, nxt] += prob
        values = np.linalg.solve(np.eye(n_states) - discount * matrix, reward)
        best = max(best, values[0])
    solution = solve(mdp, discount=discount)
    assert solution.values[order[0]] == pytest.approx(best, abs=1e-10)


# ---------------------------------------------------------------------------------------- repeater chain
@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.77, 0.95, 1.0])
def test_three_node_chain_reproduces_closed_form(p):
    config = RepeaterChainConfig(n_nodes=3, p=p, p_s=1.0, t_cut=2)
    solution = solve_repeater_chain(config)
    assert -solution.initial_value == pytest.approx(closed_form_n3(p), abs=1e-9)
    assert swap_asap_expected_delivery_time(config) == pytest.approx(closed_form_n3(p), abs=1e-9)


def test_closed_form_reference_values_by_hand():
    assert closed_form_n3(0.5) == pytest.approx(2.8, abs=1e-12)
    assert closed_form_n3(1.0) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("p", [0.2, 0.6])
def test_two_node_chain_delivers_after_geometric_time(p):
    assert -solve_repeater_chain(RepeaterChainConfig(n_nodes=2, p=p, t_cut=1)).initial_value == pytest.approx(1 / p)


@pytest.mark.parametrize(("n_nodes", "p", "p_s"), [(3, 0.5, 0.7), (4, 0.4, 0.9), (5, 0.8, 0.6)])
def test_zero_cutoff_needs_every_link_and_swap_in_one_round(n_nodes, p, p_s):
    # With t_cut = 0 a pair lives one round, so rounds are independent trials that succeed w.p. p^(n-1) p_s^(n-2).
    config = RepeaterChainConfig(n_nodes=n_nodes, p=p, p_s=p_s, t_cut=0)
    expected = 1.0 / (p ** (n_nodes - 1) * p_s ** (n_nodes - 2))
    assert -solve_repeater_chain(config).initial_value == pytest.approx(expected, rel=1e-10)
    assert swap_asap_expected_delivery_time(config) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("p", [0.5, 0.7])
def test_long_cutoff_three_node_chain_is_expected_maximum_of_two_geometrics(p):
    # With p_s = 1 and a cutoff never reached in practice, delivery is at max(G1, G2), G ~ Geometric(p):
    # E[max] = 2/p - 1/(1 - (1-p)^2). The truncation error is below (1-p)^t_cut ~ 1e-15.
    t_cut = int(np.ceil(np.log(1e-15) / np.log(1 - p)))
    config = RepeaterChainConfig(n_nodes=3, p=p, p_s=1.0, t_cut=t_cut)
    expected = 2 / p - 1 / (1 - (1 - p) ** 2)
    assert -solve_repeater_chain(config).initial_value == pytest.approx(expected, abs=1e-9)


def test_perfect_chain_delivers_in_one_round():
    for n_nodes in (2, 3, 4, 5):
        config = RepeaterChainConfig(n_nodes=n_nodes, p=1.0, p_s=1.0, t_cut=1)
        assert -solve_repeater_chain(config).initial_value == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("n_nodes", "p", "p_s", "t_cut"),
    [(3, 0.5, 0.5, 2), (3, 0.3, 0.9, 3), (4, 0.5, 1.0, 1), (4, 0.5, 0.5, 3), (4, 0.3, 0.8, 2)],
)
def test_optimal_is_never_worse_than_swap_asap(n_nodes, p, p_s, t_cut):
    config = RepeaterChainConfig(n_nodes=n_nodes, p=p, p_s=p_s, t_cut=t_cut)
    solution = solve_repeater_chain(config)
    asap = swap_asap_expected_delivery_time(config, mdp=solution.mdp)
    assert -solution.initial_value <= asap + 1e-9
    # The optimal values satisfy the Bellman equation: no single state improves by deviating.
    asap_values = evaluate_policy(solution.mdp, policy_from_function(solution.mdp, feasible_swaps))
    assert np.all(solution.values >= asap_values - 1e-9)


def test_optimal_beats_swap_asap_strictly_on_four_nodes():
    # Swapping early makes the young pair inherit the old pair's age; waiting pays for n = 4 (p_s = 1, t_cut = 1).
    config = RepeaterChainConfig(n_nodes=4, p=0.5, p_s=1.0, t_cut=1)
    solution = solve_repeater_chain(config)
    assert -solution.initial_value < swap_asap_expected_delivery_time(config, mdp=solution.mdp) - 1e-3


def test_exact_optimum_equals_best_of_all_deterministic_policies_small_chain():
    # n = 3, t_cut = 2: nine states hold two pairs (a swap/wait choice), 2^9 policies, all evaluated.
    config = RepeaterChainConfig(n_nodes=3, p=0.5, p_s=0.5, t_cut=2)
    mdp = enumerate_mdp(RepeaterChainModel(config))
    choice_states = [s for s in range(mdp.n_states) if len(mdp.actions[s]) > 1]
    assert len(choice_states) == 9
    best = -np.inf
    for choice in itertools.product(*(range(len(mdp.actions[s])) for s in choice_states)):
        policy = np.zeros(mdp.n_states, dtype=np.int64)
        policy[choice_states] = choice
        try:
            best = max(best, float(mdp.initial @ evaluate_policy(mdp, policy)))
        except ValueError:  # improper policy (never swaps somewhere): infinite delivery time
            continue
    assert solve(mdp).initial_value == pytest.approx(best, abs=1e-10)


@pytest.mark.parametrize(("n_nodes", "p_s", "t_cut"), [(4, 0.6, 2), (5, 0.9, 1)])
def test_optimal_values_satisfy_bellman_optimality(n_nodes, p_s, t_cut):
    # Independent check of optimality: every action's one-step look-ahead value, computed from the model's own
    # transition lists (not the sparse arrays), is at most the state's value, with equality for the chosen one.
    config = RepeaterChainConfig(n_nodes=n_nodes, p=0.5, p_s=p_s, t_cut=t_cut)
    model = RepeaterChainModel(config)
    solution = solve_repeater_chain(config)
    for state in solution.mdp.states:
        lookahead = {
            action: sum(
                t.probability * (t.reward + (0.0 if t.done else solution.value(t.next_state)))
                for t in model.transitions(state, action)
            )
            for action in model.actions(state)
        }
        assert max(lookahead.values()) == pytest.approx(solution.value(state), abs=1e-9)
        assert lookahead[solution.action(state)] == pytest.approx(solution.value(state), abs=1e-9)


def test_model_transition_by_hand_three_nodes():
    # State: (0,1) age 1 and (1,2) age 0, swap at node 1 with p_s = 0.6; p = 0.5, t_cut = 2.
    model = RepeaterChainModel(RepeaterChainConfig(n_nodes=3, p=0.5, p_s=0.6, t_cut=2))
    outcomes = {t.next_state: t.probability for t in model.transitions(((0, 1, 1), (1, 2, 0)), (1,))}
    # Success delivers; failure loses both pairs, then both links attempt: 4 outcomes of 0.25 each.
    assert outcomes[DELIVERED] == pytest.approx(0.6)
    assert outcomes[()] == pytest.approx(0.4 * 0.25)
    assert outcomes[((0, 1, 0),)] == pytest.approx(0.4 * 0.25)
    assert outcomes[((0, 1, 0), (1, 2, 0))] == pytest.approx(0.4 * 0.25)
    # Waiting: (0,1) ages to 2, (1,2) to 1, nothing to generate.
    waiting = model.transitions(((0, 1, 1), (1, 2, 0)), ())
    assert [(t.probability, t.next_state) for t in waiting] == [(1.0, ((0, 1, 2), (1, 2, 1)))]
    # At the cutoff the old pair is discarded and its link attempts again in the same round.
    at_cutoff = {t.next_state: t.probability for t in model.transitions(((0, 1, 2), (1, 2, 0)), ())}
    assert at_cutoff == pytest.approx({((1, 2, 1),): 0.5, ((0, 1, 0), (1, 2, 1)): 0.5})


def test_model_swapped_pair_takes_the_older_age_and_failed_group_is_lost():
    model = RepeaterChainModel(RepeaterChainConfig(n_nodes=5, p=1.0, p_s=0.5, t_cut=5))
    state = ((0, 1, 3), (1, 2, 0), (2, 3, 1), (3, 4, 2))
    assert feasible_swaps(state) == (1, 2, 3)
    outcomes = {t.next_state: t.probability for t in model.transitions(state, (1, 2))}
    # Group {(0,1),(1,2),(2,3)} joins to (0,3) with the oldest age 3 (then ages to 4) w.p. 0.25; else it is lost
    # and links 0..2 regenerate (p = 1). (3,4) just ages.
    assert outcomes == pytest.approx({((0, 3, 4), (3, 4, 3)): 0.25, ((0, 1, 0), (1, 2, 0), (2, 3, 0), (3, 4, 3)): 0.75})
