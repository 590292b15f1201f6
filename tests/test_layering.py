"""The house rules of DESIGN.md section 2, read from the source: no import circle, and arrows down the layers only.

Layers, bottom to top (a module may import its own layer's package and any layer below, never one above, and
never a sibling of its own level)::

    evaluation/                                 7
    training/                                   6
    agents/                                     5
    ceas_gym (package), ceas_gym.plugins        4
    ceas_gym.envs                               3
    ceas_gym.consensus                          2
    ceas_gym.network | ceas_gym.learning        1   (siblings: neither imports the other)
    ceas_gym.config, registry, files, memory,   0
    provenance
"""

from __future__ import annotations

from pathlib import Path

import pytest
from import_graph import find_cycles, read_import_graph

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ceas_gym", "agents", "training", "evaluation")

LAYERS: dict[str, tuple[int, str]] = {
    "ceas_gym.config": (0, "foundation"),
    "ceas_gym.registry": (0, "foundation"),
    "ceas_gym.files": (0, "foundation"),
    "ceas_gym.memory": (0, "foundation"),
    "ceas_gym.provenance": (0, "foundation"),
    "ceas_gym.network": (1, "network"),
    "ceas_gym.learning": (1, "learning"),
    "ceas_gym.consensus": (2, "consensus"),
    "ceas_gym.envs": (3, "envs"),
    "ceas_gym": (4, "package"),
    "ceas_gym.plugins": (4, "package"),
    "ceas_gym.__main__": (4, "package"),
    "agents": (5, "agents"),
    "training": (6, "training"),
    "evaluation": (7, "evaluation"),
}
"""Module or package prefix -> (level, group); the longest matching prefix decides."""


def layer_of(module: str) -> tuple[int, str]:
    """The (level, group) of ``module`` by its longest prefix in :data:`LAYERS`."""
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        prefix = ".".join(parts[:length])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(f"{module}: no layer; add it (or its package) to LAYERS in tests/test_layering.py")


def upward_arrows(edges: list[tuple[str, str, bool]]) -> list[str]:
    """Edges that point up a layer, or across to a sibling group of the same level."""
    found = []
    for importer, imported, is_lazy in edges:
        (level_from, group_from), (level_to, group_to) = layer_of(importer), layer_of(imported)
        if level_to > level_from or (level_to == level_from and group_to != group_from):
            kind = "lazy import" if is_lazy else "import"
            found.append(f"{importer} ({group_from}) -> {imported} ({group_to}), {kind}")
    return found


@pytest.fixture(scope="module")
def project_graph():
    return read_import_graph(ROOT, PACKAGES)


# ----------------------------------------------------------------------------------- the checker itself


def test_cycles_are_found_in_hand_made_graphs() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert find_cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    two = find_cycles({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c", "a"}})
    assert sorted(two) == [["a", "b"], ["c", "d"]]


def test_the_reader_tells_eager_lazy_and_type_checking_imports_apart(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg.sub import leaf\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "leaf.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from .. import top\n"
        "if TYPE_CHECKING:\n"
        "    from pkg import hinted\n"
        "def later():\n"
        "    import pkg.late\n"
    )
    for name in ("top", "hinted", "late"):
        (package / f"{name}.py").write_text("import os\n")
    graph = read_import_graph(tmp_path, ["pkg"])
    assert graph.eager["pkg"] == {"pkg.sub.leaf"}
    assert graph.eager["pkg.sub.leaf"] == {"pkg.top"}  # relative import resolved; TYPE_CHECKING left out
    assert graph.lazy["pkg.sub.leaf"] == {"pkg.late"}
    assert graph.eager["pkg.top"] == set()  # the standard library is not part of the graph


def test_an_upward_arrow_and_a_sibling_arrow_are_reported() -> None:
    edges = [
        ("ceas_gym.network.inventory", "ceas_gym.learning.data", False),
        ("training.run_folder", "evaluation.throughput", True),
        ("ceas_gym.envs.ceas", "ceas_gym.consensus.protocol", False),
        ("ceas_gym.consensus.protocol", "ceas_gym.config", False),
    ]
    assert upward_arrows(edges) == [
        "ceas_gym.network.inventory (network) -> ceas_gym.learning.data (learning), import",
        "training.run_folder (training) -> evaluation.throughput (evaluation), lazy import",
    ]


# ----------------------------------------------------------------------------------- the project


def test_the_graph_covers_the_project(project_graph) -> None:
    assert len(project_graph.files) > 100
    assert "ceas_gym.consensus.ceas_protocol" in project_graph.eager["ceas_gym.consensus"]


def test_every_module_has_a_layer(project_graph) -> None:
    for module in project_graph.files:
        layer_of(module)


def test_no_import_circle(project_graph) -> None:
    """Module-level imports form no circle (a lazy import inside a function may break one on purpose)."""
    assert find_cycles(project_graph.eager) == []


def test_arrows_point_down_the_layers_only(project_graph) -> None:
    """Eager and lazy imports alike: a lazy import up a layer is still a dependency up a layer."""
    assert upward_arrows(list(project_graph.edges())) == []


MAX_LINES = 500
"""One job per file (DESIGN.md, the house style): no module of the package folders is longer than this."""


def test_no_module_is_longer_than_the_house_limit(project_graph) -> None:
    lengths = {
        module: len(path.read_text(encoding="utf-8").splitlines()) for module, path in project_graph.files.items()
    }
    assert {module: lines for module, lines in lengths.items() if lines > MAX_LINES} == {}
