"""The scheduling action shared by every scheduling environment: a budget split plus a serving order.

Layout: ``E`` link weights, one "leave unspent" weight, and (when the agent picks the serving order) ``E`` entries
where ``> 0.5`` means freshest-first. :func:`decode_schedule` applies the documented invalid-action rule and the
largest-remainder split (:func:`ceas_gym.envs.link_layer.split_budget`).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ceas_gym.envs.link_layer import split_budget

REAL_KINDS = "biuf"
"""NumPy dtype kinds an action may have: bool, signed and unsigned integers, floats (no complex, str, object)."""


def as_action_array(
    action: object,
    expected_shape: tuple[int, ...],
    dtype: str,
    integral: bool = False,
    entries: str | None = None,
) -> np.ndarray:
    """The one check of every environment's action: real numbers of exactly the expected shape.

    Args:
        action: What the agent passed (array, list, scalar).
        expected_shape: The shape the environment takes, e.g. ``(2E + 1,)``, or ``(B, 2E + 1)`` for a batch.
        dtype: The action space's dtype, named in messages (``"float32"``, ``"int8"``, ...).
        integral: Entries must be whole numbers (discrete and binary spaces).
        entries: What the entries are, leading the messages (``"4 entries of 0 or 1"``); default real numbers.

    Returns:
        The action as a NumPy array (float64 for real-valued spaces, int64 for integral ones).

    Raises:
        ValueError: Naming the expected shape and dtype, on a ragged or non-numeric input (str, object, complex),
            a wrong shape (a batch of actions to a single environment included), or a non-finite entry.
    """
    shape = f"shape {expected_shape} ({dtype})"
    expected = f"{entries}, {shape}" if entries else f"{shape} of real numbers"
    try:
        array = np.asarray(action)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"action: expected {expected}; got something NumPy cannot read as one array ({error})"
        ) from None
    if array.dtype.kind not in REAL_KINDS:
        raise ValueError(f"action: expected {expected}, got dtype {array.dtype}")
    if array.shape != tuple(expected_shape):
        raise ValueError(f"action: expected {expected}, got shape {array.shape}")
    values = array.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"action: expected {expected} with finite entries, got NaN or inf")
    if integral:
        if not np.all(values == np.round(values)):
            raise ValueError(f"action: expected {expected} with whole-number entries, got {array.tolist()}")
        return values.astype(np.int64)
    return values


def schedule_action_space(num_links: int, serving_order: str) -> spaces.Box:
    """``Box(0, 1, (2E + 1,))`` when the agent picks the serving order (``"agent"``), else ``Box(0, 1, (E + 1,))``."""
    width = num_links + 1 + (num_links if serving_order == "agent" else 0)
    return spaces.Box(0.0, 1.0, shape=(width,), dtype=np.float32)


def decode_schedule(
    action: np.ndarray,
    num_links: int,
    budget: int,
    serving_order: str,
    invalid_action: str,
    batch: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Turn an action into ``(attempts per link (E,) int, freshest_first per link (E,) bool)``.

    Args:
        action: The agent's action (see the module docstring for the layout), ``(width,)``; with ``batch = B``,
            ``(B, width)``, decoded at once into ``(B, E)`` arrays.
        num_links: Number of links E.
        budget: Generation attempts available this round.
        serving_order: ``"agent"``, ``"oldest-first"`` or ``"freshest-first"``.
        invalid_action: ``"clip"`` clips entries into [0, 1]; ``"raise"`` rejects entries outside it.
        batch: Number of actions B of a batched environment, or None for one action.

    Raises:
        ValueError: From :func:`as_action_array` (shape, dtype, non-finite entries), or (``invalid_action="raise"``)
            on an entry outside [0, 1].
    """
    width = num_links + 1 + (num_links if serving_order == "agent" else 0)
    action = as_action_array(action, (width,) if batch is None else (batch, width), "float32")
    if invalid_action == "raise" and (np.any(action < 0.0) or np.any(action > 1.0)):
        raise ValueError("action: entries must lie in [0, 1] (invalid_action='raise')")
    action = np.clip(action, 0.0, 1.0)
    attempts = split_budget(action[..., : num_links + 1], budget)
    if serving_order == "agent":
        freshest = action[..., num_links + 1 :] > 0.5
    else:
        freshest = np.full(attempts.shape, serving_order == "freshest-first")
    return attempts, freshest
