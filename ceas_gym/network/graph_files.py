"""Network graphs from and to files: GraphML and a plain edge list.

Every graph read is returned in the canonical form of :func:`~ceas_gym.network.graphs.validate_graph`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import networkx as nx

from ceas_gym.config import ConfigError
from ceas_gym.network.graphs import edge_name, parse_number, validate_graph

__all__ = ["load_graph", "write_graphml"]


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
        attributes: dict[str, Any] = {"length_km": parse_number(length, f"{where} length_km", "a number > 0 (km)")}
        for option in tokens[3:]:
            key, sep, value = option.partition("=")
            if not sep or key not in _EDGE_LIST_OPTIONS:
                raise ConfigError(f"{where}: unknown option {option!r}; allowed: eta=<value>, fidelity0=<value>")
            attributes[key] = parse_number(value, f"{where} {key}", "a number")
        if graph.has_edge(u, v):
            raise ConfigError(f"{where}: {edge_name(u, v)} is listed twice; allowed: one line per link")
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
