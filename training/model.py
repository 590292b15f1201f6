"""The algorithm, policy, callbacks and model of a ``ceas-train`` run, built from its resolved configuration."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from training import hyperparams as hp
from training.callbacks import (
    CheckpointCallback,
    HParamsCallback,
    InfoMetricsCallback,
    SaveVecNormalizeCallback,
    with_domain_metrics,
)
from training.envs import make_training_envs
from training.residual import load_residual_config, zero_action_mean

EVAL_SEED_OFFSET = 1000
"""The evaluation environment's seed is the run's seed plus this."""


def choose_algorithm(env: gym.Env) -> type:
    """``MaskablePPO`` when the env has ``action_masks()``, else ``PPO``."""
    if callable(getattr(env.unwrapped, "action_masks", None)):
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    from stable_baselines3 import PPO

    return PPO


def choose_policy(requested: str, observation_space: spaces.Space) -> str:
    """The policy class name that fits ``observation_space``.

    Raises:
        HyperparameterError: When an ``MlpPolicy`` is asked for on ``Dict`` observations.
    """
    is_dict = isinstance(observation_space, spaces.Dict)
    if is_dict and requested == "MlpPolicy":
        raise hp.HyperparameterError(
            "policy: MlpPolicy needs a flat observation; set flatten_observation:true or use MultiInputPolicy"
        )
    if not is_dict and requested == "MultiInputPolicy":
        print("note: the observation is a flat Box; using MlpPolicy instead of MultiInputPolicy", file=sys.stderr)
        return "MlpPolicy"
    return requested


def algorithm_class(name: str) -> type:
    """``PPO`` or ``MaskablePPO`` by name."""
    if name == "MaskablePPO":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    from stable_baselines3 import PPO

    return PPO


def build_callbacks(args: argparse.Namespace, run: Path, config: dict[str, Any], n_envs: int) -> list[Any]:
    """Info metrics, periodic checkpoints and periodic evaluation (saving the best model)."""
    info_keywords = config["hyperparams"].get("info_keywords", [])
    hparams = {"algorithm": config["algorithm"], "env_id": config["env_id"], "seed": config["seed"]}
    hparams.update({key: value for key, value in config["hyperparams"].items() if key != "info_keywords"})
    hparams.update({f"env_kwargs.{key}": value for key, value in config["env_kwargs"].items()})
    callbacks: list[Any] = [InfoMetricsCallback(info_keywords)]
    if args.resume is None:  # a resumed run keeps the record of its first start (once per run)
        callbacks.append(HParamsCallback(hparams))
    if args.save_freq > 0:
        callbacks.append(CheckpointCallback(max(args.save_freq // n_envs, 1), run / "checkpoints"))
    if args.eval_freq > 0:
        hyper = config["hyperparams"]
        eval_env = make_training_envs(
            config["env_id"],
            1,
            config["seed"] + EVAL_SEED_OFFSET,
            config["env_kwargs"],
            "dummy",
            load_residual_config(hyper.get("residual")),
        )
        normalize = hp.normalize_kwargs(hyper.get("normalize"))
        if normalize is not None:
            from stable_baselines3.common.vec_env import VecNormalize

            eval_env = VecNormalize(eval_env, training=False, norm_reward=False, gamma=hyper.get("gamma", 0.99))
        if config["algorithm"] == "MaskablePPO":
            from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback as EvalCallback
        else:
            from stable_baselines3.common.callbacks import EvalCallback
        best = run / "best_model"
        callbacks.append(
            with_domain_metrics(EvalCallback, info_keywords)(
                eval_env,
                n_eval_episodes=args.eval_episodes,
                eval_freq=max(args.eval_freq // n_envs, 1),
                best_model_save_path=str(best),
                log_path=str(best),
                deterministic=True,
                callback_on_new_best=SaveVecNormalizeCallback(best / "best_model.zip"),
                verbose=args.verbose,
            )
        )
    return callbacks


def build_model(config: dict[str, Any], run: Path, args: argparse.Namespace, resume_from: Path | None) -> Any:
    """Create (or load, when resuming) the model with its vectorised, possibly normalised, environments."""
    from stable_baselines3.common.vec_env import VecNormalize

    from agents.normalizer_io import load_normalizer

    hyper = config["hyperparams"]
    vec_env = hyper.get("vec_env", "dummy")  # runs recorded before the key existed used DummyVecEnv
    residual = load_residual_config(hyper.get("residual"))
    venv = make_training_envs(
        config["env_id"],
        hyper["n_envs"],
        config["seed"],
        config["env_kwargs"],
        vec_env,
        residual,
        batch_workers=hyper.get("batch_workers", 1),
    )
    normalize = hp.normalize_kwargs(hyper.get("normalize"))
    algorithm = algorithm_class(config["algorithm"])
    tensorboard = str(run / "tensorboard")
    if resume_from is not None:
        if normalize is not None:  # the chosen checkpoint has loadable statistics (find_checkpoint checked them)
            venv = load_normalizer(resume_from, trust_pickle=args.trust_pickle).wrap(venv, training=True)
        return algorithm.load(resume_from, env=venv, device=args.device, tensorboard_log=tensorboard)
    if normalize is not None:
        venv = VecNormalize(venv, gamma=hyper.get("gamma", 0.99), **normalize)
    kwargs = {key: value for key, value in hyper.items() if key not in hp.META_KEYS}
    kwargs["policy_kwargs"] = hp.parse_policy_kwargs(hyper.get("policy_kwargs"))
    model = algorithm(
        hyper["policy"],
        venv,
        seed=config["seed"],
        device=args.device,
        tensorboard_log=tensorboard,
        verbose=args.verbose,
        **kwargs,
    )
    if residual is not None:
        zero_action_mean(model)  # the untrained policy acts exactly as its baseline
    return model
