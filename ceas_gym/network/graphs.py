"""The canonical form of a network graph, and its validation.

A topology is an undirected, connected :class:`networkx.Graph` whose nodes are quantum processors and whose edges
are fibre links. After :func:`validate_graph` every graph follows one convention:

* **Nodes** are ``0 .. N-1``. They are numbered in the *natural order* of the original labels: integers by value;
  strings by a digit-aware order in which runs of digits compare as numbers (``"n2" < "n10"``, ``"2" < "10"``);
  ties (e.g. ``3`` and ``"3"``) by type name, then ``repr``. The original label is kept in the node attribute
  ``label`` (unless the node already carries a ``label`` attribute, which is kept as it is).
* **Edges** are stored and iterated in lexicographic order of ``(u, v)`` with ``u < v``; that order is the link
  index used by every array of the simulator (:class:`Topology`).
* **Edge attributes**: ``length_km`` (required; fibre length in km, finite and > 0), ``eta`` (optional;
  non-fibre link efficiency, a probability in (0, 1]), ``fidelity0`` (optional; Werner fidelity of a fresh pair, in
  (0.25, 1]). Numeric strings (as some GraphML writers produce) are converted to floats.
* **Node attributes**: ``pos`` (optional; ``(x, y)`` in km, for drawing and for geometric generators),
  ``hardware`` (optional; the name of a registered :data:`~ceas_gym.network.hardware.HARDWARE_PROFILES` entry).
  Either every node has ``pos`` or none; with none, nodes are placed on a circle whose radius is the median link
  length (drawing only). Other attributes are kept unchanged and not used by the simulator.

Every bad input raises :class:`~ceas_gym.config.ConfigError` naming the node, edge, attribute or parameter and the
allowed values.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np

from ceas_gym.config import ConfigError
from ceas_gym.network.hardware import HARDWARE_PROFILES

__all__ = ["circle_positions", "edge_name", "node_sort_key", "parse_number", "validate_graph"]


def circle_positions(num_nodes: int, radius_km: float) -> np.ndarray:
    """Positions (km) of ``num_nodes`` points evenly spaced on a circle. ``(N, 2)``."""
    angles = 2.0 * np.pi * np.arange(num_nodes) / num_nodes
    return radius_km * np.stack([np.cos(angles), np.sin(angles)], axis=1)


_DIGITS = re.compile(r"[0-9]+|[^0-9]+")


def node_sort_key(label: Any) -> tuple[Any, ...]:
    """Sort key giving the natural order of node labels (integers by value, strings digit-aware)."""
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        chunks: tuple[tuple[int, int, str], ...] = ((0, int(label), ""),)
    else:
        chunks = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in _DIGITS.findall(str(label)))
    return (chunks, type(label).__name__, repr(label))


def edge_name(u: Any, v: Any) -> str:
    """How messages name an edge: ``edge (u, v)`` with the original labels."""
    return f"edge ({u!r}, {v!r})"


def parse_number(value: Any, where: str, allowed: str) -> float:
    """``value`` as a float (numbers and numeric strings), or a ConfigError naming ``where``."""
    if isinstance(value, bool):
        raise ConfigError(f"{where} = {value!r} is not a number; allowed: {allowed}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(f"{where} = {value!r} is not a number; allowed: {allowed}")


def _check_edge_attributes(u: Any, v: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    """Validated copy of one edge's attributes (``length_km`` required, ``eta``/``fidelity0`` optional)."""
    name = edge_name(u, v)
    attributes = dict(data)
    if "length_km" not in data:
        raise ConfigError(f"{name}: attribute 'length_km' is missing; required: fibre length in km, a number > 0")
    length = parse_number(data["length_km"], f"{name} attribute 'length_km'", "a finite number > 0 (km)")
    if not (math.isfinite(length) and length > 0.0):
        raise ConfigError(f"{name} attribute 'length_km' = {length!r} is out of range; allowed: (0, inf) km")
    attributes["length_km"] = length
    if "eta" in data:
        eta = parse_number(data["eta"], f"{name} attribute 'eta'", "(0, 1]")
        if not 0.0 < eta <= 1.0:
            raise ConfigError(f"{name} attribute 'eta' = {eta!r} is out of range; allowed: (0, 1]")
        attributes["eta"] = eta
    if "fidelity0" in data:
        fidelity0 = parse_number(data["fidelity0"], f"{name} attribute 'fidelity0'", "(0.25, 1]")
        if not 0.25 < fidelity0 <= 1.0:
            raise ConfigError(f"{name} attribute 'fidelity0' = {fidelity0!r} is out of range; allowed: (0.25, 1]")
        attributes["fidelity0"] = fidelity0
    return attributes


