"""Bookkeeping of the vector environments: per-copy seeds, reset masks, and picking finished copies' observations."""

from __future__ import annotations

from typing import Any

import numpy as np

from ceas_gym.config import ConfigError

__all__ = ["copy_seeds", "reset_mask", "select_rows"]


def copy_seeds(seed: int | list[int | None] | None, copies: int) -> list[int | None]:
    """Per-copy seeds: ``s`` -> ``s, s + 1, ...``; a list as given; None -> all None."""
    if seed is None:
        return [None] * copies
    if isinstance(seed, int | np.integer):
        return [int(seed) + i for i in range(copies)]
    seeds = list(seed)
    if len(seeds) != copies:
        raise ConfigError(f"seed: expected an int or {copies} seeds, got {len(seeds)}")
    return seeds


def reset_mask(options: dict[str, Any] | None, copies: int) -> np.ndarray | None:
    """``options["reset_mask"]`` as a ``(copies,)`` bool array, or None when absent.

    Raises:
        ConfigError: If the mask does not have one entry per copy.
    """
    mask = (options or {}).get("reset_mask")
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (copies,):
        raise ConfigError(f"options['reset_mask']: expected a bool array of shape ({copies},)")
    return mask


def select_rows(observation: Any, rows: np.ndarray, copies: int) -> Any:
    """The observation of each copy as an object array (``None`` where the copy did not finish)."""
    selected = np.full(copies, None, dtype=object)
    for row in rows:
        if isinstance(observation, dict):
            selected[row] = {key: value[row].copy() for key, value in observation.items()}
        else:
            selected[row] = observation[row].copy()
    return selected
