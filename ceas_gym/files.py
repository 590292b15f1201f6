"""Crash-safe file writes: a reader sees the old file or the new one, never a part of one.

Each write goes to a temporary file in the destination's folder, is flushed and ``fsync``-ed, then renamed over the
destination (``os.replace``, atomic on POSIX file systems), and the folder is ``fsync``-ed so the rename itself
survives a power cut. A process killed in the middle leaves at most a ``.<name>.<random>.tmp`` file behind, which
nothing reads.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["TEMPORARY_SUFFIX", "atomic_write_bytes", "atomic_write_text"]

TEMPORARY_SUFFIX = ".tmp"
"""Suffix of the temporary files of :func:`atomic_write_bytes` (their names also start with a dot)."""


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring); return ``path``.

    Raises:
        OSError: If the folder cannot be written; the destination is then unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))
