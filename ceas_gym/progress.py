"""One progress bar per long job, legible in a terminal and in a log file.

In a terminal, :func:`progress_bar` is a tqdm bar redrawn in place. When stderr is a file or a pipe (a log, CI), a
bar redrawn with carriage returns turns into one unreadable line, so the bar instead writes a plain line at most
every tenth of the job (``episodes: 30/60 (50 %), 17 s elapsed, about 17 s left``) and one at the end.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import IO, Any

__all__ = ["progress_bar"]


class LineProgress:
    """A tqdm-like counter that prints a line per tenth of ``total`` (and at the end) to ``file``.

    Args:
        total: Units of work.
        desc: What is counted (the line's prefix).
        file: Where the lines go.
        disable: Print nothing.
    """

    def __init__(self, total: int, desc: str, file: IO[str], disable: bool = False) -> None:
        self.total, self.desc, self.file, self.disable = max(int(total), 0), desc, file, disable
        self.n = 0
        self._start = time.perf_counter()
        self._next_tenth = 1

    def update(self, count: int = 1) -> None:
        """Count ``count`` more units; print a line when a new tenth of the job is done."""
        self.n += count
        if self.disable or self.total == 0:
            return
        tenth = self.n * 10 // self.total
        if tenth >= self._next_tenth:
            self._next_tenth = tenth + 1
            self._line()

    def _line(self) -> None:
        elapsed = time.perf_counter() - self._start
        left = elapsed * (self.total - self.n) / self.n if self.n else float("nan")
        tail = f", about {left:.0f} s left" if self.n < self.total else ""
        share = 100 * self.n / self.total
        print(f"{self.desc}: {self.n}/{self.total} ({share:.0f} %), {elapsed:.0f} s elapsed{tail}", file=self.file)
        self.file.flush()

    def close(self) -> None:
        """Nothing to clear (every line is final)."""

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None):
        self.close()


def progress_bar(total: int, desc: str, disable: bool = False, file: IO[str] | None = None) -> Any:
    """A tqdm bar on a terminal, :class:`LineProgress` lines otherwise (see the module docstring)."""
    stream = sys.stderr if file is None else file
    if hasattr(stream, "isatty") and stream.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, disable=disable, file=stream)
    return LineProgress(total, desc, stream, disable)
