"""Seeded Gaussian draws that do not depend on where the tensors live.

The learning layer's torch generators are CPU generators (one stream per environment, seeded from its
``np_random``). Noise is drawn on the generator's device and then moved to the tensors' device, so a run with
``device="cuda"`` draws exactly the numbers the CPU run draws for the same seed (and a CPU generator can serve
CUDA tensors at all: ``torch.randn`` refuses a generator of another device).
"""

from __future__ import annotations

import torch


def standard_normal(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``N(0, 1)`` samples shaped, typed and placed like ``like``, drawn from ``generator`` on its own device."""
    noise = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=generator.device)
    return noise.to(like.device)
