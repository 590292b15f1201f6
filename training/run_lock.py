"""An exclusive lock on a run folder, so two ``ceas-train`` processes never train into the same one.

The lock is ``<run>/.lock``, held with ``fcntl.flock(LOCK_EX | LOCK_NB)`` for as long as the run trains; the file
holds the holder's pid, host and start time as JSON. The operating system drops a ``flock`` when its process dies,
however it dies, so a killed run never blocks the next one. A clean exit empties the file; finding it non-empty
when taking the lock therefore means the previous holder died holding it: the lock is taken over with a warning
naming that holder. A second process that finds the lock held gets :class:`RunLockedError` naming the holder
(``ceas-train`` exits 2 with it).

``flock`` locks are per host on most network file systems; two machines training into one shared folder are not
protected.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = ["LOCK_NAME", "RunLock", "RunLockedError"]

LOCK_NAME = ".lock"


class RunLockedError(RuntimeError):
    """The run folder is locked by another live process."""


def _holder(text: str) -> dict[str, Any]:
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {"pid": None, "host": None, "raw": text[:80]}
    return holder if isinstance(holder, dict) else {"pid": None, "host": None, "raw": text[:80]}


def _describe(holder: dict[str, Any]) -> str:
    if holder.get("pid") is None:
        return f"an unknown holder ({holder.get('raw', '')!r})"
    return f"pid {holder['pid']} on host {holder.get('host')!r}"


class RunLock:
    """The lock of one run folder; use as a context manager or call :meth:`acquire` / :meth:`release`.

    Args:
        run: The run folder (created if missing).
    """

    def __init__(self, run: Path) -> None:
        self.path = Path(run) / LOCK_NAME
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`RunLockedError` naming the live holder.

        A lock file left non-empty by a holder that died is taken over with a warning on stderr.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _holder(handle.read())
            handle.close()
            raise RunLockedError(
                f"run folder {str(self.path.parent)!r} is in use by {_describe(holder)} (lock file {self.path}); "
                "wait for it to finish or stop it first"
            ) from None
        handle.seek(0)
        previous = handle.read().strip()
        if previous:
            print(
                f"warning: {self.path}: taking over the stale lock of {_describe(_holder(previous))}, which no "
                "longer holds it (it ended without releasing it)",
                file=sys.stderr,
            )
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since_unix_s": time.time()}))
        handle.flush()
        os.fsync(handle.fileno())
        self._handle = handle

    def release(self) -> None:
        """Empty the lock file and drop the lock (a no-op when not held)."""
        if self._handle is None:
            return
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.flush()
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()
