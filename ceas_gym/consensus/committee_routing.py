"""Hop-count shortest paths of the network, for the committee protocol's uploads and key material.

Uploads go from every non-member to its nearest committee member, QDS keys between every pair of members; both
follow the shortest path in hops (scipy's BFS predecessors), walked link by link, vectorised over the paths. The
network is fixed, so a committee's routes are computed once and kept (up to :data:`ROUTE_CACHE_SIZE` committees).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path

__all__ = ["ROUTE_CACHE_SIZE", "CommitteeRouting"]

ROUTE_CACHE_SIZE = 16384
"""Committees whose routes a :class:`CommitteeRouting` keeps; the table is emptied when full."""


class CommitteeRouting:
    """Shortest paths (in hops) between the nodes of a network and the link ids along them.

    Args:
        num_nodes: Number of nodes N.
        edges: Link endpoints, ``u < v``, already checked. ``(E, 2)`` int; link ids are its row indices.

    Attributes:
        hops: Hop count between every two nodes, inf when disconnected. ``(N, N)`` float.
        predecessors: ``[c, i]`` is the node before ``i`` on the path from ``c``, i.e. ``i``'s next hop toward
            ``c``. ``(N, N)`` int.
        edge_index: Link id of each node pair, -1 where there is no link. ``(N, N)`` int.
    """

    def __init__(self, num_nodes: int, edges: np.ndarray) -> None:
        n, edge_count = num_nodes, edges.shape[0]
        self.num_nodes = num_nodes
        self.num_links = edge_count
        self.edge_index = np.full((n, n), -1, dtype=np.int64)
        self.edge_index[edges[:, 0], edges[:, 1]] = np.arange(edge_count)
        self.edge_index[edges[:, 1], edges[:, 0]] = np.arange(edge_count)
        graph = csr_matrix((np.ones(edge_count), (edges[:, 0], edges[:, 1])), shape=(n, n))
        self.hops, self.predecessors = shortest_path(graph, directed=False, unweighted=True, return_predecessors=True)
        self._routes: dict[tuple, tuple[np.ndarray, ...]] = {}

    def _cached(self, key: tuple, compute: Callable[[], tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
        """``compute()`` once per ``key`` (read-only arrays: callers share them)."""
        routes = self._routes.get(key)
        if routes is None:
            if len(self._routes) >= ROUTE_CACHE_SIZE:
                self._routes.clear()
            routes = compute()
            for array in routes:
                array.flags.writeable = False
            self._routes[key] = routes
        return routes

    def walk(self, start: np.ndarray, target: np.ndarray, length: int) -> np.ndarray:
        """Link ids of the path from each ``start`` to its ``target``, hop by hop, padded with -1. ``(K, length)``.

        A path that starts at its target stays empty (all -1).
        """
        links = np.full((start.size, length), -1, dtype=np.int64)
        position = start.copy()
        for hop in range(length):  # loop over hops, vectorised over the paths
            moving = position != target
            following = self.predecessors[target[moving], position[moving]]
            links[moving, hop] = self.edge_index[position[moving], following]
            position[moving] = following
        return links

    def upload_routes(self, members: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each non-member's route to its nearest committee member.

        Args:
            members: Committee node ids in draw order (ties in distance go to the earlier one).

        Returns:
            ``(sources (S,), targets (S,), links (S, H))``: uploading nodes (ascending id), their committee member,
            and the link ids of each route hop by hop, padded with -1 (H = the longest route, in hops). Nodes with
            no path to any member are left out.
        """
        return self._cached(("upload", tuple(members)), lambda: self._upload_routes(members))

    def _upload_routes(self, members: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        committee = np.asarray(members, dtype=np.int64)
        is_member = np.zeros(self.num_nodes, dtype=bool)
        is_member[committee] = True
        distance = self.hops[committee]  # (C, N)
        nearest = np.argmin(distance, axis=0)  # first minimum: earlier in the draw order
        reachable = np.isfinite(distance.min(axis=0))
        sources = np.flatnonzero(~is_member & reachable)
        targets = committee[nearest[sources]]
        length = int(distance.min(axis=0)[sources].max()) if sources.size else 0
        return sources, targets, self.walk(sources, targets, length)

    def key_paths(
        self, members: tuple[int, ...], key_bits: np.ndarray, key_bits_per_pair: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Member pairs that need key material, their end-to-end pair count, and their paths' links.

        Args:
            members: Committee node ids in draw order.
            key_bits: Key bits per pair of committee positions. ``(N_c, N_c)`` symmetric int.
            key_bits_per_pair: Secret key bits one pair yields (bits per pair).

        Returns:
            ``(pair_positions (K, 2), pairs_needed (K,), links (K, H))``: committee positions ``a < b`` with key
            bits, ``ceil(K_ab / key_bits_per_pair)`` end-to-end pairs, and the link ids of the shortest a-b path
            padded with -1 (a row of all -1 with ``pairs_needed > 0`` marks an unreachable pair).
        """
        key = ("keys", tuple(members), key_bits.tobytes(), key_bits.shape, float(key_bits_per_pair))
        return self._cached(key, lambda: self._key_paths(members, key_bits, key_bits_per_pair))

    def _key_paths(
        self, members: tuple[int, ...], key_bits: np.ndarray, key_bits_per_pair: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        committee = np.asarray(members, dtype=np.int64)
        first, second = np.nonzero(np.triu(key_bits, k=1))
        pair_positions = np.stack([first, second], axis=1)
        needed = np.ceil(key_bits[first, second] / key_bits_per_pair - 1e-9).astype(np.int64)
        a, b = committee[first], committee[second]
        distance = self.hops[a, b]
        finite = np.isfinite(distance)
        length = int(distance[finite].max()) if finite.any() else 0
        return pair_positions, needed, self.walk(np.where(finite, a, b), b, length)

    def pairs_per_link(self, needed: np.ndarray, links: np.ndarray) -> np.ndarray:
        """Pairs each link carries when path ``k`` needs ``needed[k]`` pairs on every link of ``links[k]``. ``(E,)``."""
        counts = np.zeros(self.num_links, dtype=np.int64)
        valid = links >= 0
        np.add.at(counts, links[valid], np.broadcast_to(needed[:, None], links.shape)[valid])
        return counts
