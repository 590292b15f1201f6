"""Residual actions: a baseline's action plus a bounded, scaled correction (what a residual PPO model outputs).

``compose_action(base, residual, scale, space) = clip(base + scale * clip(residual, -1, 1), low, high)`` is the one
formula used in training (:class:`training.residual.ResidualActionVecEnv`) and in evaluation
(:class:`agents.ppo.PPOPolicy` of a model with a ``residual.json`` beside it). The file holds the baseline's
registered name and the scale: ``{"policy": "eef", "scale": 0.01}``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

RESIDUAL_FILE = "residual.json"
RESIDUAL_SUFFIX = "_residual.json"


def compose_action(base: np.ndarray, residual: np.ndarray, scale: float, action_space: spaces.Box) -> np.ndarray:
    """``clip(base + scale * clip(residual, -1, 1), low, high)`` in the action space's dtype (any leading batch).

    Args:
        base: The baseline's action(s).
        residual: The correction(s) in ``[-1, 1]`` (clipped there first).
        scale: Largest change of an entry, in the action's units (> 0).
        action_space: The environment's ``Box`` action space.
    """
    step = np.clip(np.asarray(residual, dtype=np.float64), -1.0, 1.0)
    action = np.clip(np.asarray(base, dtype=np.float64) + scale * step, action_space.low, action_space.high)
    return action.astype(action_space.dtype)


def residual_path_for(model_path: str | Path) -> Path | None:
    """``<stem>_residual.json`` beside a model, else ``residual.json`` in its folder, else None."""
    model_path = Path(model_path)
    for candidate in (model_path.with_name(model_path.stem + RESIDUAL_SUFFIX), model_path.with_name(RESIDUAL_FILE)):
        if candidate.is_file():
            return candidate
    return None


def read_residual_settings(path: Path) -> tuple[str, float]:
    """Return ``(baseline name, scale)`` from a ``residual.json``.

    Raises:
        ValueError: On invalid JSON, unknown or missing keys, or a scale that is not a finite number > 0 (the
            message names the file and the field).
    """
    try:
        value: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(value, dict) or set(value) != {"policy", "scale"}:
        raise ValueError(f"{path}: expected exactly the keys 'policy' and 'scale', got {value!r}")
    policy, scale = value["policy"], value["scale"]
    if not isinstance(policy, str):
        raise ValueError(f"{path}: policy = {policy!r} must be a registered policy name")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        raise ValueError(f"{path}: scale = {scale!r} must be a finite number > 0")
    return policy, float(scale)
