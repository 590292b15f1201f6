"""Memory a topology takes to generate and hold, checked before it is built (:func:`ceas_gym.memory.check_fits`).

Figures (bytes, peak, measured with ``tracemalloc`` on the built-in generators and rounded up): a link of the
built and validated graph about 850 (-> :data:`BYTES_PER_LINK`), a node about 2,300 (-> :data:`BYTES_PER_NODE`),
and a candidate pair of the pairwise generators (index pair, distance, draw) 56 (:data:`BYTES_PER_CANDIDATE_PAIR`).
"""

from __future__ import annotations

from ceas_gym.memory import check_fits

__all__ = ["check_generation_fits", "check_graph_fits"]

BYTES_PER_LINK = 1_000
BYTES_PER_NODE = 2_500
BYTES_PER_CANDIDATE_PAIR = 56
PAIRWISE_KINDS = frozenset({"complete", "erdos-renyi", "waxman", "random-geometric"})
"""Generators that consider every pair of nodes (N (N - 1) / 2 candidates) before choosing links."""
FIELD = "TopologyConfig.num_nodes"


def check_generation_fits(kind: str, num_nodes: int) -> None:
    """Refuse a generator call whose candidate pairs, known links and nodes cannot fit in memory.

    Raises:
        ConfigError: Naming ``TopologyConfig.num_nodes``, the estimate and the memory available.
    """
    pairs = num_nodes * (num_nodes - 1) // 2 if kind in PAIRWISE_KINDS else 0
    known_links = {"ring": num_nodes, "grid": 2 * num_nodes, "star": num_nodes - 1, "complete": pairs}.get(kind, 0)
    needed = pairs * BYTES_PER_CANDIDATE_PAIR + known_links * BYTES_PER_LINK + num_nodes * BYTES_PER_NODE
    check_fits(FIELD, needed, f"a {kind} topology of {num_nodes} nodes", "lower num_nodes")


def check_graph_fits(num_nodes: int, num_links: int) -> None:
    """Refuse building a graph of ``num_nodes`` nodes and ``num_links`` links that cannot fit in memory.

    Raises:
        ConfigError: Naming ``TopologyConfig.num_nodes``, the estimate and the memory available.
    """
    needed = num_links * BYTES_PER_LINK + num_nodes * BYTES_PER_NODE
    check_fits(
        FIELD,
        needed,
        f"a graph of {num_nodes} nodes and {num_links} links",
        "lower num_nodes or make the graph sparser (its density parameters)",
    )
