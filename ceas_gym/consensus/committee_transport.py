"""What the committee protocol asks of the network: update uploads hop by hop, and the QDS key material.

Both request pairs from a :class:`~ceas_gym.consensus.pairs.PairProvider` along the paths of
:class:`~ceas_gym.consensus.committee_routing.CommitteeRouting` (the rules are steps 2 and 4 of
:mod:`ceas_gym.consensus.qba_protocol`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ceas_gym.consensus.committee_routing import CommitteeRouting
from ceas_gym.consensus.pairs import PairProvider

__all__ = ["KeyGrant", "Served", "Upload", "rank_within", "request_keys", "serve_single", "upload_updates"]


@dataclass(frozen=True)
class Served:
    """Grants of a batch of single-link exchanges, all of which were requested."""

    granted: np.ndarray  # (K,) bool
    fidelity: np.ndarray  # (K,) mean delivered Werner fidelity, NaN where not granted
    attempted: int


@dataclass(frozen=True)
class Upload:
    """The uploads' outcome: which updates arrived, at what fidelity, to whom, and what the hops cost."""

    arrived: np.ndarray  # (N,) bool
    arrival_fidelity: np.ndarray  # (N,) end-to-end Werner fidelity; 1 for members, NaN if not arrived
    receiver: np.ndarray  # (N,) committee member that received a travelled update, -1 otherwise
    pairs_per_edge: np.ndarray  # (E,) int
    fidelities: list[np.ndarray]  # delivered fidelity of every granted hop, per hop step
    attempted: int
    granted: int


@dataclass(frozen=True)
class KeyGrant:
    """The key requests' outcome: starved members, pairs consumed, and the key bits the granted paths yield."""

    starved: np.ndarray  # (N_c,) bool, committee order: a member with a key path not granted
    pairs_per_edge: np.ndarray  # (E,) int, pairs consumed on granted links
    fidelity: np.ndarray  # delivered fidelity of the granted key links
    attempted: int
    granted: int
    keyed_bits: int  # key bits of the member pairs whose whole path was granted (bits)


def serve_single(provider: PairProvider, links: np.ndarray, rank: np.ndarray, amount: int) -> Served:
    """Request one exchange of ``amount`` pairs per entry, one call per rank (entries of a rank: distinct)."""
    granted = np.zeros(links.size, dtype=bool)
    fidelity = np.full(links.size, math.nan)
    for level in range(int(rank.max()) + 1 if rank.size else 0):
        entries = np.flatnonzero(rank == level)
        answer, mean_fidelity = provider.request(links[entries], amount)
        granted[entries] = np.asarray(answer, dtype=bool)
        fidelity[entries] = np.where(granted[entries], np.asarray(mean_fidelity, dtype=np.float64), math.nan)
    return Served(granted, fidelity, int(links.size))


def rank_within(links: np.ndarray) -> np.ndarray:
    """Position of each entry among the earlier entries with the same link (0 for the first)."""
    order = np.argsort(links, kind="stable")
    sorted_links = links[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_links)) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, sorted_links.size]))
    rank = np.empty(links.size, dtype=np.int64)
    rank[order] = np.arange(links.size) - group_start
    return rank


def upload_updates(provider: PairProvider, routing: CommitteeRouting, members: tuple[int, ...], amount: int) -> Upload:
    """Move every update hop by hop to its nearest member, ``amount`` pairs per hop; a refused hop stops it.

    At hop step ``k`` every update still travelling requests its ``k``-th link; updates that need the same link in
    one step are served one call after another in ascending source id.
    """
    n = routing.num_nodes
    sources, targets, routes = routing.upload_routes(members)
    alive = np.ones(sources.size, dtype=bool)
    werner = np.ones(sources.size)
    pairs_per_edge = np.zeros(routing.num_links, dtype=np.int64)
    fidelities: list[np.ndarray] = []
    attempted = granted_count = 0
    for hop in range(routes.shape[1]):
        travelling = np.flatnonzero(alive & (routes[:, hop] >= 0))
        if travelling.size == 0:
            continue
        links = routes[travelling, hop]
        served = serve_single(provider, links, rank_within(links), amount)
        attempted += served.attempted
        granted_count += int(served.granted.sum())
        np.add.at(pairs_per_edge, links[served.granted], amount)
        fidelities.append(served.fidelity[served.granted])
        alive[travelling[~served.granted]] = False
        werner[travelling[served.granted]] *= (4.0 * served.fidelity[served.granted] - 1.0) / 3.0
    arrived = np.zeros(n, dtype=bool)
    arrived[list(members)] = True
    arrived[sources[alive]] = True
    arrival_fidelity = np.full(n, math.nan)
    arrival_fidelity[list(members)] = 1.0
    arrival_fidelity[sources[alive]] = (1.0 + 3.0 * werner[alive]) / 4.0
    receiver = np.full(n, -1, dtype=np.int64)
    receiver[sources[alive]] = targets[alive]
    return Upload(arrived, arrival_fidelity, receiver, pairs_per_edge, fidelities, attempted, granted_count)


def request_keys(
    provider: PairProvider,
    routing: CommitteeRouting,
    members: tuple[int, ...],
    key_bits: np.ndarray,
    key_bits_per_pair: float,
) -> KeyGrant:
    """Request every key link's pairs (one call per distinct pair count) and find the key-starved members.

    Args:
        provider: The round's pair provider.
        routing: The network's shortest paths.
        members: Committee node ids in draw order.
        key_bits: Key bits per pair of committee positions. ``(N_c, N_c)`` symmetric int.
        key_bits_per_pair: Secret key bits one pair yields (bits per pair).
    """
    positions, needed, links = routing.key_paths(members, key_bits, key_bits_per_pair)
    per_edge = routing.pairs_per_link(needed, links)
    wanted = np.flatnonzero(per_edge > 0)
    link_granted = np.ones(routing.num_links, dtype=bool)
    fidelity = np.zeros(0)
    granted_count = 0
    for amount in np.unique(per_edge[wanted]):  # one call per distinct pair count
        ids = wanted[per_edge[wanted] == amount]
        answer, mean_fidelity = provider.request(ids, int(amount))
        answer = np.asarray(answer, dtype=bool)
        link_granted[ids] = answer
        granted_count += int(answer.sum())
        fidelity = np.r_[fidelity, np.asarray(mean_fidelity, dtype=np.float64)[answer]]
    consumed = np.where(link_granted, per_edge, 0)
    reachable = (links >= 0).any(axis=1) | (needed == 0)
    path_ok = reachable & np.all(np.where(links >= 0, link_granted[np.maximum(links, 0)], True), axis=1)
    starved = np.zeros(len(members), dtype=bool)
    starved[positions[~path_ok].ravel()] = True
    keyed_bits = int(key_bits[positions[path_ok, 0], positions[path_ok, 1]].sum())
    return KeyGrant(starved, consumed, fidelity, int(wanted.size), granted_count, keyed_bits)