def _check_node_attributes(node: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    """Validated copy of one node's attributes (``hardware`` and ``pos`` optional)."""
    attributes = dict(data)
    if "hardware" in data:
        hardware = data["hardware"]
        if hardware not in HARDWARE_PROFILES:
            known = HARDWARE_PROFILES.names()
            message = (
                f"node {node!r}: attribute 'hardware' = {hardware!r} names no registered hardware profile; "
                f"allowed: {', '.join(known)}"
            )
            close = difflib.get_close_matches(str(hardware), known, n=1)
            if close:
                message += f". Did you mean {close[0]!r}?"
            raise ConfigError(message)
    if "pos" in data:
        pos = data["pos"]
        try:
            x, y = (float(item) for item in pos)
        except (TypeError, ValueError):
            raise ConfigError(
                f"node {node!r}: attribute 'pos' = {pos!r}; allowed: a pair (x, y) of numbers in km"
            ) from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ConfigError(f"node {node!r}: attribute 'pos' = {pos!r}; allowed: finite (x, y) in km")
        attributes["pos"] = (x, y)
    return attributes


def _describe_components(components: list[set[Any]]) -> str:
    shown = []
    for component in components[:5]:
        nodes = sorted(component, key=node_sort_key)
        text = ", ".join(map(repr, nodes[:10])) + (f", ... ({len(nodes)} nodes)" if len(nodes) > 10 else "")
        shown.append("{" + text + "}")
    more = f" and {len(components) - 5} more" if len(components) > 5 else ""
    return "; ".join(shown) + more


def validate_graph(graph: nx.Graph) -> nx.Graph:
    """Check a network graph and return a copy in the canonical form described in the module docstring.

    Args:
        graph: An undirected :class:`networkx.Graph` (not a multigraph).

    Returns:
        A new graph on nodes ``0..N-1`` (natural order of the old labels), edges inserted in ``(u, v)`` order,
        with validated float attributes and ``pos`` on every node.

    Raises:
        ConfigError: If the graph has fewer than 2 nodes, is directed or a multigraph, has self loops, is not
            connected (naming the components), or an attribute is missing or out of range (naming the node or edge
            and the attribute).
    """
    if not isinstance(graph, nx.Graph):
        raise ConfigError(f"graph: expected a networkx.Graph, got {type(graph).__name__}")
    if graph.is_directed():
        raise ConfigError("graph: links are undirected; got a directed graph (convert with graph.to_undirected())")
    if graph.is_multigraph():
        raise ConfigError("graph: parallel links are not supported; got a multigraph (merge them into one link)")
    if graph.number_of_nodes() < 2:
        raise ConfigError(f"graph: has {graph.number_of_nodes()} node(s); allowed: at least 2 nodes")
    loops = list(nx.selfloop_edges(graph))
    if loops:
        raise ConfigError(f"graph: self loops are not allowed; found {', '.join(edge_name(u, v) for u, v in loops)}")
    components = sorted(nx.connected_components(graph), key=lambda c: node_sort_key(min(c, key=node_sort_key)))
    if len(components) > 1:
        raise ConfigError(
            f"graph: not connected; it has {len(components)} components: {_describe_components(components)}. "
            "Every node must reach every other: add links or remove the separate parts"
        )
    order = sorted(graph.nodes, key=node_sort_key)
    index = {label: i for i, label in enumerate(order)}
    node_attributes = [_check_node_attributes(label, graph.nodes[label]) for label in order]
    with_pos = [("pos" in attributes) for attributes in node_attributes]
    if any(with_pos) and not all(with_pos):
        missing = order[with_pos.index(False)]
        raise ConfigError(f"node {missing!r}: attribute 'pos' is missing while other nodes have it; give all or none")
    edges = []
    for u, v, data in graph.edges(data=True):
        attributes = _check_edge_attributes(u, v, data)
        a, b = sorted((index[u], index[v]))
        edges.append((a, b, attributes))
    edges.sort(key=lambda edge: (edge[0], edge[1]))
    if not any(with_pos):
        radius = float(np.median([attributes["length_km"] for _, _, attributes in edges]))
        for attributes, (x, y) in zip(node_attributes, circle_positions(len(order), radius).tolist(), strict=True):
            attributes["pos"] = (float(x), float(y))
    result = nx.Graph()
    result.graph.update(graph.graph)
    for i, (label, attributes) in enumerate(zip(order, node_attributes, strict=True)):
        attributes.setdefault("label", label)
        result.add_node(i, **attributes)
    result.add_edges_from(edges)
    return result
