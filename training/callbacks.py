"""Training callbacks: environment metrics to TensorBoard, resumable checkpoints, normaliser beside the best model.

:class:`InfoMetricsCallback` logs, for every configured scalar key of the env's ``info`` dict (keys an env does
not report are skipped):

* ``env/<key>``: the mean over the episodes that ended during the last rollout of the value at episode end
  (written only when an episode ended);
* ``env/<key>_rollout_mean``: the mean over all steps (and environments) of the last rollout.

Both are recorded at the end of each rollout and written by SB3's logger with the rollout's ``time/`` and
``rollout/`` scalars, at x = ``num_timesteps``. :func:`with_domain_metrics` makes the evaluation callback log the
same keys over its evaluation episodes (``eval/<key>``), and :class:`HParamsCallback` records the hyper-parameters
(TensorBoard's HPARAMS tab).

:class:`CheckpointCallback` saves every ``save_freq`` calls (one call = one step of every parallel env, so
``n_envs`` timesteps) a resumable checkpoint with :func:`training.checkpoints.save_checkpoint`: model, normaliser
statistics and a JSON record, each written atomically; ``ceas-train --resume`` takes the newest one that loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.normalizer_io import NORMALIZER_SUFFIX, save_statistics
from training.checkpoints import save_checkpoint


def scalar_values(infos: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    """Values of ``key`` in those ``infos`` where it is a real scalar (bools count as 0/1). ``(k,)`` float64."""
    return np.array([float(info[key]) for info in infos if isinstance(info.get(key), Real)], dtype=np.float64)


class InfoMetricsCallback(BaseCallback):
    """Log the env's scalar ``info`` metrics: episode-end values and per-rollout means, under ``env/``.

    Args:
        keys: The ``info`` keys to log.
    """

    def __init__(self, keys: Sequence[str], verbose: int = 0) -> None:
        super().__init__(verbose)
        self.keys = tuple(keys)
        self._sums = dict.fromkeys(self.keys, 0.0)
        self._counts = dict.fromkeys(self.keys, 0)
        self._episode_ends: dict[str, list[float]] = {key: [] for key in self.keys}

    def _on_rollout_start(self) -> None:
        self._sums = dict.fromkeys(self.keys, 0.0)
        self._counts = dict.fromkeys(self.keys, 0)
        self._episode_ends = {key: [] for key in self.keys}

    def _on_step(self) -> bool:
        infos = self.locals["infos"]
        dones = np.asarray(self.locals["dones"], dtype=bool)
        finished = [info for info, done in zip(infos, dones, strict=True) if done]
        for key in self.keys:
            values = scalar_values(infos, key)
            self._sums[key] += float(values.sum())
            self._counts[key] += values.size
            if finished:
                self._episode_ends[key].extend(scalar_values(finished, key).tolist())
        return True

    def _on_rollout_end(self) -> None:
        for key in self.keys:
            if self._counts[key]:
                self.logger.record(f"env/{key}_rollout_mean", self._sums[key] / self._counts[key])
            if self._episode_ends[key]:
                self.logger.record(f"env/{key}", float(np.mean(self._episode_ends[key])))


def with_domain_metrics(eval_callback_class: type, keys: Sequence[str]) -> type:
    """An evaluation callback class that also logs the ``info`` keys ``keys`` of its episodes.

    ``eval_callback_class`` is SB3's ``EvalCallback`` or sb3-contrib's ``MaskableEvalCallback``; the subclass logs,
    for each key, the mean over the evaluation episodes of its value at episode end, as ``eval/<key>``. The values
    are recorded while the evaluation runs, so SB3 writes them with ``eval/mean_reward`` at the same x.
    """

    class DomainMetricsEvalCallback(eval_callback_class):  # type: ignore[misc, valid-type]
        def _log_success_callback(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
            super()._log_success_callback(locals_, globals_)
            if locals_["done"]:
                info = locals_["info"]
                for key in keys:
                    if isinstance(info.get(key), Real):
                        self.logger.record_mean(f"eval/{key}", float(info[key]))

    DomainMetricsEvalCallback.__name__ = f"DomainMetrics{eval_callback_class.__name__}"
    return DomainMetricsEvalCallback


class HParamsCallback(BaseCallback):
    """Record the run's hyper-parameters in TensorBoard's HPARAMS tab at the start of training.

    Args:
        hparams: Name to value; values that are not numbers, strings or bools are recorded as their ``str``.
    """

    METRICS = ("rollout/ep_rew_mean", "eval/mean_reward")
    """The scalars the HPARAMS tab shows next to each run."""

    def __init__(self, hparams: dict[str, Any], verbose: int = 0) -> None:
        super().__init__(verbose)
        self.hparams = {
            key: value if isinstance(value, (bool, int, float, str)) else str(value) for key, value in hparams.items()
        }

    def _on_training_start(self) -> None:
        from stable_baselines3.common.logger import HParam

        metrics = dict.fromkeys(self.METRICS, 0.0)
        self.logger.record("hparams", HParam(self.hparams, metrics), exclude=("stdout", "log", "json", "csv"))

    def _on_step(self) -> bool:
        return True


def save_vecnormalize(model: Any, model_path: Path) -> None:
    """Save the statistics of the model's ``VecNormalize`` (if any) beside ``model_path``, as plain arrays.

    The file is ``<stem>_vecnormalize.npz`` (:mod:`agents.normalizer_io`), written atomically.
    """
    normalizer = model.get_vec_normalize_env()
    if normalizer is not None:
        save_statistics(normalizer, model_path.with_name(model_path.stem + NORMALIZER_SUFFIX))


class CheckpointCallback(BaseCallback):
    """Save a resumable checkpoint every ``save_freq`` calls (``save_freq * n_envs`` timesteps).

    Args:
        save_freq: Calls between checkpoints (>= 1).
        folder: Where to write them.
    """

    def __init__(self, save_freq: int, folder: Path, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.save_freq = max(int(save_freq), 1)
        self.folder = Path(folder)

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            path = save_checkpoint(self.model, self.folder)
            if self.verbose:
                print(f"checkpoint: {path}")
        return True


class SaveVecNormalizeCallback(BaseCallback):
    """Used as ``EvalCallback(callback_on_new_best=...)``: save the normaliser beside the new best model.

    Args:
        model_path: Path of the best model's zip (``best_model/best_model.zip``).
    """

    def __init__(self, model_path: Path, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.model_path = Path(model_path)

    def _on_step(self) -> bool:
        save_vecnormalize(self.model, self.model_path)
        return True
