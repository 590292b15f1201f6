"""Test-session settings."""

from __future__ import annotations

import torch

# The simulated circuits are 16 x 16 matrices: one intra-op thread is fastest and keeps timings stable on a shared
# 2-core machine (two threads per process oversubscribe the cores when several jobs run).
torch.set_num_threads(1)
