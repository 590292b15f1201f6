r"""PPO against the exact optimum on ``RepeaterChain-v0``: train, then compare delivery times with the solver.

Run::

    python -m evaluation.repeater_ppo --n 3 4 --p 0.5 --p-s 0.75 --t-cut 2 --timesteps 50000 \\
        --eval-episodes 2000 --out results/repeater_ppo

For every chain length ``n`` this trains PPO (stable-baselines3) on ``RepeaterChainEnv`` and writes, to
``<out>/results.csv`` and ``<out>/results.md``, three policies' expected delivery times in rounds:

* **exact-optimal**: :func:`agents.exact.solve_repeater_chain` (value + policy iteration on the enumerated MDP);
* **swap-asap**: :class:`agents.repeater.SwapAsapPolicy` (exact value from :func:`swap_asap_expected_delivery_time`);
* **PPO**: the trained model acting greedily (``deterministic=True``).

Each policy gets two figures: a Monte-Carlo mean over ``--eval-episodes`` episodes with a Student-t 95 %
confidence interval (the same episode seeds for every policy: common random numbers), and its *exact* expected
delivery time. PPO's exact value is obtained by reading its greedy action in every reachable state of the
enumerated MDP (one batched forward pass) and solving the linear policy-evaluation system; because the chain's
delivery time depends only on the stored pairs and their ages, the greedy PPO policy is a fixed table over those
states, so this number is what an infinite evaluation would converge to. The gap to the optimum is reported
relative to the optimum, ``(E[T_PPO] - E[T*]) / E[T*]``.

**Agreement.** Over the states visited by PPO's own evaluation episodes (counted with multiplicity, one per
step), the fraction of steps where PPO's *effective* swap set (its requested swaps restricted to the feasible
nodes, which is what the env executes) equals the solver's action; the same restricted to *decision* steps
(states with at least one feasible swap, where there is a choice); and the fraction of decision steps where PPO's
action is *an* optimal action (its Q-value within ``1e-9`` relative of the state's best: the solver breaks ties
by picking one).

**Model decisions for learning.**

* Observation: the ages of the stored pairs are the Markov state of the delivery-time MDP, so PPO sees them
  one-hot encoded (:class:`OneHotAgeObservation`: per node pair, ``t_cut + 2`` indicator entries for "no pair"
  and ages ``0 .. t_cut`` rounds). Fidelities are dropped: they do not enter the delivery time.
* Action: the env's ``MultiBinary(n - 2)`` swap vector, one Bernoulli per intermediate node; greedy = each
  probability > 0.5.
* Discount ``gamma = 1``: the target is the undiscounted expected delivery time (reward -1 per round, episodes
  end with probability 1); GAE ``lambda = 0.95``.
* Hyper-parameters (:data:`PPO_HYPERPARAMETERS`): 8 envs x 256 steps per rollout, minibatch 256, 10 epochs,
  learning rate 3e-4 decayed linearly to 0, entropy coefficient 0.01, two hidden layers of 64 (tanh), one
  torch thread. Seeds: PPO and training envs from ``--seed + n``; evaluation episodes use seeds
  ``--eval-seed + k``, ``k = 0 .. eval_episodes - 1``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.exact import (
    EnumeratedMDP,
    MDPSolution,
    evaluate_policy,
    feasible_swaps,
    policy_from_function,
    q_values,
    solve_repeater_chain,
)
from ceas_gym.envs.repeater_chain import (
    ChainState,
    RepeaterChainConfig,
    RepeaterChainEnv,
    chain_state_from_observation,
    node_pair_index,
)
from evaluation.statistics import mean_ci95

#: PPO keyword arguments used for every chain (see the module docstring); ``learning_rate`` is made linear.
PPO_HYPERPARAMETERS: dict[str, Any] = {
    "n_steps": 256,
    "batch_size": 256,
    "n_epochs": 10,
    "learning_rate": 3e-4,
    "gamma": 1.0,
    "gae_lambda": 0.95,
    "ent_coef": 0.01,
    "clip_range": 0.2,
}
#: Number of parallel training envs (a ``DummyVecEnv``: one process).
N_TRAIN_ENVS = 8
#: Relative tolerance within which an action's Q-value counts as optimal.
OPTIMAL_TOLERANCE = 1e-9

#: A batched greedy action function: ``(batch, n_pairs)`` pair ages (-1 = none) -> ``(batch, n_action)`` 0/1.
BatchPredictor = Callable[[np.ndarray], np.ndarray]


def one_hot_ages(pair_age: np.ndarray, t_cut: int) -> np.ndarray:
    """One-hot encode pair ages: per node pair, ``t_cut + 2`` indicators for "none", age 0, ..., age ``t_cut``.

    Args:
        pair_age: ``(..., n_pairs)`` ages in rounds, -1 where no pair is stored.
        t_cut: Cutoff in rounds (ages lie in ``0 .. t_cut``).

    Returns:
        ``(..., n_pairs * (t_cut + 2))`` float32 array.

    Raises:
        ValueError: If an age is outside ``-1 .. t_cut``.
    """
    codes = np.rint(np.asarray(pair_age, dtype=np.float64)).astype(np.int64) + 1
    if codes.size and (codes.min() < 0 or codes.max() > t_cut + 1):
        raise ValueError(f"pair_age must lie in -1 .. t_cut = {t_cut}; got {pair_age!r}")
    encoded = np.eye(t_cut + 2, dtype=np.float32)[codes]
    return encoded.reshape(*codes.shape[:-1], -1)


class OneHotAgeObservation(gym.ObservationWrapper):
    """Replace the repeater chain's observation dict by the one-hot encoded pair ages (a flat ``Box``).

    Args:
        env: A :class:`~ceas_gym.envs.repeater_chain.RepeaterChainEnv` (possibly wrapped).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        config: RepeaterChainConfig = env.unwrapped.config
        self.t_cut = config.t_cut
        size = config.n_node_pairs * (config.t_cut + 2)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(size,), dtype=np.float32)

    def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """Encode ``observation["pair_age"]`` with :func:`one_hot_ages`."""
        return one_hot_ages(observation["pair_age"], self.t_cut)


