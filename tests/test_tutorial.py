"""``docs/tutorial.ipynb`` runs: its code cells, in order, in one namespace (as a kernel would), in a fresh folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"


def code_cells() -> list[str]:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]


def test_the_notebook_is_a_valid_nbformat_4_document_with_code() -> None:
    document = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert document["nbformat"] == 4 and len(code_cells()) >= 5
    assert all(not cell.get("outputs") for cell in document["cells"] if cell["cell_type"] == "code")  # shipped clean


@pytest.mark.slow
def test_the_tutorial_runs_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__tutorial__"}
    for index, source in enumerate(code_cells()):
        exec(compile(source, f"tutorial.ipynb cell {index + 1}", "exec"), namespace)
    assert namespace["status"] == 0
    assert (tmp_path / "tutorial_results" / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    output = capsys.readouterr().out
    assert "difference from eef" in output and "final accuracy" in output
