"""How batched outputs are compared with the outputs of other batch shapes (single environments, shards).

A batch of one and a batch of E run float32 products of different shapes, and MKL picks its kernels by CPU and
shape: on some processors (AVX-512/AMX Xeons) the same row then comes out one float32 ulp apart. So the equality
tests compare the discrete state (pair inventories, quarantine, trust votes, round counters, accuracy as a count of
correct test predictions, rewards, every integer info) exactly, and the quantities that pass through those float32
products (losses, fidelity stamps, the delivered fidelity summed per link) to float32 rounding. On one machine and
one batch shape, the same seed still gives the same result bit for bit (``tests/test_envs.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

FLOAT_ROUNDED_KEYS = frozenset({"loss", "stamp", "mean_delivered_fidelity", "consensus_distance"})
"""Observation and info keys computed through float32 products whose rounding depends on the batch's shape."""

FLOAT32_RTOL = 1e-5
"""Relative tolerance for those keys: about 100 float32 ulps, room for rounding to compound over a few rounds,
and orders of magnitude below what a wrong draw, a wrong row or a missed message changes."""


def assert_same_value(key: str, expected: Any, actual: Any, where: Any = None) -> None:
    """``actual == expected`` exactly, or to float32 rounding for the keys of :data:`FLOAT_ROUNDED_KEYS`."""
    if key in FLOAT_ROUNDED_KEYS:
        np.testing.assert_allclose(actual, expected, rtol=FLOAT32_RTOL, atol=1e-7, err_msg=f"{key} {where}")
    else:
        assert np.array_equal(np.asarray(expected), np.asarray(actual)), (key, where)


def assert_same_observation_rows(expected: Mapping[str, Any], actual: Mapping[str, Any], where: Any = None) -> None:
    """Every key of two ``Dict`` observations (or stacks of them) by :func:`assert_same_value`."""
    assert set(expected) == set(actual), where
    for key in expected:
        assert_same_value(key, expected[key], actual[key], where)
