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
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from training import policy_kwargs

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


def parse_policy_kwargs(value: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Turn ``policy_kwargs`` (a mapping, or a ``dict(...)`` string, zoo style) into a dict, by parsing only.

    See :mod:`training.policy_kwargs`: classes are named from an allow-list; nothing is evaluated.

    Raises:
        HyperparameterError: On anything but the accepted forms (the message names what was found).
    """
    try:
        return policy_kwargs.parse_policy_kwargs(value)
    except policy_kwargs.PolicyKwargsError as error:
        raise HyperparameterError(str(error)) from None


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


POLICIES = ("MultiInputPolicy", "MlpPolicy")
"""Policy classes ``ceas-train`` builds (Dict observations, or flat ones)."""


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise HyperparameterError(f"{key} = {value!r}: expected a finite number")
    return float(value)


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HyperparameterError(f"{key} = {value!r}: expected an integer >= 1")
    return value


def _check_net_arch(value: Any) -> None:
    """``net_arch``: a list of layer sizes, or ``{pi: [...], vf: [...]}``; every size an integer >= 1."""
    layers = value.items() if isinstance(value, Mapping) else [("", value)]
    for head, sizes in layers:
        if head not in ("", "pi", "vf", "qf"):
            raise HyperparameterError(f"policy_kwargs.net_arch: unknown head {head!r}; allowed: pi, vf")
        where = f"policy_kwargs.net_arch{'.' + head if head else ''}"
        if not isinstance(sizes, list | tuple):
            raise HyperparameterError(f"{where} = {sizes!r}: expected a list of layer sizes, e.g. [64, 64]")
        for index, size in enumerate(sizes):
            _positive_int(f"{where}[{index}]", size)


def check_ranges(hyperparams: Mapping[str, Any]) -> None:
    """Check the values of the PPO hyper-parameters before a model is built.

    ``gamma`` and ``gae_lambda`` in (0, 1]; ``clip_range`` and ``max_grad_norm`` finite and > 0; ``learning_rate``
    finite and >= 0 (0 freezes the policy: PPO then only collects and evaluates); ``clip_range_vf`` and
    ``target_kl`` None or finite and > 0; ``ent_coef`` and ``vf_coef`` finite and >= 0; ``n_steps``,
    ``batch_size``, ``n_epochs``, ``n_envs``, ``n_timesteps`` integers >= 1 and ``batch_size <= n_steps x
    n_envs``; ``policy`` one of :data:`POLICIES`; ``net_arch`` sizes integers >= 1. Keys that are absent keep
    SB3's defaults, which are valid.

    Raises:
        HyperparameterError: Naming the first key out of range and what is allowed.
    """
    for key in ("gamma", "gae_lambda"):
        if key in hyperparams and not 0.0 < _number(key, hyperparams[key]) <= 1.0:
            raise HyperparameterError(f"{key} = {hyperparams[key]!r}: allowed is (0, 1]")
    for key in ("clip_range", "max_grad_norm"):
        if key in hyperparams and not _number(key, hyperparams[key]) > 0.0:
            raise HyperparameterError(f"{key} = {hyperparams[key]!r}: allowed is a finite number > 0")
    if "learning_rate" in hyperparams and not _number("learning_rate", hyperparams["learning_rate"]) >= 0.0:
        raise HyperparameterError(
            f"learning_rate = {hyperparams['learning_rate']!r}: allowed is a finite number >= 0 (0 freezes the policy)"
        )
    for key in ("clip_range_vf", "target_kl"):
        if hyperparams.get(key) is not None and not _number(key, hyperparams[key]) > 0.0:
            raise HyperparameterError(f"{key} = {hyperparams[key]!r}: allowed is null or a finite number > 0")
    for key in ("ent_coef", "vf_coef"):
        if key in hyperparams and not _number(key, hyperparams[key]) >= 0.0:
            raise HyperparameterError(f"{key} = {hyperparams[key]!r}: allowed is a finite number >= 0")
    for key in ("n_steps", "batch_size", "n_epochs", "n_envs", "n_timesteps"):
        if key in hyperparams:
            _positive_int(key, hyperparams[key])
    if "batch_size" in hyperparams:
        rollout = int(hyperparams.get("n_steps", 2048)) * int(hyperparams.get("n_envs", 1))
        if hyperparams["batch_size"] > rollout:
            raise HyperparameterError(
                f"batch_size = {hyperparams['batch_size']}: allowed is at most n_steps x n_envs = {rollout} (the "
                "rollout's size)"
            )
    if "policy" in hyperparams and hyperparams["policy"] not in POLICIES:
        raise HyperparameterError(f"policy = {hyperparams['policy']!r}: allowed are {', '.join(POLICIES)}")
    kwargs = parse_policy_kwargs(hyperparams.get("policy_kwargs"))
    if "net_arch" in kwargs:
        _check_net_arch(kwargs["net_arch"])
