"""Plug-ins: third-party environments and registry entries discovered through package entry points.

A plug-in is an installed distribution that declares an entry point in the group ``ceas_gym.envs``
(:data:`ENTRY_POINT_GROUP`), for example in its ``pyproject.toml``::

    [project.entry-points."ceas_gym.envs"]
    my_plugin = "my_plugin:register"

:func:`load_plugins` loads every entry point of the group once per process (idempotent): it imports the target and,
when the target is callable (a ``register()`` function), calls it with no arguments; an entry point naming a
module (``"my_plugin"``) is just imported, so the module's import-time registrations (``gym.register(...)``,
``@ATTACKS.register(...)``, ...) take effect. ``import ceas_gym`` calls it once after registering the package's own
environments, so installed plug-ins' ids are in ``gym.registry`` as soon as ``ceas_gym`` is imported.

**Broken plug-ins.** A plug-in whose import or ``register()`` raises is reported with a :class:`PluginError`
naming the plug-in (the entry point's name and distribution) and the entry point (``name = value``), chained to
the original exception. :func:`load_plugins` raises it by default (``on_error="raise"``); with ``on_error="warn"``
it issues a :class:`PluginWarning` with the same message and goes on with the next plug-in. ``import ceas_gym``
uses ``"warn"``, so one broken third-party package cannot make the whole suite unimportable. A plug-in that failed
is not marked loaded: the next call tries it again.

**Environment ids.** :func:`resolve_env_id` validates an id for the command-line tools: ``"module:EnvId"`` (the
form :func:`gymnasium.make` accepts) imports ``module`` first; an unknown id raises
:class:`~ceas_gym.registry.UnknownNameError` with the closest registered ids (``difflib`` over ``gym.registry``,
plug-in ids included, and any id that matches once the namespace is added).
"""

from __future__ import annotations

import difflib
import importlib
import re
import warnings
from importlib import metadata
from typing import Literal

import gymnasium as gym

from ceas_gym.config import check_choice
from ceas_gym.registry import UnknownNameError

#: The entry-point group plug-ins declare.
ENTRY_POINT_GROUP = "ceas_gym.envs"
MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
"""What the ``module`` of a ``module:EnvId`` id must look like: a dotted Python name, never a path."""

OnError = Literal["raise", "warn"]

#: Entry points loaded so far, as ``(group, name, value)``.
_LOADED: set[tuple[str, str, str]] = set()


class PluginError(RuntimeError):
    """A plug-in's entry point could not be imported or its ``register()`` raised."""


class PluginWarning(UserWarning):
    """Issued instead of :class:`PluginError` when plug-ins are loaded with ``on_error="warn"``."""


def _describe(entry_point: metadata.EntryPoint) -> str:
    distribution = getattr(entry_point, "dist", None)
    owner = f" from distribution {distribution.name!r}" if distribution is not None else ""
    return f"plug-in {entry_point.name!r}{owner} (entry point {entry_point.name} = {entry_point.value!r})"


def _load_one(entry_point: metadata.EntryPoint) -> None:
    target = entry_point.load()
    if callable(target):
        target()


def load_plugins(group: str = ENTRY_POINT_GROUP, *, on_error: OnError = "raise") -> list[str]:
    """Load every installed entry point of ``group`` that is not loaded yet.

    Args:
        group: The entry-point group to scan.
        on_error: ``"raise"`` (default) raises :class:`PluginError` at the first broken plug-in; ``"warn"`` issues
            a :class:`PluginWarning` per broken plug-in and continues.

    Returns:
        The names of the entry points loaded by this call, in discovery order (empty when all were loaded before).

    Raises:
        PluginError: If a plug-in fails to import or register and ``on_error`` is ``"raise"``.
        ConfigError: If ``on_error`` is not one of the allowed values.
    """
    check_choice("load_plugins.on_error", on_error, ("raise", "warn"))
    loaded: list[str] = []
    for entry_point in metadata.entry_points(group=group):
        key = (group, entry_point.name, entry_point.value)
        if key in _LOADED:
            continue
        try:
            _load_one(entry_point)
        except Exception as error:
            message = f"{_describe(entry_point)} failed to load: {type(error).__name__}: {error}"
            if on_error == "raise":
                raise PluginError(message) from error
            warnings.warn(message, PluginWarning, stacklevel=2)
            continue
        _LOADED.add(key)
        loaded.append(entry_point.name)
    return loaded


def loaded_plugins() -> list[tuple[str, str, str]]:
    """The ``(group, name, value)`` of every entry point loaded so far, sorted."""
    return sorted(_LOADED)


def _suggestions(env_id: str, known: list[str]) -> list[str]:
    by_name = [known_id for known_id in known if known_id.split("/")[-1] == env_id]
    close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.6)
    return list(dict.fromkeys(by_name + close))


def resolve_env_id(env_id: str, *, load: bool = True) -> str:
    """Validate an environment id and return it as registered in ``gym.registry``.

    Args:
        env_id: ``"EnvId"`` or ``"module:EnvId"``; with a module, the module is imported first (it registers its
            environments on import, as :func:`gymnasium.make` expects). Importing runs the module's code, so the
            module must be a dotted Python name of an installed or importable module (``my_pkg.envs``); a path
            (``./x.py``, ``a/b``) is refused.
        load: Load installed plug-ins first (:func:`load_plugins` with ``on_error="warn"``).

    Returns:
        The registered id (without the ``module:`` prefix), ready for :func:`gymnasium.make`.

    Raises:
        UnknownNameError: If the id is not registered; the message names up to three close registered ids.
        PluginError: If the ``module`` of ``"module:EnvId"`` is not a dotted module name or cannot be imported.
    """
    if not isinstance(env_id, str) or not env_id.strip():
        raise UnknownNameError(f"environment id must be a non-empty string, got {env_id!r}")
    if load:
        load_plugins(on_error="warn")
    module, separator, name = env_id.partition(":")
    if separator:
        if not module or not name:
            raise UnknownNameError(f"environment id {env_id!r}: expected 'module:EnvId' with both parts non-empty")
        if not MODULE_NAME.fullmatch(module):
            raise PluginError(
                f"environment id {env_id!r}: module {module!r} is not a dotted Python module name (a path or file "
                "is refused); 'module:EnvId' imports an installed module, which runs its code"
            )
        try:
            importlib.import_module(module)
        except Exception as error:
            raise PluginError(
                f"environment id {env_id!r}: importing module {module!r} failed: {type(error).__name__}: {error}"
            ) from error
    else:
        name = env_id
    if name in gym.registry:
        return name
    known = sorted(gym.registry)
    message = f"unknown environment id {name!r}"
    if separator:
        message += f" (module {module!r} was imported but did not register it)"
    suggestions = _suggestions(name, known)
    if suggestions:
        message += f". Did you mean {', '.join(repr(s) for s in suggestions)}?"
    else:
        ours = [known_id for known_id in known if known_id.startswith("ceas_gym/")]
        message += f"; ceas_gym ids: {', '.join(ours) or '(none)'} (gymnasium.pprint_registry() lists all)"
    raise UnknownNameError(message)
