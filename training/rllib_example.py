r"""Train PPO from Ray RLlib on a registered ceas-gym environment: an example of using the suite outside SB3.

Example::

    python -m training.rllib_example --env ceas_gym/EntanglementScheduling-Lite-v0 --iterations 10
    python -m training.rllib_example --env ceas_gym/EntanglementScheduling-Small-v0 --iterations 5 \
        --address auto --num-env-runners 4     # on a running Ray cluster

Needs RLlib (``pip install "ray[rllib]"``), which pins its own gymnasium version: install it in an environment of
its own (see docs/ray.md). Decisions:

* The environment is created in every RLlib env runner by an env creator that imports ceas-gym first (so the ids
  are registered there) and wraps it with :func:`ceas_gym.wrappers.for_frameworks` (``flatten=True``): one flat
  ``Box`` observation for RLlib's default PPO network, ``[-1, 1]`` actions, ``MultiDiscrete`` for ``MultiBinary``.
  That works for every registered id unchanged. Further ``--env-kwargs k:v`` go to ``gymnasium.make``.
* RLlib's new API stack (``RLModule`` + ``Learner``) with torch, one CPU learner; ``--train-batch`` environment
  steps per iteration, ``--minibatch`` samples per SGD step, ``--epochs`` passes over each batch.
* Each iteration prints the timesteps so far and the mean return of the episodes finished in it; ``--out`` also
  writes them as CSV. At the end the trained module is evaluated greedily (mean action) next to
  earliest-expiring-first on ``--eval-seeds`` fresh episodes, with the same seeds for both.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ceas_gym.help_text import plain_text

ENV_NAME = "ceas_gym_rllib_env"


def build_parser() -> argparse.ArgumentParser:
    """The example's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m training.rllib_example",
        description=plain_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env", default="ceas_gym/EntanglementScheduling-Lite-v0", help="registered env id")
    parser.add_argument("--env-kwargs", nargs="+", default=[], metavar="K:V", help="environment keyword arguments")
    parser.add_argument("--iterations", type=int, default=10, help="RLlib training iterations")
    parser.add_argument("--train-batch", type=int, default=2000, help="environment steps per iteration")
    parser.add_argument("--minibatch", type=int, default=128, help="samples per SGD minibatch")
    parser.add_argument("--epochs", type=int, default=10, help="passes over each batch")
    parser.add_argument("--num-env-runners", type=int, default=1, help="RLlib env runner processes")
    parser.add_argument("--seed", type=int, default=0, help="seed of RLlib and its env runners")
    parser.add_argument("--eval-seeds", type=int, default=5, help="evaluation episodes (seeds 0..n-1)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: a private local instance)")
    parser.add_argument("--out", type=Path, default=None, help="CSV of the per-iteration returns")
    return parser


def make_env(env_id: str, env_kwargs: dict[str, Any], wrapped: bool = True) -> Any:
    """The environment RLlib trains on (``ceas_gym`` imported here, so this works in any process).

    Args:
        env_id: A registered id.
        env_kwargs: Keyword arguments of ``gymnasium.make``.
        wrapped: Wrap for RLlib (:func:`ceas_gym.wrappers.for_frameworks`, ``flatten=True``); False gives the
            environment as registered (for the EEF reference).
    """
    import gymnasium as gym

    import ceas_gym  # noqa: F401  (registers the environments in this process)
    from ceas_gym.wrappers import for_frameworks

    env = gym.make(env_id, **env_kwargs)
    return for_frameworks(env, flatten=True) if wrapped else env


