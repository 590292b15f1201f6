"""Test-session settings."""

from __future__ import annotations

import torch
from hypothesis import settings

# The simulated circuits are 16 x 16 matrices: one intra-op thread is fastest and keeps timings stable on a shared
# 2-core machine (two threads per process oversubscribe the cores when several jobs run).
torch.set_num_threads(1)

# Property tests draw the same examples on every run (a run that passes stays passing; CI cannot flake), with no
# per-example deadline on a shared machine. Run with --hypothesis-seed or another profile to explore further.
settings.register_profile("ceas-gym", derandomize=True, deadline=None)
settings.load_profile("ceas-gym")
