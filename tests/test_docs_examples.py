"""Every python block of the README and of docs/*.md runs as written (docs/plugins.md has its own test).

A block whose first line starts with ``# slow`` runs only with ``-m slow``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
SOURCES = [ROOT / "README.md", *sorted(path for path in (ROOT / "docs").glob("*.md") if path.name != "plugins.md")]


def examples() -> list:
    cases = []
    for path in SOURCES:
        for index, code in enumerate(BLOCK.findall(path.read_text(encoding="utf-8"))):
            name = f"{path.relative_to(ROOT)}#{index + 1}"
            marks = [pytest.mark.slow] if code.lstrip().startswith("# slow") else []
            cases.append(pytest.param(name, code, id=name, marks=marks))
    return cases


@pytest.mark.parametrize(("name", "code"), examples())
def test_documented_example_runs(name: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [name])
    exec(compile(code, name, "exec"), {"__name__": "__docs_example__"})


def test_examples_are_found():
    names = [case.values[0] for case in examples()]
    assert any(name.startswith("README.md") for name in names)
    assert len(names) >= 10
