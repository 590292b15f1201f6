"""The scheduling action shared by every scheduling environment: a budget split plus a serving order.

Layout: ``E`` link weights, one "leave unspent" weight, and (when the agent picks the serving order) ``E`` entries
where ``> 0.5`` means freshest-first. :func:`decode_schedule` applies the documented invalid-action rule and the
largest-remainder split (:func:`ceas_gym.envs.link_layer.split_budget`).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ceas_gym.envs.link_layer import split_budget


def schedule_action_space(num_links: int, serving_order: str) -> spaces.Box:
    """``Box(0, 1, (2E + 1,))`` when the agent picks the serving order (``"agent"``), else ``Box(0, 1, (E + 1,))``."""
    width = num_links + 1 + (num_links if serving_order == "agent" else 0)
    return spaces.Box(0.0, 1.0, shape=(width,), dtype=np.float32)


def decode_schedule(
    action: np.ndarray, num_links: int, budget: int, serving_order: str, invalid_action: str
) -> tuple[np.ndarray, np.ndarray]:
    """Turn an action into ``(attempts per link (E,) int, freshest_first per link (E,) bool)``.

    Args:
        action: The agent's action (see the module docstring for the layout); ``(B, width)`` decodes B actions at
            once into ``(B, E)`` arrays.
        num_links: Number of links E.
        budget: Generation attempts available this round.
        serving_order: ``"agent"``, ``"oldest-first"`` or ``"freshest-first"``.
        invalid_action: ``"clip"`` clips entries into [0, 1]; ``"raise"`` rejects entries outside it.

    Raises:
        ValueError: On a wrong shape, a non-finite entry, or (``invalid_action="raise"``) an entry outside [0, 1].
    """
    action = np.asarray(action, dtype=np.float64)
    width = num_links + 1 + (num_links if serving_order == "agent" else 0)
    if action.ndim not in (1, 2) or action.shape[-1] != width:
        raise ValueError(f"action: expected shape {(width,)} (or (batch, {width})), got {action.shape}")
    if not np.all(np.isfinite(action)):
        raise ValueError("action: every entry must be finite (got NaN or inf)")
    if invalid_action == "raise" and (np.any(action < 0.0) or np.any(action > 1.0)):
        raise ValueError("action: entries must lie in [0, 1] (invalid_action='raise')")
    action = np.clip(action, 0.0, 1.0)
    attempts = split_budget(action[..., : num_links + 1], budget)
    if serving_order == "agent":
        freshest = action[..., num_links + 1 :] > 0.5
    else:
        freshest = np.full(attempts.shape, serving_order == "freshest-first")
    return attempts, freshest
