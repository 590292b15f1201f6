"""Environment throughput: steps per second, measured the way Gymnasium's ``utils/performance.py`` does.

Warm up first, pre-sample the actions so the policy costs nothing, then step for a fixed wall-clock duration
(resetting on episode end) and divide. The clock is injectable so the harness itself is testable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import gymnasium as gym

from ceas_gym.provenance import environment_record


@dataclass(frozen=True)
class Throughput:
    """One throughput measurement.

    Attributes:
        env_id: The environment measured.
        steps: Steps taken in the timed window.
        seconds: Length of the timed window, seconds.
        steps_per_second: ``steps / seconds``.
        resets: Episode resets inside the timed window (their cost is included).
    """

    env_id: str
    steps: int
    seconds: float
    steps_per_second: float
    resets: int


def measure_steps_per_second(
    env: gym.Env,
    env_id: str,
    duration_s: float = 3.0,
    warmup_steps: int = 50,
    num_actions: int = 1024,
    seed: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> Throughput:
    """Step ``env`` with pre-sampled random actions for ``duration_s`` seconds and report steps per second.

    Args:
        env: The environment (single, not vectorised).
        env_id: Name to record.
        duration_s: Timed window, seconds (> 0).
        warmup_steps: Untimed steps first (caches, lazy imports).
        num_actions: Size of the pre-sampled action pool, reused cyclically.
        seed: Seed for the reset and the action pool.
        clock: Monotonic clock in seconds.
    """
    if duration_s <= 0:
        raise ValueError(f"duration_s = {duration_s!r}: must be > 0 seconds")
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(num_actions)]
    env.reset(seed=seed)
    for index in range(warmup_steps):
        *_, terminated, truncated, _ = env.step(actions[index % num_actions])
        if terminated or truncated:
            env.reset()
    steps = resets = 0
    start = clock()
    elapsed = 0.0
    while elapsed < duration_s:
        *_, terminated, truncated, _ = env.step(actions[steps % num_actions])
        steps += 1
        if terminated or truncated:
            env.reset()
            resets += 1
        elapsed = clock() - start
    return Throughput(env_id, steps, elapsed, steps / elapsed, resets)


def to_json(results: list[Throughput]) -> str:
    """Serialise results with the environment record."""
    return json.dumps(
        {"results": [asdict(result) for result in results], "environment": environment_record()}, indent=2
    )
