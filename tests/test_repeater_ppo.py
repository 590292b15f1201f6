"""PPO-vs-optimum harness on RepeaterChain: encodings, exact policy-table evaluation, agreement and the command."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from agents.exact import feasible_swaps, policy_from_function, solve_repeater_chain
from agents.repeater import swap_asap_expected_delivery_time
from ceas_gym.envs.repeater_chain import RepeaterChainConfig, RepeaterChainEnv, chain_state_from_observation
from evaluation import repeater_ppo
from evaluation.repeater_ppo import (
    OneHotAgeObservation,
    agreement_rates,
    effective_swaps,
    exact_delivery_time,
    greedy_policy_table,
    one_hot_ages,
    optimal_action_mask,
    run_episodes,
    state_pair_ages,
)

CHAIN4 = RepeaterChainConfig(n_nodes=4, p=0.5, p_s=0.75, t_cut=2)


def closed_form_three_nodes(p: float) -> float:
    """Swap-asap (= optimal) delivery time, n = 3, p_s = 1, t_cut = 2 (repeater_chain module docstring)."""
    return (2 * p**3 - 6 * p**2 + 4 * p + 1) / (2 * p**4 - 6 * p**3 + 5 * p**2)


def test_one_hot_ages_by_hand() -> None:
    encoded = one_hot_ages(np.array([[-1.0, 0.0, 2.0]]), t_cut=2)
    expected = np.array([[1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]], dtype=np.float32)
    np.testing.assert_array_equal(encoded, expected)
    assert encoded.dtype == np.float32
    with pytest.raises(ValueError, match="t_cut = 2"):
        one_hot_ages(np.array([3.0]), t_cut=2)


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped")
def test_wrapper_observation_passes_check_env() -> None:
    env = OneHotAgeObservation(RepeaterChainEnv(CHAIN4))
    check_env(env, skip_render_check=True)
    observation, _ = env.reset(seed=1)
    # One indicator per node pair: the encoded vector sums to the number of node pairs.
    assert observation.sum() == CHAIN4.n_node_pairs


def test_state_pair_ages_round_trips_every_reachable_state() -> None:
    mdp = solve_repeater_chain(CHAIN4).mdp
    ages = state_pair_ages(mdp.states, CHAIN4.n_nodes)
    decoded = [chain_state_from_observation({"pair_age": row}, CHAIN4.n_nodes) for row in ages]
    assert decoded == list(mdp.states)


def test_effective_swaps_drops_infeasible_requests() -> None:
    state = ((0, 1, 0), (1, 2, 1))  # node 1 can swap, node 2 holds no pair to its right
    assert effective_swaps(state, np.array([1, 1])) == (1,)
    assert effective_swaps(state, np.array([0, 1])) == ()


def test_swap_everywhere_predictor_is_swap_asap_with_closed_form() -> None:
    config = RepeaterChainConfig(n_nodes=3, p=0.5, p_s=1.0, t_cut=2)
    mdp = solve_repeater_chain(config).mdp
    policy = greedy_policy_table(mdp, 3, lambda ages: np.ones((ages.shape[0], 1), dtype=np.int64))
    np.testing.assert_array_equal(policy, policy_from_function(mdp, feasible_swaps))
    assert math.isclose(exact_delivery_time(mdp, policy), closed_form_three_nodes(0.5), rel_tol=1e-9)
    assert math.isclose(closed_form_three_nodes(0.5), 2.8)


def test_optimal_predictor_reproduces_the_optimum_and_full_agreement() -> None:
    solution = solve_repeater_chain(CHAIN4)
    mdp = solution.mdp

    def optimal_predictor(ages: np.ndarray) -> np.ndarray:
        actions = np.zeros((ages.shape[0], 2), dtype=np.int64)
        for row, state_ages in enumerate(ages):
            nodes = solution.action(chain_state_from_observation({"pair_age": state_ages}, 4))
            actions[row, np.asarray(nodes, dtype=np.int64) - 1] = 1
        return actions

    policy = greedy_policy_table(mdp, 4, optimal_predictor)
    np.testing.assert_array_equal(policy, solution.policy)
    assert math.isclose(exact_delivery_time(mdp, policy), -solution.initial_value, rel_tol=1e-12)
    played = run_episodes(CHAIN4, mdp, policy, 30, seed=0)
    assert agreement_rates(solution, policy, played.visited_states, optimal_action_mask(solution)) == (1.0, 1.0, 1.0)


def test_agreement_of_swap_asap_with_the_optimum_by_hand() -> None:
    solution = solve_repeater_chain(CHAIN4)
    mdp = solution.mdp
    asap = policy_from_function(mdp, feasible_swaps)
    index = mdp.state_index
    # Swap-asap and the optimum differ where one pair is at the cutoff age (the optimum waits); in the last state
    # both pairs are at the cutoff and waiting and swapping are equally good (a tie).
    differ_strict = index[((0, 1, 0), (1, 2, 2))]
    differ_tie = index[((0, 1, 2), (1, 2, 2))]
    agree = index[((0, 1, 0), (1, 2, 0))]
    no_choice = index[((0, 1, 0),)]
    visited = np.array([differ_strict, differ_tie, agree, agree, no_choice])
    all_steps, decisions, optimal = agreement_rates(solution, asap, visited, optimal_action_mask(solution))
    assert all_steps == pytest.approx(3 / 5)  # agree, agree, no_choice
    assert decisions == pytest.approx(2 / 4)  # 4 decision steps, 2 agree
    assert optimal == pytest.approx(3 / 4)  # the tie also counts as optimal


def test_run_episodes_matches_the_exact_value_and_is_reproducible() -> None:
    config = RepeaterChainConfig(n_nodes=3, p=0.5, p_s=1.0, t_cut=2)
    mdp = solve_repeater_chain(config).mdp
    policy = policy_from_function(mdp, feasible_swaps)
    first = run_episodes(config, mdp, policy, 800, seed=7)
    again = run_episodes(config, mdp, policy, 800, seed=7)
    np.testing.assert_array_equal(first.delivery_times, again.delivery_times)
    assert first.visited_states.size == first.delivery_times.sum()  # one decision per round
    standard_error = first.delivery_times.std(ddof=1) / math.sqrt(800)
    assert abs(first.delivery_times.mean() - 2.8) < 4 * standard_error


def test_quick_command_writes_tables(tmp_path: Path) -> None:
    rows = repeater_ppo.main(
        ["--quick", "--n", "3", "--p", "0.5", "--p-s", "1.0", "--t-cut", "2", "--out", str(tmp_path)]
    )
    assert [row.policy for row in rows] == ["exact-optimal", "swap-asap", "ppo"]
    assert rows[0].exact_delivery_time == pytest.approx(closed_form_three_nodes(0.5), rel=1e-9)
    assert rows[1].exact_delivery_time == pytest.approx(2.8, rel=1e-9)
    assert rows[0].gap_to_optimum == 0.0
    assert all(row.gap_to_optimum >= -1e-9 for row in rows)  # nothing beats the optimum
    with (tmp_path / "results.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 3 and float(table[2]["train_timesteps"]) == 2048
    markdown = (tmp_path / "results.md").read_text()
    assert markdown.count("\n") == 5 and "| 3 | 0.5 | 1 | 2 | ppo |" in markdown
    assert (tmp_path / "run.json").exists()


def test_command_rejects_chains_without_intermediate_nodes(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        repeater_ppo.main(["--quick", "--n", "2", "--out", str(tmp_path)])


def test_swap_asap_exact_value_agrees_with_the_existing_evaluator() -> None:
    mdp = solve_repeater_chain(CHAIN4).mdp
    asap = exact_delivery_time(mdp, policy_from_function(mdp, feasible_swaps))
    assert asap == pytest.approx(swap_asap_expected_delivery_time(CHAIN4), rel=1e-12)
