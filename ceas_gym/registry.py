"""A small named registry with a decorator, the extension point behind every plug-in.

Topologies, hardware profiles, attacks, aggregators, demand sources and consensus protocols each live in one
:class:`Registry`. Users add their own with the decorator::

    from ceas_gym.learning.attacks import ATTACKS

    @ATTACKS.register("my-attack")
    def my_attack(update, generator): ...

Looking up an unknown name raises :class:`KeyError` that lists the known names and the closest match.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ceas_gym.config import ConfigError

T = TypeVar("T")


class UnknownNameError(ConfigError, KeyError):
    """Raised when a registry lookup names nothing registered (a configuration error and a missing key)."""

    def __str__(self) -> str:  # KeyError quotes its argument; show the message as written.
        return str(self.args[0])


class Registry(Generic[T]):
    """A mapping from names to objects (classes, factories, functions) with a registering decorator.

    Args:
        kind: What the registry holds, used in error messages (for example ``"attack"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]:
        """Return a decorator that registers its argument under ``name``.

        Args:
            name: The registry key. Must be a non-empty string.
            overwrite: Replace an existing entry instead of raising.

        Raises:
            ValueError: If ``name`` is empty or already registered and ``overwrite`` is False.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def decorator(obj: T) -> T:
            self.add(name, obj, overwrite=overwrite)
            return obj

        return decorator

    def add(self, name: str, obj: T, *, overwrite: bool = False) -> None:
        """Register ``obj`` under ``name`` (the non-decorator form of :meth:`register`)."""
        if name in self._entries and not overwrite and self._entries[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass overwrite=True to replace it")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        """Return the entry registered under ``name``.

        Raises:
            UnknownNameError: If nothing is registered under ``name``; the message lists the known names.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self._unknown_message(name)) from None

    def _unknown_message(self, name: object) -> str:
        known = sorted(self._entries)
        message = f"unknown {self.kind} {name!r}; known: {', '.join(known) or '(none)'}"
        close = difflib.get_close_matches(str(name), known, n=1)
        if close:
            message += f". Did you mean {close[0]!r}?"
        return message

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
