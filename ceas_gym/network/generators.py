"""Topology generators: the built-in ones and the registry a plug-in adds its own to.

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
from collections.abc import Callable, Mapping
from typing import Any

import networkx as nx
import numpy as np

from ceas_gym.config import ConfigError, check_int, check_range
from ceas_gym.network.graphs import circle_positions, validate_graph
from ceas_gym.network.topology_size import check_generation_fits, check_graph_fits
from ceas_gym.registry import Registry, UnknownNameError

__all__ = [
    "DEFAULT_AREA_KM",
    "DEFAULT_LENGTH_KM",
    "DEFAULT_MAX_ATTEMPTS",
    "TOPOLOGIES",
    "TopologyGenerator",
    "check_generator_parameters",
    "complete",
    "erdos_renyi",
    "generate_topology",
    "generator_parameters",
    "get_topology_generator",
    "grid",
    "grid_shape",
    "random_geometric",
    "ring",
    "star",
    "waxman",
]

DEFAULT_LENGTH_KM = 10.0
"""Link length (km) of the abstract topologies (ring, grid, complete, star, Erdős–Rényi)."""

DEFAULT_AREA_KM = 100.0
"""Side (km) of the square in which the geometric generators place nodes."""

DEFAULT_MAX_ATTEMPTS = 100
"""Resampling attempts of the random generators before giving up on connectivity."""

TopologyGenerator = Callable[..., nx.Graph]
"""``(num_nodes: int, rng: np.random.Generator, **params) -> nx.Graph``."""

TOPOLOGIES: Registry[TopologyGenerator] = Registry("topology")
"""Named topology generators. Add your own with ``@TOPOLOGIES.register("name")``."""


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
    return _build_graph(num_nodes, edges, np.full(num_nodes, length_km), circle_positions(num_nodes, radius))


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
    return _build_graph(num_nodes, edges, np.full(edges.shape[0], length_km), circle_positions(num_nodes, length_km))


@TOPOLOGIES.register("star")
def star(num_nodes: int, rng: np.random.Generator, *, length_km: float = DEFAULT_LENGTH_KM) -> nx.Graph:
    """Hub node 0 linked to every other node by a link of ``length_km`` (km)."""
    _check_nodes("star", num_nodes)
    _check_length("star.length_km", length_km)
    leaves = np.arange(1, num_nodes)
    edges = np.stack([np.zeros_like(leaves), leaves], axis=1)
    positions = np.concatenate([np.zeros((1, 2)), circle_positions(num_nodes - 1, length_km)])
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
                num_nodes, edges, np.full(edges.shape[0], length_km), circle_positions(num_nodes, length_km)
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


def check_generator_parameters(kind: str, params: Mapping[str, Any], where: str) -> None:
    """Raise :class:`~ceas_gym.config.ConfigError` naming ``where`` for a parameter ``kind`` does not take."""
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
    check_generator_parameters(kind, params, kind)
    check_generation_fits(kind, num_nodes)
    return validate_graph(generator(num_nodes, rng, **params))