def make_training_env(config: RepeaterChainConfig) -> gym.Env:
    """A ``RepeaterChainEnv`` with one-hot age observations (``max_steps`` truncation is inside the env)."""
    return OneHotAgeObservation(RepeaterChainEnv(config))


def state_pair_ages(states: Sequence[ChainState], n_nodes: int) -> np.ndarray:
    """The ``pair_age`` observation arrays of chain states.

    Args:
        states: Chain states ``((left, right, age), ...)``.
        n_nodes: Number of nodes.

    Returns:
        ``(len(states), n_nodes (n_nodes - 1) / 2)`` float32, -1 where no pair is stored.
    """
    index = node_pair_index(n_nodes)
    ages = np.full((len(states), n_nodes * (n_nodes - 1) // 2), -1.0, dtype=np.float32)
    rows = [s for s, state in enumerate(states) for _ in state]
    cols = [index[left, right] for state in states for left, right, _ in state]
    values = [age for state in states for _, _, age in state]
    ages[rows, cols] = values
    return ages


def effective_swaps(state: ChainState, action: np.ndarray) -> tuple[int, ...]:
    """The swaps the env executes for ``action`` in ``state``: requested nodes that are feasible, ascending.

    Args:
        state: The chain state.
        action: The ``MultiBinary`` vector (entry ``k`` is node ``k + 1``).

    Returns:
        The executed swapping nodes.
    """
    requested = {int(k) + 1 for k in np.flatnonzero(np.asarray(action).reshape(-1))}
    return tuple(node for node in feasible_swaps(state) if node in requested)


def greedy_policy_table(mdp: EnumeratedMDP, n_nodes: int, predict: BatchPredictor) -> np.ndarray:
    """The policy (action index per reachable state) of a deterministic swap-vector predictor.

    Args:
        mdp: The enumerated repeater-chain MDP.
        n_nodes: Number of nodes.
        predict: Batched greedy action function over pair ages (see :data:`BatchPredictor`).

    Returns:
        ``(n_states,)`` indices into ``mdp.actions[s]``.
    """
    actions = np.asarray(predict(state_pair_ages(mdp.states, n_nodes))).reshape(mdp.n_states, -1)
    return np.array(
        [mdp.actions[s].index(effective_swaps(state, actions[s])) for s, state in enumerate(mdp.states)],
        dtype=np.int64,
    )


def exact_delivery_time(mdp: EnumeratedMDP, policy: np.ndarray) -> float:
    """Exact expected delivery time (rounds, from the empty chain) of a deterministic policy table."""
    return -float(mdp.initial @ evaluate_policy(mdp, policy))


def optimal_action_mask(solution: MDPSolution) -> np.ndarray:
    """``(n_rows,)`` bool: whether each state-action row's Q-value is within tolerance of its state's best."""
    mdp = solution.mdp
    q = q_values(mdp, solution.values)
    best = np.maximum.reduceat(q, mdp.action_offset[:-1])
    return q >= (best - OPTIMAL_TOLERANCE * np.maximum(1.0, np.abs(best)))[mdp.row_state]


@dataclass(frozen=True)
class EpisodeResults:
    """Monte-Carlo evaluation of one policy table.

    Attributes:
        delivery_times: ``(episodes,)`` steps (rounds) until delivery (or truncation).
        visited_states: ``(total steps,)`` MDP state index of every decision taken.
    """

    delivery_times: np.ndarray
    visited_states: np.ndarray


def run_episodes(
    config: RepeaterChainConfig, mdp: EnumeratedMDP, policy: np.ndarray, episodes: int, seed: int
) -> EpisodeResults:
    """Play ``episodes`` episodes of ``RepeaterChainEnv`` with a policy table, seeds ``seed + k``.

    Args:
        config: The chain.
        mdp: Its enumerated MDP (the table's state numbering).
        policy: ``(n_states,)`` action indices.
        episodes: Number of episodes.
        seed: Seed of the first episode.

    Returns:
        Delivery times in rounds and the visited states.
    """
    env = RepeaterChainEnv(config)
    action_vectors = np.zeros((mdp.n_states, max(config.n_nodes - 2, 1)), dtype=np.int8)
    for s in range(mdp.n_states):
        nodes = np.asarray(mdp.actions[s][int(policy[s])], dtype=np.int64)
        action_vectors[s, nodes - 1] = 1
    times = np.zeros(episodes, dtype=np.int64)
    visited: list[int] = []
    for episode in range(episodes):
        observation, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            state = mdp.state_index[chain_state_from_observation(observation, config.n_nodes)]
            visited.append(state)
            observation, _, terminated, truncated, _ = env.step(action_vectors[state])
            times[episode] += 1
            done = terminated or truncated
    return EpisodeResults(times, np.asarray(visited, dtype=np.int64))


def train_ppo(config: RepeaterChainConfig, timesteps: int, seed: int) -> Any:
    """Train stable-baselines3 PPO on the chain (one-hot age observations, one torch thread).

    Args:
        config: The chain.
        timesteps: Environment steps (rounds) of training.
        seed: Seed of PPO and of the training envs.

    Returns:
        The trained ``stable_baselines3.PPO`` model.
    """
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    vec_env = make_vec_env(lambda: make_training_env(config), n_envs=N_TRAIN_ENVS, seed=seed)
    hyper = dict(PPO_HYPERPARAMETERS)
    initial_rate = float(hyper.pop("learning_rate"))
    model = PPO(
        "MlpPolicy",
        vec_env,
        learning_rate=lambda progress_remaining: initial_rate * progress_remaining,
        policy_kwargs={"net_arch": [64, 64]},
        seed=seed,
        device="cpu",
        verbose=0,
        **hyper,
    )
    model.learn(total_timesteps=timesteps)
    return model


def model_predictor(model: Any, t_cut: int) -> BatchPredictor:
    """A :data:`BatchPredictor` from a trained PPO model acting greedily on one-hot ages."""

    def predict(pair_age: np.ndarray) -> np.ndarray:
        actions, _ = model.predict(one_hot_ages(pair_age, t_cut), deterministic=True)
        return np.asarray(actions)

    return predict


@dataclass(frozen=True)
class PolicyRow:
    """One row of the results table (delivery times in rounds; ``train_cpu_seconds``: CPU time of training)."""

    n_nodes: int
    p: float
    p_s: float
    t_cut: int
    policy: str
    exact_delivery_time: float
    gap_to_optimum: float
    mc_mean: float
    mc_ci95: float
    episodes: int
    agreement_all_steps: float
    agreement_decision_steps: float
    optimal_action_rate: float
    train_timesteps: int
    train_cpu_seconds: float


def agreement_rates(
    solution: MDPSolution, policy: np.ndarray, visited: np.ndarray, optimal_rows: np.ndarray
) -> tuple[float, float, float]:
    """Agreement of a policy table with the solver on visited states (see the module docstring).

    Args:
        solution: The solved MDP.
        policy: ``(n_states,)`` action indices of the evaluated policy.
        visited: ``(steps,)`` visited state indices.
        optimal_rows: :func:`optimal_action_mask` of ``solution``.

    Returns:
        ``(agreement on all steps, agreement on decision steps, optimal-action rate on decision steps)``;
        NaN where there is no such step.
    """
    mdp = solution.mdp
    same = policy[visited] == solution.policy[visited]
    decision = np.diff(mdp.action_offset)[visited] > 1
    is_optimal = optimal_rows[mdp.action_offset[:-1][visited] + policy[visited]]
    all_rate = float(same.mean()) if same.size else float("nan")
    decision_rate = float(same[decision].mean()) if decision.any() else float("nan")
    optimal_rate = float(is_optimal[decision].mean()) if decision.any() else float("nan")
    return all_rate, decision_rate, optimal_rate


def compare_chain(
    config: RepeaterChainConfig, timesteps: int, episodes: int, seed: int, eval_seed: int
) -> list[PolicyRow]:
    """Train PPO on one chain and compare it with the exact optimum and swap-asap.

    Args:
        config: The chain.
        timesteps: PPO training steps (rounds).
        episodes: Monte-Carlo evaluation episodes per policy.
        seed: PPO seed.
        eval_seed: Seed of the first evaluation episode.

    Returns:
        Rows for exact-optimal, swap-asap and PPO.
    """
    solution = solve_repeater_chain(config)
    mdp = solution.mdp
    optimal_rows = optimal_action_mask(solution)
    optimum = -solution.initial_value
    start = time.process_time()
    model = train_ppo(config, timesteps, seed)
    train_cpu_seconds = time.process_time() - start
    tables = {
        "exact-optimal": (solution.policy, 0, 0.0),
        "swap-asap": (policy_from_function(mdp, feasible_swaps), 0, 0.0),
        "ppo": (
            greedy_policy_table(mdp, config.n_nodes, model_predictor(model, config.t_cut)),
            timesteps,
            train_cpu_seconds,
        ),
    }
    rows = []
    for name, (policy, steps, seconds) in tables.items():
        exact = exact_delivery_time(mdp, policy)
        played = run_episodes(config, mdp, policy, episodes, eval_seed)
        mean, half = mean_ci95(played.delivery_times)
        agree_all, agree_decision, optimal_rate = agreement_rates(solution, policy, played.visited_states, optimal_rows)
        rows.append(
            PolicyRow(
                n_nodes=config.n_nodes,
                p=config.p,
                p_s=config.p_s,
                t_cut=config.t_cut,
                policy=name,
                exact_delivery_time=exact,
                gap_to_optimum=(exact - optimum) / optimum,
                mc_mean=mean,
                mc_ci95=half,
                episodes=episodes,
                agreement_all_steps=agree_all,
                agreement_decision_steps=agree_decision,
                optimal_action_rate=optimal_rate,
                train_timesteps=steps,
                train_cpu_seconds=seconds,
            )
        )
    return rows


def markdown_table(rows: Sequence[PolicyRow]) -> str:
    """Render the results as a Markdown table (times in rounds, gap and agreement in %)."""
    lines = [
        "| n | p | p_s | t_cut | policy | exact E[T] (rounds) | gap to optimum | MC mean ± 95 % CI (rounds) "
        "| agreement (all steps) | agreement (decision steps) | optimal actions (decision steps) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.n_nodes} | {row.p:g} | {row.p_s:g} | {row.t_cut} | {row.policy} | {row.exact_delivery_time:.4f} "
            f"| {100 * row.gap_to_optimum:+.2f} % | {row.mc_mean:.3f} ± {row.mc_ci95:.3f} "
            f"| {100 * row.agreement_all_steps:.1f} % | {100 * row.agreement_decision_steps:.1f} % "
            f"| {100 * row.optimal_action_rate:.1f} % |"
        )
    return "\n".join(lines) + "\n"


def write_results(rows: Sequence[PolicyRow], out: Path, arguments: dict[str, Any]) -> None:
    """Write ``results.csv``, ``results.md`` and ``run.json`` (the arguments and hyper-parameters) to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    fields = list(asdict(rows[0]))
    with (out / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    (out / "results.md").write_text(markdown_table(rows))
    record = {"arguments": arguments, "ppo": PPO_HYPERPARAMETERS, "n_envs": N_TRAIN_ENVS, "net_arch": [64, 64]}
    (out / "run.json").write_text(json.dumps(record, indent=2))


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation.repeater_ppo",
        description="Train PPO on RepeaterChain instances and compare its delivery time with the exact optimum.",
    )
    parser.add_argument("--n", type=int, nargs="+", default=[3, 4], help="numbers of nodes (>= 3)")
    parser.add_argument("--p", type=float, default=0.5, help="elementary generation probability per round")
    parser.add_argument("--p-s", type=float, default=0.75, help="swap success probability")
    parser.add_argument("--t-cut", type=int, default=2, help="cutoff in rounds")
    parser.add_argument("--timesteps", type=int, default=50_000, help="PPO training steps (rounds) per chain")
    parser.add_argument("--eval-episodes", type=int, default=2000, help="Monte-Carlo episodes per policy")
    parser.add_argument("--seed", type=int, default=0, help="PPO seed (chain n uses seed + n)")
    parser.add_argument("--eval-seed", type=int, default=10_000, help="seed of the first evaluation episode")
    parser.add_argument("--out", type=Path, default=Path("results/repeater_ppo"), help="output folder")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2048 timesteps and 50 episodes")
    args = parser.parse_args(argv)
    if any(n < 3 for n in args.n):
        parser.error(f"--n: every chain needs an intermediate node (n >= 3); got {args.n}")
    if args.timesteps < 1 or args.eval_episodes < 2:
        parser.error("--timesteps must be >= 1 and --eval-episodes >= 2")
    if args.quick:
        args.timesteps, args.eval_episodes = 2048, 50
    return args


def main(argv: Sequence[str] | None = None) -> list[PolicyRow]:
    """Run the comparison for every ``--n`` and write the tables; returns the rows."""
    args = _parse_arguments(argv)
    rows: list[PolicyRow] = []
    for n in args.n:
        config = RepeaterChainConfig(n_nodes=n, p=args.p, p_s=args.p_s, t_cut=args.t_cut)
        rows.extend(compare_chain(config, args.timesteps, args.eval_episodes, args.seed + n, args.eval_seed))
    arguments = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
    write_results(rows, args.out, arguments)
    print(markdown_table(rows), end="")
    return rows


if __name__ == "__main__":
    main()
