"""Refuse sizes the machine cannot hold, before allocating them, with a message naming the field.

A ring of 10^9 nodes or memories of 10^9 pairs per link would otherwise run until the allocation fails with a bare
``MemoryError`` (or the operating system kills the process). The places that allocate in proportion to a
configured size estimate their need first and call :func:`check_fits`, which compares it with the memory the
machine has available now (``MemAvailable`` of ``/proc/meminfo``; the physical memory where that is unknown).

The estimates are peak figures measured on this project's code (``tracemalloc``), rounded up: they decide
between "fits" and "cannot fit", not the exact footprint.
"""

from __future__ import annotations

import os
from pathlib import Path

from ceas_gym.config import ConfigError

__all__ = ["USABLE_SHARE", "available_bytes", "check_fits", "format_bytes"]

USABLE_SHARE = 0.8
"""Share of the available memory one allocation may plan to use (the rest is left to the process and the OS)."""


def available_bytes() -> int:
    """Memory available to new allocations now (bytes): ``MemAvailable``, else the physical memory."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def format_bytes(count: float) -> str:
    """``count`` bytes as a short human figure (``3.2 GiB``)."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count:.0f} B"


def check_fits(field: str, needed_bytes: float, what: str, hint: str) -> None:
    """Raise :class:`ConfigError` when ``needed_bytes`` exceeds :data:`USABLE_SHARE` of the available memory.

    Args:
        field: The configuration field that sets the size, as the user writes it (``"TopologyConfig.num_nodes"``).
        needed_bytes: The estimated peak need (bytes).
        what: What would be allocated, for the message (``"a ring of 1000000000 nodes"``).
        hint: How to get a size that fits (``"lower num_nodes"``).
    """
    available = available_bytes()
    if needed_bytes > USABLE_SHARE * available:
        raise ConfigError(
            f"{field}: {what} needs about {format_bytes(needed_bytes)}, more than this machine can hold (it has "
            f"{format_bytes(available)} available); {hint}"
        )
