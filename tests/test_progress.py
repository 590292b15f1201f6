"""Progress in a log file: one plain line per tenth of the job, none when disabled; a tqdm bar on a terminal."""

from __future__ import annotations

import io

from ceas_gym.progress import LineProgress, progress_bar


def test_a_log_file_gets_a_line_per_tenth_and_one_at_the_end() -> None:
    log = io.StringIO()
    with progress_bar(20, "episodes", file=log) as bar:
        assert isinstance(bar, LineProgress)  # a StringIO is not a terminal
        for _ in range(20):
            bar.update()
    lines = log.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"episodes: {2 * k}/20" for k in range(1, 11)]
    assert "\r" not in log.getvalue() and "left" not in lines[-1] and "left" in lines[0]


def test_uneven_steps_print_each_tenth_once_and_disabled_bars_print_nothing() -> None:
    log = io.StringIO()
    bar = LineProgress(7, "runs", log)
    for count in (3, 1, 3):
        bar.update(count)
    assert [line.split(" (")[0] for line in log.getvalue().splitlines()] == ["runs: 3/7", "runs: 4/7", "runs: 7/7"]
    quiet = io.StringIO()
    silent = LineProgress(5, "x", quiet, disable=True)
    silent.update(5)
    assert quiet.getvalue() == "" and silent.n == 5


def test_a_terminal_gets_tqdm() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar = progress_bar(3, "x", file=Terminal())
    assert type(bar).__module__.startswith("tqdm")
    bar.close()
