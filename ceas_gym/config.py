"""Strict configuration: frozen dataclasses loaded from plain mappings, where unknown keys are errors.

Every configuration object of the suite is a frozen dataclass that validates itself in ``__post_init__``
with the ``check_*`` helpers below, so a bad value raises :class:`ConfigError` naming the field and the
allowed values. :func:`from_dict` builds such a dataclass from a mapping (a YAML file, ``--env-kwargs``),
recursing into nested dataclasses, and raises on any key the dataclass does not declare, suggesting the
closest declared name. Nothing is silently dropped.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

C = TypeVar("C")


class ConfigError(ValueError):
    """A configuration value or key is not allowed. The message names the field and what is allowed."""


def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Convert ``value`` to ``annotation`` where the conversion is lossless, recursing into dataclasses."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {annotation.__name__}, got {type(value).__name__}")
        return from_dict(annotation, value, where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {args}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} = {value!r} is not allowed; choose one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise ConfigError(f"{where}: expected a sequence, got {type(value).__name__}")
        items = list(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(item, args[0], f"{where}[{i}]") for i, item in enumerate(items))
        if args and len(items) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(items)}")
        return tuple(
            _convert(item, arg, f"{where}[{i}]") for i, (item, arg) in enumerate(zip(items, args, strict=True))
        )
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[C], data: Mapping[str, Any], *, where: str | None = None) -> C:
    """Build the dataclass ``cls`` from ``data``, refusing unknown keys.

    Args:
        cls: A dataclass type.
        data: Field values by name. Nested dataclass fields accept nested mappings.
        where: Prefix for error messages (defaults to the class name).

    Returns:
        An instance of ``cls`` (its ``__post_init__`` validation has run).

    Raises:
        ConfigError: On an unknown key (with the closest known key), a value of the wrong type, or a value
            that the dataclass's own validation rejects.
    """
    where = where or cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}  # type: ignore[arg-type]
    unknown = [key for key in data if key not in fields]
    if unknown:
        key = unknown[0]
        message = f"{where}: unknown key {key!r}; allowed keys: {', '.join(sorted(fields))}"
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        if close:
            message += f". Did you mean {close[0]!r}?"
        raise ConfigError(message)
    hints = _type_hints(cls)
    kwargs = {key: _convert(value, hints[key], f"{where}.{key}") for key, value in data.items()}
    return cls(**kwargs)


def replace(config: C, **changes: Any) -> C:
    """Return a copy of the frozen dataclass ``config`` with ``changes`` applied, strictly.

    Nested dataclass fields accept mappings, which update the nested config key by key.
    """
    merged: dict[str, Any] = {}
    for key, value in changes.items():
        current = getattr(config, key, None)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            merged[key] = replace(current, **value)
        else:
            merged[key] = value
    fields = {field.name for field in dataclasses.fields(config)}  # type: ignore[arg-type]
    unknown = [key for key in merged if key not in fields]
    if unknown:
        key = unknown[0]
        message = f"{type(config).__name__}: unknown key {key!r}; allowed keys: {', '.join(sorted(fields))}"
        close = difflib.get_close_matches(key, list(fields), n=1)
        if close:
            message += f". Did you mean {close[0]!r}?"
        raise ConfigError(message)
    hints = _type_hints(type(config))
    converted = {key: _convert(value, hints[key], f"{type(config).__name__}.{key}") for key, value in merged.items()}
    return dataclasses.replace(config, **converted)  # type: ignore[type-var]


def to_dict(config: Any) -> dict[str, Any]:
    """Return a JSON/YAML-serialisable dict of a (nested) config dataclass; tuples become lists."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {field.name: plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
        if isinstance(value, (tuple, list)):
            return [plain(item) for item in value]
        return value

    return plain(config)


def check_range(
    name: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    finite: bool = False,
) -> None:
    """Raise :class:`ConfigError` unless ``low <= value <= high`` (bounds optional, inclusivity settable).

    Args:
        name: The field's name as the user wrote it, for example ``"LiteConfig.budget"``.
        value: The value to check. NaN is always rejected.
        low: Lower bound, or None for none.
        high: Upper bound, or None for none.
        low_inclusive: Whether ``value == low`` is allowed.
        high_inclusive: Whether ``value == high`` is allowed.
        finite: Reject infinite values (for weights, stakes and other quantities with no meaning at infinity).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if finite and math.isinf(value):
        raise ConfigError(f"{name} = {value!r} is not allowed; allowed: a finite number")
    ok_low = low is None or (value >= low if low_inclusive else value > low)
    ok_high = high is None or (value <= high if high_inclusive else value < high)
    if not (ok_low and ok_high):
        left = "(-inf" if low is None else ("[" if low_inclusive else "(") + f"{low:g}"
        right = "inf)" if high is None else f"{high:g}" + ("]" if high_inclusive else ")")
        raise ConfigError(f"{name} = {value!r} is out of range; allowed: {left}, {right}")


def check_int(name: str, value: int, low: int | None = None, high: int | None = None) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an integer (not a bool) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    check_range(name, value, low, high)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices`` (the message lists them)."""
    allowed = list(choices)
    if value not in allowed:
        message = f"{name} = {value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}"
        close = difflib.get_close_matches(str(value), [str(item) for item in allowed], n=1)
        if close:
            message += f". Did you mean {close[0]!r}?"
        raise ConfigError(message)
