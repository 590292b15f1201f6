"""The throughput harness, tested with a patched clock (no timing assertions on the real machine)."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import ceas_gym  # noqa: F401
from evaluation.throughput import measure_steps_per_second, to_json


class FakeClock:
    """Advances 0.01 s per call."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 0.01
        return self.now


def test_steps_per_second_with_a_patched_clock():
    env = gym.make("ceas_gym/EntanglementScheduling-Lite-Tiny-v0")
    result = measure_steps_per_second(env, "tiny", duration_s=1.0, warmup_steps=3, clock=FakeClock())
    # The clock is read once at start and once per step, 0.01 s apart: 100 steps fill 1 s.
    assert result.steps == 100
    assert result.seconds == pytest.approx(1.0)
    assert result.steps_per_second == pytest.approx(100.0)
    # Tiny episodes last 30 rounds; 3 warm-up steps shift the phase: resets at steps 27, 57, 87.
    assert result.resets == 3
    record = json.loads(to_json([result]))
    assert record["results"][0]["steps"] == 100
    assert record["environment"]["versions"]["gymnasium"] == gym.__version__


def test_non_positive_duration_is_rejected():
    env = gym.make("ceas_gym/EntanglementScheduling-Lite-Tiny-v0")
    with pytest.raises(ValueError, match="duration_s"):
        measure_steps_per_second(env, "tiny", duration_s=0.0)
