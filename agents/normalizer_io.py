"""Observation-normaliser statistics beside a model, as plain arrays (no pickle).

``ceas-train`` saves a model's ``VecNormalize`` statistics as ``<stem>_vecnormalize.npz``: running mean, variance
and count of every normalised observation key and of the discounted return, plus the settings (``norm_obs``,
``norm_reward``, ``clip_obs``, ``clip_reward``, ``gamma``, ``epsilon``, the normalised keys) as one JSON string. It
is read with ``numpy.load(allow_pickle=False)``, so a statistics file from someone else is data, never code.

Trust boundary: a stable-baselines3 model ``.zip`` is trusted input, like any checkpoint (SB3 deserialises parts
of it with ``cloudpickle``); evaluate only models whose source you trust. Statistics files are not: older runs
saved a pickled ``VecNormalize`` (``*_vecnormalize.pkl``, or ``vecnormalize.pkl`` in the rl-baselines3-zoo
layout), and unpickling runs whatever the file says. Such a file is loaded only with ``trust_pickle=True``
(``--trust-pickle`` on ``ceas-eval`` and ``ceas-train``); ``python -m agents.normalizer_io FILE.pkl`` converts one
you trust into the ``.npz`` form once.
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ceas_gym.files import atomic_write_bytes

__all__ = [
    "LEGACY_SUFFIX",
    "NORMALIZER_SUFFIX",
    "NormalizerStatistics",
    "UntrustedFileError",
    "legacy_pickle_for",
    "load_normalizer",
    "normalizer_path_for",
    "read_statistics",
    "save_statistics",
]

NORMALIZER_SUFFIX = "_vecnormalize.npz"
LEGACY_SUFFIX = "_vecnormalize.pkl"
FORMAT_VERSION = 1


class UntrustedFileError(ValueError):
    """A file that would run code when loaded, refused because the caller did not say it is trusted."""


@dataclass(frozen=True)
class RunningStatistics:
    """Running mean, variance and count of one array (SB3's ``RunningMeanStd``).

    Attributes:
        mean: Running mean, the observation's shape.
        var: Running variance, the observation's shape.
        count: Number of samples seen (a float, as SB3 keeps it).
    """

    mean: np.ndarray
    var: np.ndarray
    count: float


@dataclass(frozen=True)
class NormalizerStatistics:
    """What a ``VecNormalize`` needs to normalise observations and rewards as it did in training.

    Attributes:
        norm_obs: Whether observations are normalised.
        norm_reward: Whether rewards are normalised.
        clip_obs: Normalised observations are clipped to ``[-clip_obs, clip_obs]``.
        clip_reward: Normalised rewards are clipped to ``[-clip_reward, clip_reward]``.
        gamma: Discount of the return whose variance scales rewards.
        epsilon: Added to variances before the square root.
        obs_keys: The normalised keys of a ``Dict`` observation, or None for a ``Box`` one.
        obs: Statistics per normalised key (``obs_keys`` order), or one entry for a ``Box`` observation.
        ret: Statistics of the discounted return.
    """

    norm_obs: bool
    norm_reward: bool
    clip_obs: float
    clip_reward: float
    gamma: float
    epsilon: float
    obs_keys: tuple[str, ...] | None
    obs: tuple[RunningStatistics, ...]
    ret: RunningStatistics

    @classmethod
    def from_vecnormalize(cls, normalizer: Any) -> NormalizerStatistics:
        """The statistics of a stable-baselines3 ``VecNormalize``."""
        rms = getattr(normalizer, "obs_rms", None) if normalizer.norm_obs else None  # absent without norm_obs
        keys = tuple(rms) if isinstance(rms, dict) else None
        moments = [rms[key] for key in keys] if keys is not None else ([rms] if rms is not None else [])
        return cls(
            norm_obs=bool(normalizer.norm_obs),
            norm_reward=bool(normalizer.norm_reward),
            clip_obs=float(normalizer.clip_obs),
            clip_reward=float(normalizer.clip_reward),
            gamma=float(normalizer.gamma),
            epsilon=float(normalizer.epsilon),
            obs_keys=keys,
            obs=tuple(_statistics(rms) for rms in moments),
            ret=_statistics(normalizer.ret_rms),
        )

    @property
    def obs_rms(self) -> dict[str, RunningStatistics] | RunningStatistics | None:
        """The observation statistics under SB3's name: per key for ``Dict`` observations (None without norm_obs)."""
        if not self.obs:
            return None
        if self.obs_keys is None:
            return self.obs[0]
        return dict(zip(self.obs_keys, self.obs, strict=True))

    def normalize_obs(self, observation: Any) -> Any:
        """Normalise one observation (or a batch) exactly as ``VecNormalize.normalize_obs`` does."""
        if not self.norm_obs:
            return observation
        if self.obs_keys is not None and isinstance(observation, dict):
            result = dict(observation)
            for key, moments in zip(self.obs_keys, self.obs, strict=True):
                result[key] = self._normalize(observation[key], moments)
            return result
        return self._normalize(observation, self.obs[0])

    def _normalize(self, values: np.ndarray, moments: RunningStatistics) -> np.ndarray:
        scaled = (values - moments.mean) / np.sqrt(moments.var + self.epsilon)
        return np.clip(scaled, -self.clip_obs, self.clip_obs).astype(np.float32)

    def wrap(self, venv: Any, training: bool = True) -> Any:
        """A ``VecNormalize`` around ``venv`` holding these statistics (to resume training or evaluate)."""
        from stable_baselines3.common.vec_env import VecNormalize

        normalizer = VecNormalize(
            venv,
            training=training,
            norm_obs=self.norm_obs,
            norm_reward=self.norm_reward,
            clip_obs=self.clip_obs,
            clip_reward=self.clip_reward,
            gamma=self.gamma,
            epsilon=self.epsilon,
            norm_obs_keys=list(self.obs_keys) if self.obs_keys is not None else None,
        )
        if not self.norm_obs:
            targets = []
        elif self.obs_keys is not None:
            targets = [normalizer.obs_rms[key] for key in self.obs_keys]
        else:
            targets = [normalizer.obs_rms]
        for target, moments in zip(targets, self.obs, strict=True):
            _assign(target, moments, "observation")
        _assign(normalizer.ret_rms, self.ret, "return")
        return normalizer


def _statistics(rms: Any) -> RunningStatistics:
    return RunningStatistics(
        np.array(rms.mean, dtype=np.float64), np.array(rms.var, dtype=np.float64), float(rms.count)
    )


def _assign(rms: Any, moments: RunningStatistics, what: str) -> None:
    if np.shape(rms.mean) != moments.mean.shape:
        raise ValueError(
            f"normaliser statistics: {what} shape {moments.mean.shape} does not fit the environment's "
            f"{np.shape(rms.mean)}"
        )
    rms.mean, rms.var, rms.count = moments.mean.copy(), moments.var.copy(), moments.count


def save_statistics(normalizer: Any, path: str | Path) -> Path:
    """Write the statistics of ``normalizer`` (a ``VecNormalize`` or :class:`NormalizerStatistics`) to ``path``.

    The file is written atomically (:func:`ceas_gym.files.atomic_write_bytes`).
    """
    stats = (
        normalizer
        if isinstance(normalizer, NormalizerStatistics)
        else NormalizerStatistics.from_vecnormalize(normalizer)
    )
    settings = {
        "format": FORMAT_VERSION,
        "norm_obs": stats.norm_obs,
        "norm_reward": stats.norm_reward,
        "clip_obs": stats.clip_obs,
        "clip_reward": stats.clip_reward,
        "gamma": stats.gamma,
        "epsilon": stats.epsilon,
        "obs_keys": list(stats.obs_keys) if stats.obs_keys is not None else None,
    }
    arrays: dict[str, np.ndarray] = {"settings": np.array(json.dumps(settings))}
    for index, moments in enumerate(stats.obs):
        arrays[f"obs_mean_{index}"] = moments.mean
        arrays[f"obs_var_{index}"] = moments.var
        arrays[f"obs_count_{index}"] = np.array(moments.count)
    arrays.update(ret_mean=stats.ret.mean, ret_var=stats.ret.var, ret_count=np.array(stats.ret.count))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def read_statistics(path: str | Path) -> NormalizerStatistics:
    """Read a file written by :func:`save_statistics` (never unpickling anything).

    Raises:
        ValueError: If the file is not such a file (the message names it and what is missing).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as content:
            arrays = {name: content[name] for name in content.files}
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{path}: not a normaliser statistics file ({error})") from None
    try:
        settings = json.loads(str(arrays["settings"]))
        if settings.get("format") != FORMAT_VERSION:
            raise ValueError(f"format {settings.get('format')!r}, expected {FORMAT_VERSION}")
        keys = settings["obs_keys"]
        count = len(keys) if keys is not None else sum(name.startswith("obs_mean_") for name in arrays)
        obs = tuple(
            RunningStatistics(arrays[f"obs_mean_{i}"], arrays[f"obs_var_{i}"], float(arrays[f"obs_count_{i}"]))
            for i in range(count)
        )
        return NormalizerStatistics(
            norm_obs=bool(settings["norm_obs"]),
            norm_reward=bool(settings["norm_reward"]),
            clip_obs=float(settings["clip_obs"]),
            clip_reward=float(settings["clip_reward"]),
            gamma=float(settings["gamma"]),
            epsilon=float(settings["epsilon"]),
            obs_keys=tuple(keys) if keys is not None else None,
            obs=obs,
            ret=RunningStatistics(arrays["ret_mean"], arrays["ret_var"], float(arrays["ret_count"])),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: not a normaliser statistics file (missing or bad entry: {error})") from None


def normalizer_path_for(model_path: str | Path) -> Path | None:
    """``<stem>_vecnormalize.npz`` beside ``model_path``, else ``vecnormalize.npz`` in its folder, else None."""
    model_path = Path(model_path)
    for candidate in (
        model_path.with_name(model_path.stem + NORMALIZER_SUFFIX),
        model_path.with_name("vecnormalize.npz"),
    ):
        if candidate.is_file():
            return candidate
    return None


def legacy_pickle_for(model_path: str | Path) -> Path | None:
    """A pickled ``VecNormalize`` beside ``model_path`` (``<stem>_vecnormalize.pkl`` or ``vecnormalize.pkl``)."""
    model_path = Path(model_path)
    for candidate in (model_path.with_name(model_path.stem + LEGACY_SUFFIX), model_path.with_name("vecnormalize.pkl")):
        if candidate.is_file():
            return candidate
    return None


def load_normalizer(model_path: str | Path, trust_pickle: bool = False) -> NormalizerStatistics | None:
    """The normaliser statistics saved beside a model, or None when it was trained without one.

    Args:
        model_path: The model's ``.zip``.
        trust_pickle: Load a legacy pickled ``VecNormalize`` when no ``.npz`` lies beside the model. Unpickling
            runs code from the file: pass True only for files whose source you trust.

    Raises:
        UntrustedFileError: If only a pickled normaliser lies beside the model and ``trust_pickle`` is False.
        ValueError: If the ``.npz`` file is damaged.
    """
    found = normalizer_path_for(model_path)
    if found is not None:
        return read_statistics(found)
    legacy = legacy_pickle_for(model_path)
    if legacy is None:
        return None
    if not trust_pickle:
        raise UntrustedFileError(
            f"{legacy}: a pickled VecNormalize, and unpickling runs code from the file; refused. If you trust its "
            "source, pass --trust-pickle (trust_pickle=True), or convert it once with "
            f"'python -m agents.normalizer_io {legacy}'"
        )
    with legacy.open("rb") as handle:
        return NormalizerStatistics.from_vecnormalize(pickle.load(handle))  # trusted by the caller (trust_pickle=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Convert trusted ``*_vecnormalize.pkl`` files into ``*_vecnormalize.npz`` beside them."""
    parser = argparse.ArgumentParser(
        prog="python -m agents.normalizer_io",
        description="Convert pickled VecNormalize files you trust (unpickling runs their code) into .npz statistics.",
    )
    parser.add_argument("files", nargs="+", type=Path, help="*_vecnormalize.pkl or vecnormalize.pkl files")
    args = parser.parse_args(argv)
    for legacy in args.files:
        if legacy.suffix != ".pkl" or not legacy.is_file():
            parser.error(f"{legacy}: expected an existing .pkl file")
        with legacy.open("rb") as handle:
            stats = NormalizerStatistics.from_vecnormalize(pickle.load(handle))  # the user vouches for the file
        target = legacy.with_suffix(".npz")
        save_statistics(stats, target)
        print(f"{legacy} -> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
