"""Network topologies: generators, loading and validation of user graphs, and an array view for the hot path.

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

Built-in generators (:data:`TOPOLOGIES`, signature ``(num_nodes, rng, **params) -> nx.Graph``):

* ``ring`` (N >= 3), ``grid``, ``complete``, ``star`` (node 0 is the hub): abstract topologies whose links all have
  length ``length_km`` (default :data:`DEFAULT_LENGTH_KM` = 10 km). Ring nodes sit on a circle with neighbour
  chords of ``length_km``, grid nodes on a square lattice of spacing ``length_km`` (node ``r * cols + c`` at
  ``(c, r) * length_km``), star leaves on a circle of radius ``length_km`` around the hub, so positions agree with
  lengths; complete-graph nodes sit on a circle of radius ``length_km`` (drawing only). ``grid`` uses ``rows x cols
  = N``; by default the most nearly square factorisation with ``rows <= cols`` (a prime N gives a 1 x N path).
* ``erdos-renyi``: each of the N(N-1)/2 pairs is linked independently with probability ``p`` (default
  ``min(1, 2 ln N / N)``, twice the connectivity threshold); links have length ``length_km``; nodes on a circle.
* ``waxman``: nodes uniform in a square of side ``area_km`` (km); pair (i, j) at distance d is linked with
  probability ``beta * exp(-d / (alpha * sqrt(2) * area_km))`` (Waxman 1988, with the square's diagonal as the
  distance scale).
* ``random-geometric``: nodes uniform in the square; pairs within ``radius_km`` are linked (default radius
  ``area_km * min(sqrt(2), 2 sqrt(ln N / (pi N)))``, twice the connectivity threshold).

In the geometric generators the link length is the Euclidean distance between its end nodes (km). The random
generators draw from the given ``rng`` only and resample (positions and links) until the graph is connected, at most
``max_attempts`` times (default 100), then raise :class:`~ceas_gym.config.ConfigError`.

Every bad input raises :class:`~ceas_gym.config.ConfigError` naming the node, edge, attribute or parameter and the
allowed values.
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from ceas_gym.config import ConfigError, check_choice, check_int, check_range
from ceas_gym.network.hardware import HARDWARE_PROFILES
from ceas_gym.network.topology_size import check_generation_fits, check_graph_fits
from ceas_gym.registry import Registry, UnknownNameError

DEFAULT_LENGTH_KM = 10.0
"""Link length (km) of the abstract topologies (ring, grid, complete, star, Erdős–Rényi)."""

DEFAULT_AREA_KM = 100.0
"""Side (km) of the square in which the geometric generators place nodes."""

DEFAULT_MAX_ATTEMPTS = 100
"""Resampling attempts of the random generators before giving up on connectivity."""

DEFAULT_NUM_NODES = 8
"""Node count of a generated topology when :class:`TopologyConfig` gives none."""

FILE_KIND = "file"
"""The :class:`TopologyConfig` kind that loads a graph from ``path`` instead of generating one."""

TopologyGenerator = Callable[..., nx.Graph]
"""``(num_nodes: int, rng: np.random.Generator, **params) -> nx.Graph``."""

TOPOLOGIES: Registry[TopologyGenerator] = Registry("topology")
"""Named topology generators. Add your own with ``@TOPOLOGIES.register("name")``."""


# ================================================================================================ generators
def _circle_positions(num_nodes: int, radius_km: float) -> np.ndarray:
    """Positions (km) of ``num_nodes`` points evenly spaced on a circle. ``(N, 2)``."""
    angles = 2.0 * np.pi * np.arange(num_nodes) / num_nodes
    return radius_km * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _build_graph(num_nodes: int, edges: np.ndarray, lengths_km: np.ndarray, positions: np.ndarray) -> nx.Graph:
    """A graph on nodes ``0..N-1`` with ``pos`` and ``length_km`` attributes, edges added in the given order."""
    check_graph_fits(num_nodes, int(edges.shape[0]))
    graph = nx.Graph()
    graph.add_nodes_from((i, {"pos": (float(x), float(y))}) for i, (x, y) in enumerate(positions.tolist()))
    graph.add_edges_from(
        (int(u), int(v), {"length_km": float(length)})
        for (u, v), length in zip(edges.tolist(), lengths_km.tolist(), strict=True)
    )
    return graph


def _check_length(name: str, length_km: float) -> None:
    check_range(name, length_km, 0.0, math.inf, low_inclusive=False, high_inclusive=False)


def _check_nodes(kind: str, num_nodes: int, minimum: int = 2) -> None:
    check_int(f"{kind}.num_nodes", num_nodes, minimum)


def _check_attempts(kind: str, max_attempts: int) -> None:
    check_int(f"{kind}.max_attempts", max_attempts, 1)


@TOPOLOGIES.register("ring")
def ring(num_nodes: int, rng: np.random.Generator, *, length_km: float = DEFAULT_LENGTH_KM) -> nx.Graph:
    """A cycle ``0 - 1 - ... - (N-1) - 0`` with links of ``length_km`` (km). Needs N >= 3."""
    _check_nodes("ring", num_nodes, 3)
    _check_length("ring.length_km", length_km)
    index = np.arange(num_nodes)
    edges = np.sort(np.stack([index, (index + 1) % num_nodes], axis=1), axis=1)
    radius = length_km / (2.0 * math.sin(math.pi / num_nodes))
    return _build_graph(num_nodes, edges, np.full(num_nodes, length_km), _circle_positions(num_nodes, radius))


def grid_shape(num_nodes: int, rows: int | None = None, cols: int | None = None) -> tuple[int, int]:
    """Return ``(rows, cols)`` with ``rows * cols = num_nodes``.

    With neither given: the most nearly square factorisation, ``rows <= cols``. With one given: the other is
    ``num_nodes`` divided by it. With both: they must multiply to ``num_nodes``.

    Raises:
        ConfigError: If the shape cannot hold exactly ``num_nodes`` nodes.
    """
    _check_nodes("grid", num_nodes)
    if rows is not None:
        check_int("grid.rows", rows, 1)
    if cols is not None:
        check_int("grid.cols", cols, 1)
    if rows is None and cols is None:
        rows = max(d for d in range(1, math.isqrt(num_nodes) + 1) if num_nodes % d == 0)
        return rows, num_nodes // rows
    if rows is not None and cols is not None:
        if rows * cols != num_nodes:
            raise ConfigError(
                f"grid.rows x grid.cols = {rows} x {cols} = {rows * cols}; allowed: rows x cols = N = {num_nodes}"
            )
        return rows, cols
    given_name, given = ("rows", rows) if rows is not None else ("cols", cols)
    assert given is not None
    if num_nodes % given != 0:
        divisors = [d for d in range(1, num_nodes + 1) if num_nodes % d == 0]
        raise ConfigError(
            f"grid.{given_name} = {given} does not divide N = {num_nodes}; allowed: {', '.join(map(str, divisors))}"
        )
    other = num_nodes // given
    return (given, other) if given_name == "rows" else (other, given)


@TOPOLOGIES.register("grid")
def grid(
    num_nodes: int,
    rng: np.random.Generator,
    *,
    rows: int | None = None,
    cols: int | None = None,
    length_km: float = DEFAULT_LENGTH_KM,
) -> nx.Graph:
    """A ``rows x cols`` square lattice (node ``r * cols + c``), links of ``length_km`` (km)."""
    rows, cols = grid_shape(num_nodes, rows, cols)
    _check_length("grid.length_km", length_km)
    node = np.arange(num_nodes).reshape(rows, cols)
    horizontal = np.stack([node[:, :-1].ravel(), node[:, 1:].ravel()], axis=1)
    vertical = np.stack([node[:-1, :].ravel(), node[1:, :].ravel()], axis=1)
    edges = np.concatenate([horizontal, vertical]).reshape(-1, 2)
    row, col = np.divmod(np.arange(num_nodes), cols)
    positions = length_km * np.stack([col, row], axis=1).astype(np.float64)
    return _build_graph(num_nodes, edges, np.full(edges.shape[0], length_km), positions)


@TOPOLOGIES.register("complete")
def complete(num_nodes: int, rng: np.random.Generator, *, length_km: float = DEFAULT_LENGTH_KM) -> nx.Graph:
    """Every pair linked, all links of ``length_km`` (km); nodes drawn on a circle of that radius."""
    _check_nodes("complete", num_nodes)
    _check_length("complete.length_km", length_km)
    edges = np.stack(np.triu_indices(num_nodes, 1), axis=1)
    return _build_graph(num_nodes, edges, np.full(edges.shape[0], length_km), _circle_positions(num_nodes, length_km))


@TOPOLOGIES.register("star")
def star(num_nodes: int, rng: np.random.Generator, *, length_km: float = DEFAULT_LENGTH_KM) -> nx.Graph:
    """Hub node 0 linked to every other node by a link of ``length_km`` (km)."""
    _check_nodes("star", num_nodes)
    _check_length("star.length_km", length_km)
    leaves = np.arange(1, num_nodes)
    edges = np.stack([np.zeros_like(leaves), leaves], axis=1)
    positions = np.concatenate([np.zeros((1, 2)), _circle_positions(num_nodes - 1, length_km)])
    return _build_graph(num_nodes, edges, np.full(num_nodes - 1, length_km), positions)


def _is_connected(num_nodes: int, edges: np.ndarray) -> bool:
    graph = nx.Graph()
    graph.add_nodes_from(range(num_nodes))
    graph.add_edges_from(edges.tolist())
    return nx.is_connected(graph)


def _not_connected_error(kind: str, num_nodes: int, max_attempts: int, detail: str) -> ConfigError:
    threshold = math.log(num_nodes) / num_nodes
    return ConfigError(
        f"{kind}: no connected graph with N = {num_nodes} in {max_attempts} attempts ({detail}); raise the link "
        f"density (connectivity needs about ln(N)/N = {threshold:.3g} of all pairs linked) or {kind}.max_attempts"
    )


@TOPOLOGIES.register("erdos-renyi")
def erdos_renyi(
    num_nodes: int,
    rng: np.random.Generator,
    *,
    p: float | None = None,
    length_km: float = DEFAULT_LENGTH_KM,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> nx.Graph:
    """Connected G(N, p): each pair linked with probability ``p``, resampled until connected."""
    _check_nodes("erdos-renyi", num_nodes)
    if p is None:
        p = min(1.0, 2.0 * math.log(num_nodes) / num_nodes)
    check_range("erdos-renyi.p", p, 0.0, 1.0, low_inclusive=False)
    _check_length("erdos-renyi.length_km", length_km)
    _check_attempts("erdos-renyi", max_attempts)
    upper_u, upper_v = np.triu_indices(num_nodes, 1)
    for _ in range(max_attempts):
        linked = rng.random(upper_u.size) < p
        edges = np.stack([upper_u[linked], upper_v[linked]], axis=1)
        if _is_connected(num_nodes, edges):
            return _build_graph(
                num_nodes, edges, np.full(edges.shape[0], length_km), _circle_positions(num_nodes, length_km)
            )
    raise _not_connected_error("erdos-renyi", num_nodes, max_attempts, f"p = {p:g}")


def _geometric_graph(
    kind: str,
    num_nodes: int,
    rng: np.random.Generator,
    area_km: float,
    max_attempts: int,
    link_probability: Callable[[np.ndarray], np.ndarray],
    detail: str,
) -> nx.Graph:
    """Place nodes uniformly in the square, link pairs with ``link_probability(distance_km)``, until connected."""
    upper_u, upper_v = np.triu_indices(num_nodes, 1)
    for _ in range(max_attempts):
        positions = rng.uniform(0.0, area_km, size=(num_nodes, 2))
        distance = np.linalg.norm(positions[upper_u] - positions[upper_v], axis=1)
        linked = rng.random(upper_u.size) < link_probability(distance)
        edges = np.stack([upper_u[linked], upper_v[linked]], axis=1)
        lengths = distance[linked]
        if np.all(lengths > 0.0) and _is_connected(num_nodes, edges):
            return _build_graph(num_nodes, edges, lengths, positions)
    raise _not_connected_error(kind, num_nodes, max_attempts, detail)


@TOPOLOGIES.register("waxman")
def waxman(
    num_nodes: int,
    rng: np.random.Generator,
    *,
    area_km: float = DEFAULT_AREA_KM,
    alpha: float = 0.4,
    beta: float = 0.6,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> nx.Graph:
    """Connected Waxman graph in a square of side ``area_km`` (km); link lengths are distances (km)."""
    _check_nodes("waxman", num_nodes)
    _check_length("waxman.area_km", area_km)
    check_range("waxman.alpha", alpha, 0.0, math.inf, low_inclusive=False, high_inclusive=False)
    check_range("waxman.beta", beta, 0.0, 1.0, low_inclusive=False)
    _check_attempts("waxman", max_attempts)
    scale_km = alpha * math.sqrt(2.0) * area_km
    return _geometric_graph(
        "waxman",
        num_nodes,
        rng,
        area_km,
        max_attempts,
        lambda distance: beta * np.exp(-distance / scale_km),
        f"alpha = {alpha:g}, beta = {beta:g}",
    )


@TOPOLOGIES.register("random-geometric")
def random_geometric(
    num_nodes: int,
    rng: np.random.Generator,
    *,
    area_km: float = DEFAULT_AREA_KM,
    radius_km: float | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> nx.Graph:
    """Connected random geometric graph: pairs closer than ``radius_km`` (km) are linked."""
    _check_nodes("random-geometric", num_nodes)
    _check_length("random-geometric.area_km", area_km)
    if radius_km is None:
        radius_km = area_km * min(math.sqrt(2.0), 2.0 * math.sqrt(math.log(num_nodes) / (math.pi * num_nodes)))
    check_range("random-geometric.radius_km", radius_km, 0.0, math.inf, low_inclusive=False, high_inclusive=False)
    _check_attempts("random-geometric", max_attempts)
    radius = float(radius_km)
    return _geometric_graph(
        "random-geometric",
        num_nodes,
        rng,
        area_km,
        max_attempts,
        lambda distance: (distance <= radius).astype(np.float64),
        f"radius_km = {radius:g}",
    )


def get_topology_generator(kind: str) -> TopologyGenerator:
    """Return the generator registered as ``kind``.

    Raises:
        ConfigError: If no generator has that name; the message lists the known names and the closest one.
    """
    try:
        return TOPOLOGIES.get(kind)
    except UnknownNameError as error:
        raise ConfigError(str(error)) from None


def generator_parameters(kind: str) -> list[str]:
    """Names of the keyword parameters the generator ``kind`` accepts (beyond ``num_nodes`` and ``rng``)."""
    signature = inspect.signature(get_topology_generator(kind))
    return [
        name
        for name in list(signature.parameters)[2:]
        if signature.parameters[name].kind != inspect.Parameter.VAR_KEYWORD
    ]


def _check_parameters(kind: str, params: Mapping[str, Any], where: str) -> None:
    allowed = generator_parameters(kind)
    signature = inspect.signature(get_topology_generator(kind))
    takes_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    for name in params:
        if name not in allowed and not takes_any:
            message = (
                f"{where}: unknown parameter {name!r} for topology {kind!r}; allowed: {', '.join(allowed) or '(none)'}"
            )
            close = difflib.get_close_matches(str(name), allowed, n=1)
            if close:
                message += f". Did you mean {close[0]!r}?"
            raise ConfigError(message)


def generate_topology(kind: str, num_nodes: int, rng: np.random.Generator, **params: Any) -> nx.Graph:
    """Generate a topology by name and return it validated (see :func:`validate_graph`).

    Args:
        kind: A name registered in :data:`TOPOLOGIES`.
        num_nodes: Number of nodes N.
        rng: The only source of randomness.
        **params: The generator's parameters (lengths in km).

    Raises:
        ConfigError: On an unknown kind or parameter, a bad value, or a generated graph that fails validation.
    """
    generator = get_topology_generator(kind)
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"{kind}.rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    check_int(f"{kind}.num_nodes", num_nodes, 2)
    _check_parameters(kind, params, kind)
    check_generation_fits(kind, num_nodes)
    return validate_graph(generator(num_nodes, rng, **params))


# ================================================================================================ validation
_DIGITS = re.compile(r"[0-9]+|[^0-9]+")


def node_sort_key(label: Any) -> tuple[Any, ...]:
    """Sort key giving the natural order of node labels (integers by value, strings digit-aware)."""
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        chunks: tuple[tuple[int, int, str], ...] = ((0, int(label), ""),)
    else:
        chunks = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in _DIGITS.findall(str(label)))
    return (chunks, type(label).__name__, repr(label))


def _edge_name(u: Any, v: Any) -> str:
    return f"edge ({u!r}, {v!r})"


def _number(value: Any, where: str, allowed: str) -> float:
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
    name = _edge_name(u, v)
    attributes = dict(data)
    if "length_km" not in data:
        raise ConfigError(f"{name}: attribute 'length_km' is missing; required: fibre length in km, a number > 0")
    length = _number(data["length_km"], f"{name} attribute 'length_km'", "a finite number > 0 (km)")
    if not (math.isfinite(length) and length > 0.0):
        raise ConfigError(f"{name} attribute 'length_km' = {length!r} is out of range; allowed: (0, inf) km")
    attributes["length_km"] = length
    if "eta" in data:
        eta = _number(data["eta"], f"{name} attribute 'eta'", "(0, 1]")
        if not 0.0 < eta <= 1.0:
            raise ConfigError(f"{name} attribute 'eta' = {eta!r} is out of range; allowed: (0, 1]")
        attributes["eta"] = eta
    if "fidelity0" in data:
        fidelity0 = _number(data["fidelity0"], f"{name} attribute 'fidelity0'", "(0.25, 1]")
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
        raise ConfigError(f"graph: self loops are not allowed; found {', '.join(_edge_name(u, v) for u, v in loops)}")
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
        for attributes, (x, y) in zip(node_attributes, _circle_positions(len(order), radius).tolist(), strict=True):
            attributes["pos"] = (float(x), float(y))
    result = nx.Graph()
    result.graph.update(graph.graph)
    for i, (label, attributes) in enumerate(zip(order, node_attributes, strict=True)):
        attributes.setdefault("label", label)
        result.add_node(i, **attributes)
    result.add_edges_from(edges)
    return result


# ================================================================================================ files
def load_graph(source: nx.Graph | str | os.PathLike[str]) -> nx.Graph:
    """Load a network graph and return it validated (see :func:`validate_graph`).

    Args:
        source: A :class:`networkx.Graph`, a GraphML file (suffix ``.graphml`` or ``.xml``) or an edge-list file
            (any other suffix). Edge-list lines read ``u v length_km [eta=<value>] [fidelity0=<value>]``; ``#``
            starts a comment; node labels are strings. In GraphML, numeric node attributes ``x`` and ``y`` (km)
            become ``pos`` when every node has both and none has ``pos``.

    Raises:
        ConfigError: If the file is missing or malformed, or the graph fails validation.
    """
    if isinstance(source, nx.Graph):
        return validate_graph(source)
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(f"graph source: expected a networkx.Graph or a file path, got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"graph file {str(path)!r} does not exist (or is not a file)")
    if path.suffix.lower() in (".graphml", ".xml"):
        return validate_graph(_read_graphml(path))
    return validate_graph(_read_edge_list(path))


def _read_graphml(path: Path) -> nx.Graph:
    try:
        graph = nx.read_graphml(path)
    except Exception as error:  # networkx raises several types for malformed XML
        raise ConfigError(f"graph file {str(path)!r}: not readable as GraphML ({error})") from None
    nodes = graph.nodes
    if all("x" in nodes[n] and "y" in nodes[n] and "pos" not in nodes[n] for n in graph.nodes):
        for n in graph.nodes:
            nodes[n]["pos"] = (nodes[n].pop("x"), nodes[n].pop("y"))
    return graph


_EDGE_LIST_OPTIONS = ("eta", "fidelity0")


def _read_edge_list(path: Path) -> nx.Graph:
    graph = nx.Graph()
    text = path.read_text(encoding="utf-8")
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"graph file {str(path)!r} line {number}"
        tokens = line.split()
        if len(tokens) < 3:
            raise ConfigError(f"{where}: expected 'u v length_km [eta=..] [fidelity0=..]', got {raw.strip()!r}")
        u, v, length = tokens[:3]
        attributes: dict[str, Any] = {"length_km": _number(length, f"{where} length_km", "a number > 0 (km)")}
        for option in tokens[3:]:
            key, sep, value = option.partition("=")
            if not sep or key not in _EDGE_LIST_OPTIONS:
                raise ConfigError(f"{where}: unknown option {option!r}; allowed: eta=<value>, fidelity0=<value>")
            attributes[key] = _number(value, f"{where} {key}", "a number")
        if graph.has_edge(u, v):
            raise ConfigError(f"{where}: {_edge_name(u, v)} is listed twice; allowed: one line per link")
        graph.add_edge(u, v, **attributes)
    return graph


def write_graphml(graph: nx.Graph, path: str | os.PathLike[str]) -> None:
    """Write a network graph as GraphML, storing ``pos`` as numeric node attributes ``x`` and ``y`` (km).

    :func:`load_graph` reads the file back into the same canonical graph.
    """
    out = nx.Graph()
    out.graph.update({k: v for k, v in graph.graph.items() if isinstance(v, (str, int, float, bool))})
    for node, data in graph.nodes(data=True):
        attributes = {k: v for k, v in data.items() if k != "pos" and v is not None}
        if "pos" in data:
            attributes["x"], attributes["y"] = (float(item) for item in data["pos"])
        out.add_node(node, **attributes)
    out.add_edges_from(graph.edges(data=True))
    nx.write_graphml(out, path)


# ================================================================================================ array view
def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Topology:
    """Array view of a validated network graph, for the hot path. Arrays are read-only.

    Attributes:
        num_nodes: Number of nodes N.
        edges: Link endpoints, ``u < v``, lexicographically sorted. ``(E, 2)`` int64.
        length_km: Fibre length per link (km). ``(E,)`` float.
        degree: Links per node. ``(N,)`` int64.
        positions: Node coordinates (km). ``(N, 2)`` float.
        eta: Link efficiency per link, NaN where the graph gives none. ``(E,)`` float.
        fidelity0: Fresh-pair Werner fidelity per link, NaN where the graph gives none. ``(E,)`` float.
        node_hardware: Hardware profile name per node, None where the graph gives none. Length N.
        labels: Original node labels. Length N.
    """

    num_nodes: int
    edges: np.ndarray
    length_km: np.ndarray
    degree: np.ndarray
    positions: np.ndarray
    eta: np.ndarray = field(default=None)  # type: ignore[assignment]
    fidelity0: np.ndarray = field(default=None)  # type: ignore[assignment]
    node_hardware: tuple[str | None, ...] = ()
    labels: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        check_int("Topology.num_nodes", self.num_nodes, 2)
        n = self.num_nodes
        edges = np.asarray(self.edges, dtype=np.int64)
        if edges.ndim != 2 or edges.shape[1] != 2 or edges.shape[0] == 0:
            raise ConfigError(f"Topology.edges: expected shape (E, 2) with E >= 1, got {edges.shape}")
        num_links = edges.shape[0]
        if np.any(edges[:, 0] >= edges[:, 1]) or edges.min() < 0 or edges.max() >= n:
            raise ConfigError(f"Topology.edges: every row must be (u, v) with 0 <= u < v < {n}")
        keys = edges[:, 0] * n + edges[:, 1]
        if np.any(np.diff(keys) <= 0):
            raise ConfigError("Topology.edges: rows must be sorted by (u, v) without duplicates")
        nan = np.full(num_links, np.nan)
        arrays = {
            "length_km": (self.length_km, (num_links,)),
            "positions": (self.positions, (n, 2)),
            "eta": (nan if self.eta is None else self.eta, (num_links,)),
            "fidelity0": (nan if self.fidelity0 is None else self.fidelity0, (num_links,)),
        }
        for name, (value, shape) in arrays.items():
            array = np.asarray(value, dtype=np.float64)
            if array.shape != shape:
                raise ConfigError(f"Topology.{name}: expected shape {shape}, got {array.shape}")
            object.__setattr__(self, name, _frozen(array))
        if not np.all(np.isfinite(self.length_km) & (self.length_km > 0)):
            raise ConfigError("Topology.length_km: every link needs a finite length > 0 km")
        degree = np.bincount(edges.ravel(), minlength=n)
        if not np.array_equal(np.asarray(self.degree), degree):
            raise ConfigError("Topology.degree: does not match the edges (expected the number of links per node)")
        object.__setattr__(self, "edges", _frozen(edges))
        object.__setattr__(self, "degree", _frozen(degree))
        hardware = tuple(self.node_hardware) or (None,) * n
        labels = tuple(self.labels) or tuple(range(n))
        if len(hardware) != n or len(labels) != n:
            raise ConfigError(f"Topology.node_hardware and Topology.labels: expected {n} entries each")
        object.__setattr__(self, "node_hardware", hardware)
        object.__setattr__(self, "labels", labels)

    @property
    def num_links(self) -> int:
        """Number of links E."""
        return int(self.edges.shape[0])

    def link_index(self, u: np.ndarray | int, v: np.ndarray | int) -> np.ndarray:
        """Link index of each node pair (either order), or -1 where the pair is not linked. Vectorised."""
        u_a, v_a = np.asarray(u, dtype=np.int64), np.asarray(v, dtype=np.int64)
        low, high = np.minimum(u_a, v_a), np.maximum(u_a, v_a)
        keys = self.edges[:, 0] * self.num_nodes + self.edges[:, 1]
        query = low * self.num_nodes + high
        position = np.clip(np.searchsorted(keys, query), 0, keys.size - 1)
        return np.where(keys[position] == query, position, -1)[()]

    @classmethod
    def from_graph(cls, graph: nx.Graph) -> Topology:
        """Validate ``graph`` (see :func:`validate_graph`) and return its array view."""
        canonical = validate_graph(graph)
        n = canonical.number_of_nodes()
        edge_rows = list(canonical.edges(data=True))
        edges = np.array([(u, v) for u, v, _ in edge_rows], dtype=np.int64).reshape(-1, 2)
        order = np.lexsort((edges[:, 1], edges[:, 0]))
        edges = edges[order]
        data = [edge_rows[i][2] for i in order.tolist()]
        nodes = [canonical.nodes[i] for i in range(n)]
        return cls(
            num_nodes=n,
            edges=edges,
            length_km=np.array([d["length_km"] for d in data]),
            degree=np.bincount(edges.ravel(), minlength=n),
            positions=np.array([d["pos"] for d in nodes], dtype=np.float64),
            eta=np.array([d.get("eta", np.nan) for d in data], dtype=np.float64),
            fidelity0=np.array([d.get("fidelity0", np.nan) for d in data], dtype=np.float64),
            node_hardware=tuple(d.get("hardware") for d in nodes),
            labels=tuple(d["label"] for d in nodes),
        )

    def to_graph(self) -> nx.Graph:
        """Return the canonical graph (nodes ``0..N-1`` with ``pos``, ``label``, ``hardware``; link attributes)."""
        graph = nx.Graph()
        for i in range(self.num_nodes):
            attributes: dict[str, Any] = {"pos": tuple(float(c) for c in self.positions[i]), "label": self.labels[i]}
            if self.node_hardware[i] is not None:
                attributes["hardware"] = self.node_hardware[i]
            graph.add_node(i, **attributes)
        for (u, v), length, eta, fidelity0 in zip(
            self.edges.tolist(), self.length_km.tolist(), self.eta.tolist(), self.fidelity0.tolist(), strict=True
        ):
            attributes = {"length_km": length}
            if not math.isnan(eta):
                attributes["eta"] = eta
            if not math.isnan(fidelity0):
                attributes["fidelity0"] = fidelity0
            graph.add_edge(u, v, **attributes)
        return graph


# ================================================================================================ configuration
@dataclass(frozen=True)
class TopologyConfig:
    """How to build a topology: a registered generator with parameters, or a graph file.

    Attributes:
        kind: A name registered in :data:`TOPOLOGIES`, or ``"file"`` to load ``path``.
        num_nodes: Number of nodes N (>= 2); None means :data:`DEFAULT_NUM_NODES` for a generator. For
            ``"file"``: None (take the file's count), or the node count the file must have.
        params: Generator parameters by name (lengths in km), as a mapping or a sequence of ``(name, value)``
            pairs; stored as a tuple of pairs sorted by name. Must be empty for ``"file"``.
        path: Graph file for ``"file"`` (GraphML or edge list, see :func:`load_graph`); None otherwise.
    """

    kind: str = "ring"
    num_nodes: int | None = None
    params: Mapping[str, Any] | tuple[tuple[str, Any], ...] = ()
    path: str | None = None

    def __post_init__(self) -> None:
        check_choice("TopologyConfig.kind", self.kind, [*TOPOLOGIES.names(), FILE_KIND])
        object.__setattr__(self, "params", _normalise_params(self.params))
        if self.kind == FILE_KIND:
            if not isinstance(self.path, str) or not self.path:
                raise ConfigError("TopologyConfig.path: required (a GraphML or edge-list file) when kind = 'file'")
            if self.num_nodes is not None:
                check_int("TopologyConfig.num_nodes", self.num_nodes, 2)
            if self.params:
                raise ConfigError("TopologyConfig.params: must be empty when kind = 'file' (the file is the graph)")
            return
        if self.path is not None:
            raise ConfigError(f"TopologyConfig.path: only allowed with kind = 'file', got kind = {self.kind!r}")
        if self.num_nodes is None:
            object.__setattr__(self, "num_nodes", DEFAULT_NUM_NODES)
        check_int("TopologyConfig.num_nodes", self.num_nodes, 2)
        _check_parameters(self.kind, self.params_dict, "TopologyConfig.params")

    @property
    def params_dict(self) -> dict[str, Any]:
        """The generator parameters as a dict."""
        return dict(self.params)  # type: ignore[arg-type]


def _normalise_params(params: Any) -> tuple[tuple[str, Any], ...]:
    if isinstance(params, Mapping):
        items = list(params.items())
    elif isinstance(params, (list, tuple)):
        items = []
        for item in params:
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise ConfigError(f"TopologyConfig.params: expected (name, value) pairs, got {item!r}")
            items.append((item[0], item[1]))
    else:
        raise ConfigError(f"TopologyConfig.params: expected a mapping of name to value, got {type(params).__name__}")
    names = [name for name, _ in items]
    for name, value in items:
        if not isinstance(name, str):
            raise ConfigError(f"TopologyConfig.params: parameter names must be strings, got {name!r}")
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise ConfigError(f"TopologyConfig.params.{name} = {value!r}: expected a number, a string or None")
    if len(set(names)) != len(names):
        raise ConfigError(f"TopologyConfig.params: duplicate parameter names in {names}")
    return tuple(sorted(items))


def build_topology(config: TopologyConfig, rng: np.random.Generator) -> Topology:
    """Build the :class:`Topology` described by ``config``, drawing any randomness from ``rng``.

    Raises:
        ConfigError: On any invalid parameter, file or graph, or a file whose node count differs from
            ``config.num_nodes``.
    """
    if config.kind == FILE_KIND:
        assert config.path is not None
        topology = Topology.from_graph(load_graph(config.path))
        if config.num_nodes is not None and topology.num_nodes != config.num_nodes:
            raise ConfigError(
                f"TopologyConfig.num_nodes = {config.num_nodes} but {config.path!r} has {topology.num_nodes} nodes; "
                "allowed: the file's node count or None"
            )
        return topology
    assert config.num_nodes is not None
    return Topology.from_graph(generate_topology(config.kind, config.num_nodes, rng, **config.params_dict))
