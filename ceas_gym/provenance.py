"""Provenance of a figure: the Python, platform, CPU count and library versions it was measured with.

Both the benchmarks (``evaluation/``) and the run folders (``training/``) store this record beside what they
write, so it lives below both layers.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from importlib import metadata
from typing import Any

__all__ = ["CORE_PACKAGES", "environment_record", "package_versions"]

CORE_PACKAGES = ("ceas-gym", "gymnasium", "numpy", "torch", "stable-baselines3", "networkx")
"""Distributions whose versions every record names."""


def package_versions(packages: Iterable[str]) -> dict[str, str | None]:
    """Installed version of each distribution in ``packages`` (None where it is not installed)."""
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def environment_record() -> dict[str, Any]:
    """Versions and platform, to store beside every benchmark figure and in every run folder."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "versions": package_versions(CORE_PACKAGES),
    }
