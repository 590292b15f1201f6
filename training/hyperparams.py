"""Hyper-parameters for ``ceas-train``: the YAML file, command-line ``k:v`` overrides and their validation.

The file is keyed by environment id, zoo style, with a ``default:`` entry; an environment's entry overrides the
defaults key by key, and ``--hyperparams k:v`` overrides both. Values on the command line are parsed as YAML
scalars or flow mappings (``gamma:0.95``, ``normalize:{norm_reward: false}``), the way rl-baselines3-zoo's
``StoreDict`` reads them.

Keys are either keyword arguments of the algorithm's constructor (``PPO`` / ``MaskablePPO``) or the meta keys
listed in :data:`META_KEYS`; anything else is a :class:`HyperparameterError` naming the closest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

DEFAULT_FILE = Path(__file__).with_name("hyperparams") / "ppo.yml"

# Keys handled by ceas-train itself rather than passed to the algorithm.
META_KEYS = frozenset(
    {
        "policy",
        "normalize",
        "n_envs",
        "n_timesteps",
        "flatten_observation",
        "info_keywords",
        "vec_env",
        "batch_workers",
        "env_kwargs",
        "pretrain",
        "residual",
    }
)
# Values of the ``vec_env`` meta key (and of ``ceas-train --vec-env``).
VEC_ENVS = ("dummy", "subproc", "batched")
# Constructor arguments ceas-train sets itself (from flags), so they may not appear in the file.
RESERVED = frozenset({"self", "env", "policy", "tensorboard_log", "verbose", "seed", "device", "_init_setup_model"})


class HyperparameterError(ValueError):
    """A hyper-parameter key or value that ceas-train cannot use."""


def parse_key_values(items: Iterable[str], flag: str) -> dict[str, Any]:
    """Parse ``k:v`` strings, each value as a YAML scalar or flow mapping.

    Args:
        items: Strings such as ``"gamma:0.95"`` or ``"normalize:{norm_reward: false}"``.
        flag: The flag the items came from, for error messages.

    Raises:
        HyperparameterError: On an item without ``:`` or a value YAML cannot read.
    """
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition(":")
        if not sep or not key:
            raise HyperparameterError(f"{flag} {item!r}: expected key:value, e.g. gamma:0.95")
        try:
            parsed[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as error:
            raise HyperparameterError(f"{flag} {item!r}: the value is not valid YAML ({error})") from None
    return parsed


def algorithm_keys(algorithm: type) -> frozenset[str]:
    """Keyword arguments of ``algorithm``'s constructor that a hyper-parameter file may set."""
    names = set(inspect.signature(algorithm.__init__).parameters) - RESERVED
    return frozenset(name for name in names if not name.startswith("_"))


def load_file(path: str | Path = DEFAULT_FILE) -> dict[str, dict[str, Any]]:
    """Read a hyper-parameter YAML file (a mapping of env id -> mapping)."""
    with Path(path).open(encoding="utf-8") as handle:
        content = yaml.safe_load(handle) or {}
    if not isinstance(content, dict) or not all(isinstance(value, dict) for value in content.values()):
        raise HyperparameterError(f"{path}: expected a mapping of environment id -> mapping of hyper-parameters")
    return content


def merge(table: Mapping[str, Mapping[str, Any]], env_id: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``table["default"]``, then ``table[env_id]``, then ``overrides``, key by key (later wins)."""
    return {**table.get("default", {}), **table.get(env_id, {}), **overrides}


def validate_keys(hyperparams: Mapping[str, Any], algorithm: type) -> None:
    """Raise :class:`HyperparameterError` for a key that is neither a meta key nor a constructor argument."""
    valid = META_KEYS | algorithm_keys(algorithm)
    for key in hyperparams:
        if key not in valid:
            close = difflib.get_close_matches(key, sorted(valid), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise HyperparameterError(
                f"unknown hyper-parameter {key!r} for {algorithm.__name__}{hint} (valid: {', '.join(sorted(valid))})"
            )


def evaluate_policy_kwargs(value: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Turn ``policy_kwargs`` (a dict literal string, zoo style, or a mapping) into a dict.

    The string is evaluated with only ``dict``, ``nn`` (``torch.nn``) and ``th`` (``torch``) in scope.

    Raises:
        HyperparameterError: If the string does not evaluate to a dict.
    """
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    try:
        result = eval(value, {"__builtins__": {}}, {"dict": dict, "nn": torch.nn, "th": torch})
    except Exception as error:
        raise HyperparameterError(f"policy_kwargs = {value!r} could not be evaluated: {error}") from None
    if not isinstance(result, dict):
        raise HyperparameterError(f"policy_kwargs = {value!r} must evaluate to a dict")
    return result


def batch_workers(value: Any, vec_env: str, n_envs: int) -> int:
    """The ``batch_workers`` entry: worker processes the batched environment's copies are split over.

    Raises:
        HyperparameterError: Unless it is an integer from 1 to ``n_envs``, and 1 unless ``vec_env`` is batched.
    """
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= n_envs:
        raise HyperparameterError(f"batch_workers = {value!r}: expected an integer from 1 to n_envs = {n_envs}")
    if value > 1 and vec_env != "batched":
        raise HyperparameterError(f"batch_workers = {value}: needs vec_env batched, not {vec_env!r}")
    return value


def normalize_kwargs(value: bool | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``VecNormalize`` keyword arguments from the ``normalize`` entry, or None for no normalisation.

    Raises:
        HyperparameterError: If the entry is neither a bool nor a mapping.
    """
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    raise HyperparameterError(f"normalize = {value!r}: expected true, false or a mapping of VecNormalize arguments")


def load_baseline_entry(key: str, value: Mapping[str, Any] | None, config_class: type, example: str) -> Any:
    """Read a hyper-parameter entry that configures a registered baseline policy (``pretrain``, ``residual``).

    Args:
        key: The entry's name, for messages.
        value: The entry: a mapping of ``config_class`` field names, or None (absent or null).
        config_class: A dataclass with a ``policy`` field (a registered policy name); it checks its own values.
        example: An example mapping shown when ``value`` is not one.

    Returns:
        ``config_class(**value)``, or None when the entry is absent or null.

    Raises:
        HyperparameterError: On a value that is not a mapping, an unknown key, an out-of-range value (raised by
            ``config_class``), or a policy name that is not registered.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise HyperparameterError(f"{key} = {value!r}: expected a mapping such as {example}")
    allowed = [field.name for field in dataclasses.fields(config_class)]
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise HyperparameterError(f"{key}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    config = config_class(**value)
    from agents.registry import POLICIES, is_model_path

    if is_model_path(config.policy) or config.policy not in POLICIES.names():
        raise HyperparameterError(
            f"{key}.policy = {config.policy!r}: not a registered policy; choose one of {', '.join(POLICIES.names())}"
        )
    return config
