"""The project's import graph, read from the source with ``ast`` (nothing is imported), for the layering tests.

An edge ``a -> b`` means module ``a`` imports module ``b`` (``from b import name`` counts as ``b``, or as
``b.name`` where that is a module). Each edge is marked *eager* (runs when ``a`` is imported: module level,
including ``try`` and ``if`` blocks) or *lazy* (inside a function or method). Imports under ``if TYPE_CHECKING:``
never run and are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ImportGraph", "find_cycles", "read_import_graph"]


@dataclass
class ImportGraph:
    """Modules (dotted names) and their imports among themselves."""

    files: dict[str, Path] = field(default_factory=dict)
    eager: dict[str, set[str]] = field(default_factory=dict)
    lazy: dict[str, set[str]] = field(default_factory=dict)

    def edges(self) -> Iterable[tuple[str, str, bool]]:
        """Every edge as ``(importer, imported, is_lazy)``; an edge both eager and lazy counts as eager."""
        for module in sorted(self.files):
            eager = self.eager.get(module, set())
            for target in sorted(eager):
                yield module, target, False
            for target in sorted(self.lazy.get(module, set()) - eager):
                yield module, target, True


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def _import_targets(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """Dotted names an import statement names, relative imports resolved against ``package``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        anchor = parts[: len(parts) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    return [f"{base}.{alias.name}" for alias in node.names]


def _collect(node: ast.AST, package: str, in_function: bool, found: dict[bool, list[str]]) -> None:
    """Add the names ``node``'s import statements name to ``found[in_function]``, walking down the tree."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            found[in_function].extend(_import_targets(child, package))
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for statement in child.orelse:
                _collect(ast.Module(body=[statement], type_ignores=[]), package, in_function, found)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            _collect(child, package, True, found)
        else:
            _collect(child, package, in_function, found)


def read_import_graph(root: Path, packages: Iterable[str]) -> ImportGraph:
    """Parse every ``.py`` file of ``packages`` (folders under ``root``) and return their import graph."""
    graph = ImportGraph()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            graph.files[_module_name(root, path)] = path
    known = set(graph.files)

    def owning_module(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    for module, path in graph.files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found: dict[bool, list[str]] = {False: [], True: []}
        _collect(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), package, False, found)
        for in_function, names in found.items():
            targets = {owning_module(name) for name in names} - {None, module}
            (graph.lazy if in_function else graph.eager)[module] = targets  # type: ignore[assignment]
    return graph


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles
