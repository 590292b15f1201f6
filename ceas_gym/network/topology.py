"""Network topologies: the array view the hot path reads, their configuration, and building one from it.

The generators live in :mod:`ceas_gym.network.generators`, the canonical form and its validation in
:mod:`ceas_gym.network.graphs`, files in :mod:`ceas_gym.network.graph_files`; this module re-exports their public
names, so ``from ceas_gym.network.topology import TOPOLOGIES, validate_graph, load_graph`` keeps working.

A topology is an undirected, connected graph in the canonical form of :func:`validate_graph` (nodes ``0 .. N-1``,
edges in ``(u, v)`` order, validated attributes; the convention is spelled out in :mod:`ceas_gym.network.graphs`).
:class:`Topology` is its array view, with the edge order as the link index of every simulator array.

Every bad input raises :class:`~ceas_gym.config.ConfigError` naming the node, edge, attribute or parameter and the
allowed values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from ceas_gym.config import ConfigError, check_choice, check_int
from ceas_gym.network.generators import (
    DEFAULT_AREA_KM,
    DEFAULT_LENGTH_KM,
    DEFAULT_MAX_ATTEMPTS,
    TOPOLOGIES,
    TopologyGenerator,
    check_generator_parameters,
    generate_topology,
    generator_parameters,
    get_topology_generator,
    grid_shape,
    ring,
)
from ceas_gym.network.graph_files import load_graph, write_graphml
from ceas_gym.network.graphs import node_sort_key, validate_graph

__all__ = [
    "DEFAULT_AREA_KM",
    "DEFAULT_LENGTH_KM",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_NUM_NODES",
    "FILE_KIND",
    "TOPOLOGIES",
    "Topology",
    "TopologyConfig",
    "TopologyGenerator",
    "build_topology",
    "generate_topology",
    "generator_parameters",
    "get_topology_generator",
    "grid_shape",
    "load_graph",
    "node_sort_key",
    "ring",
    "validate_graph",
    "write_graphml",
]

DEFAULT_NUM_NODES = 8
"""Node count of a generated topology when :class:`TopologyConfig` gives none."""

FILE_KIND = "file"
"""The :class:`TopologyConfig` kind that loads a graph from ``path`` instead of generating one."""


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
        return cls._from_canonical(validate_graph(graph))

    @classmethod
    def _from_canonical(cls, canonical: nx.Graph) -> Topology:
        """The array view of a graph that :func:`validate_graph` returned, without checking it again.

        Validation costs as much as the rest of the build on graphs of 10^5 links, so graphs known to be canonical
        (fresh from :func:`generate_topology` or :func:`load_graph`) skip the second pass.
        """
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
        check_generator_parameters(self.kind, self.params_dict, "TopologyConfig.params")

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
        topology = Topology._from_canonical(load_graph(config.path))  # load_graph validates
        if config.num_nodes is not None and topology.num_nodes != config.num_nodes:
            raise ConfigError(
                f"TopologyConfig.num_nodes = {config.num_nodes} but {config.path!r} has {topology.num_nodes} nodes; "
                "allowed: the file's node count or None"
            )
        return topology
    assert config.num_nodes is not None
    # generate_topology returns the canonical graph (validated), so it is not validated a second time.
    return Topology._from_canonical(generate_topology(config.kind, config.num_nodes, rng, **config.params_dict))