def build_algorithm(args: argparse.Namespace, env_kwargs: dict[str, Any]) -> Any:
    """An RLlib PPO algorithm on ``args.env``."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.tune.registry import register_env

    env_id = args.env
    register_env(ENV_NAME, lambda _config: make_env(env_id, env_kwargs))
    config = (
        PPOConfig()
        .environment(ENV_NAME)
        .framework("torch")
        .env_runners(num_env_runners=args.num_env_runners, num_envs_per_env_runner=1)
        .training(
            train_batch_size_per_learner=args.train_batch,
            minibatch_size=args.minibatch,
            num_epochs=args.epochs,
            lr=3e-4,
            gamma=0.99,
            lambda_=0.95,
        )
        .debugging(seed=args.seed)
    )
    return config.build_algo()


def greedy_action(module: Any, observation: np.ndarray, action_space: Any) -> np.ndarray:
    """The mean action of RLlib's Gaussian policy head for one observation, mapped into ``action_space``.

    RLlib's policy acts in [-1, 1] and its env runners rescale to the space's bounds (``normalize_actions``);
    the same rescaling (``unsquash_action``) is applied here.
    """
    import torch
    from ray.rllib.utils.spaces.space_utils import unsquash_action

    with torch.no_grad():
        output = module.forward_inference({"obs": torch.as_tensor(observation[None], dtype=torch.float32)})
    inputs = output["action_dist_inputs"][0].numpy()
    mean = inputs[: inputs.shape[0] // 2]  # (mean, log_std) halves of the diagonal Gaussian's inputs
    return np.asarray(unsquash_action(mean, action_space), dtype=np.float32)


def evaluate(module: Any, env_id: str, env_kwargs: dict[str, Any], seeds: int) -> dict[str, float]:
    """Mean return over ``seeds`` episodes of the trained module (greedy) and of EEF, on the same seeds."""
    from agents.baselines import EarliestExpiringFirst

    envs = {"rllib-ppo": make_env(env_id, env_kwargs), "eef": make_env(env_id, env_kwargs, wrapped=False)}
    eef = EarliestExpiringFirst(envs["eef"])
    returns: dict[str, list[float]] = {"rllib-ppo": [], "eef": []}
    for seed in range(seeds):
        for name, env in envs.items():
            observation, info = env.reset(seed=seed)
            eef.reset(seed)
            total, done = 0.0, False
            while not done:
                if name == "eef":
                    action = eef.act(observation, info)
                else:
                    action = greedy_action(module, observation, env.action_space)
                observation, reward, terminated, truncated, info = env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns[name].append(total)
    return {name: float(np.mean(values)) for name, values in returns.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from ceas_gym.config import ConfigError
    from ceas_gym.plugins import PluginError, resolve_env_id
    from training.hyperparams import HyperparameterError, parse_key_values

    try:
        resolve_env_id(args.env)
        env_kwargs = parse_key_values(args.env_kwargs, "--env-kwargs")
    except (ConfigError, PluginError, HyperparameterError) as error:
        parser.error(str(error))
    for name in ("iterations", "train_batch", "minibatch", "epochs", "eval_seeds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} = {getattr(args, name)}: must be >= 1")
    try:
        import ray
        from ray.rllib.algorithms.ppo import PPOConfig  # noqa: F401
    except ImportError:
        parser.error('RLlib is not installed: pip install "ray[rllib]" (in an environment of its own, see docs/ray.md)')
    ray.init(address=args.address, include_dashboard=False, configure_logging=False)
    rows = []
    try:
        algorithm = build_algorithm(args, env_kwargs)
        for iteration in range(1, args.iterations + 1):
            result = algorithm.train()
            runners = result.get("env_runners", {})
            steps = result.get("num_env_steps_sampled_lifetime", runners.get("num_env_steps_sampled_lifetime", 0))
            row = {
                "iteration": iteration,
                "timesteps": int(steps),
                "episode_return_mean": float(runners.get("episode_return_mean", float("nan"))),
            }
            rows.append(row)
            print(f"iteration {iteration:3d}  timesteps {int(steps):7d}  return {row['episode_return_mean']:9.2f}")
            sys.stdout.flush()
        module = algorithm.get_module()
        scores = evaluate(module, args.env, env_kwargs, args.eval_seeds)
        print(f"evaluation over seeds 0-{args.eval_seeds - 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()))
        algorithm.stop()
    finally:
        ray.shutdown()
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
