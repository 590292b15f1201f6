"""What the committee protocol asks of the network: update uploads hop by hop, and the QDS key material.

Both request pairs from a :class:`~ceas_gym.consensus.pairs.PairProvider` along the paths of
:class:`~ceas_gym.consensus.committee_routing.CommitteeRouting` (the rules are steps 2 and 4 of
:mod:`ceas_gym.consensus.qba_protocol`). Both run for many copies of one network at once (the batched CEAS round's
copies, each with its own committee): copy ``c``'s links are the provider's ids ``c L .. (c + 1) L - 1``, and the
copies' requests go to the provider in shared calls, which serves every copy exactly as separate calls would (a
call consumes from the links it names only, and no link belongs to two copies). One copy is the case of one
protocol object (:func:`upload_updates`, :func:`request_keys`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ceas_gym.consensus.committee_routing import CommitteeRouting
from ceas_gym.consensus.pairs import PairProvider

__all__ = [
    "KeyGrant",
    "KeyGrants",
    "Served",
    "Upload",
    "Uploads",
    "rank_within",
    "request_keys",
    "request_keys_many",
    "serve_single",
    "upload_updates",
    "upload_updates_many",
]


@dataclass(frozen=True)
class Served:
    """Grants of a batch of single-link exchanges, all of which were requested."""

    granted: np.ndarray  # (K,) bool
    fidelity: np.ndarray  # (K,) mean delivered Werner fidelity, NaN where not granted
    attempted: int


@dataclass(frozen=True)
class Upload:
    """One copy's uploads: which updates arrived, at what fidelity, to whom, and what the hops cost."""

    arrived: np.ndarray  # (N,) bool
    arrival_fidelity: np.ndarray  # (N,) end-to-end Werner fidelity; 1 for members, NaN if not arrived
    receiver: np.ndarray  # (N,) committee member that received a travelled update, -1 otherwise
    pairs_per_edge: np.ndarray  # (L,) int
    fidelity_sum: float  # sum of the delivered fidelities of the granted hops
    attempted: int
    granted: int


@dataclass(frozen=True)
class Uploads:
    """The uploads of C copies (the fields of :class:`Upload` with a leading copy axis)."""

    arrived: np.ndarray  # (C, N) bool
    arrival_fidelity: np.ndarray  # (C, N)
    receiver: np.ndarray  # (C, N) int
    pairs_per_edge: np.ndarray  # (C, L) int
    fidelity_sum: np.ndarray  # (C,)
    attempted: np.ndarray  # (C,) int
    granted: np.ndarray  # (C,) int

    def copy(self, index: int) -> Upload:
        """Copy ``index``'s uploads."""
        return Upload(
            self.arrived[index],
            self.arrival_fidelity[index],
            self.receiver[index],
            self.pairs_per_edge[index],
            float(self.fidelity_sum[index]),
            int(self.attempted[index]),
            int(self.granted[index]),
        )


@dataclass(frozen=True)
class KeyGrant:
    """One copy's key requests: starved members, pairs consumed, and the key bits the granted paths yield."""

    starved: np.ndarray  # (N_c,) bool, committee order: a member with a key path not granted
    pairs_per_edge: np.ndarray  # (L,) int, pairs consumed on granted links
    fidelity_sum: float  # sum of the delivered fidelities of the granted key links
    attempted: int
    granted: int
    keyed_bits: int  # key bits of the member pairs whose whole path was granted (bits)


@dataclass(frozen=True)
class KeyGrants:
    """The key requests of C copies (the fields of :class:`KeyGrant` with a leading copy axis)."""

    starved: np.ndarray  # (C, N_c) bool
    pairs_per_edge: np.ndarray  # (C, L) int
    fidelity_sum: np.ndarray  # (C,)
    attempted: np.ndarray  # (C,) int
    granted: np.ndarray  # (C,) int
    keyed_bits: np.ndarray  # (C,) int

    def copy(self, index: int) -> KeyGrant:
        """Copy ``index``'s key requests."""
        return KeyGrant(
            self.starved[index],
            self.pairs_per_edge[index],
            float(self.fidelity_sum[index]),
            int(self.attempted[index]),
            int(self.granted[index]),
            int(self.keyed_bits[index]),
        )


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


def _stack_routes(routes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], num_links: int):
    """Every copy's upload routes in one table, link ids shifted: ``(copy, source, target, links)`` per route."""
    sizes = [sources.size for sources, _, _ in routes]
    copy_of = np.repeat(np.arange(len(routes)), sizes)
    length = max((links.shape[1] for _, _, links in routes), default=0)
    table = np.full((copy_of.size, length), -1, dtype=np.int64)
    row = 0
    for (_, _, links), size in zip(routes, sizes, strict=True):
        table[row : row + size, : links.shape[1]] = links
        row += size
    table = np.where(table >= 0, table + copy_of[:, None] * num_links, -1)
    sources = np.concatenate([sources for sources, _, _ in routes]) if routes else np.zeros(0, dtype=np.int64)
    targets = np.concatenate([targets for _, targets, _ in routes]) if routes else np.zeros(0, dtype=np.int64)
    return copy_of, sources.astype(np.int64), targets.astype(np.int64), table


def upload_updates_many(
    provider: PairProvider,
    routing: CommitteeRouting,
    committees: Sequence[tuple[int, ...]],
    routes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    amount: int,
) -> Uploads:
    """Move every update of every copy hop by hop to its nearest member, ``amount`` pairs per hop.

    A refused hop stops the update. At hop step ``k`` every update still travelling requests its ``k``-th link;
    updates of one copy that need the same link in one step are served one call after another in ascending
    source id (the copies' calls of a step are shared: their links are distinct).

    Args:
        provider: Serves copy ``c``'s link ``l`` as id ``c L + l``.
        routing: One copy's shortest paths (N nodes, L links).
        committees: Each copy's committee (node ids, draw order). ``C`` tuples.
        routes: Each copy's :meth:`CommitteeRouting.upload_routes` of its committee.
        amount: Pairs per hop (pairs).
    """
    n, num_links, copies = routing.num_nodes, routing.num_links, len(committees)
    copy_of, sources, targets, table = _stack_routes(routes, num_links)
    alive = np.ones(sources.size, dtype=bool)
    werner = np.ones(sources.size)
    pairs_per_edge = np.zeros(copies * num_links, dtype=np.int64)
    fidelity_sum = np.zeros(copies)
    attempted = np.zeros(copies, dtype=np.int64)
    granted = np.zeros(copies, dtype=np.int64)
    for hop in range(table.shape[1]):
        travelling = np.flatnonzero(alive & (table[:, hop] >= 0))
        if travelling.size == 0:
            continue
        links = table[travelling, hop]
        served = serve_single(provider, links, rank_within(links), amount)
        ok = served.granted
        attempted += np.bincount(copy_of[travelling], minlength=copies)
        granted += np.bincount(copy_of[travelling[ok]], minlength=copies)
        fidelity_sum += np.bincount(copy_of[travelling[ok]], served.fidelity[ok], minlength=copies)
        np.add.at(pairs_per_edge, links[ok], amount)
        alive[travelling[~ok]] = False
        werner[travelling[ok]] *= (4.0 * served.fidelity[ok] - 1.0) / 3.0
    member_rows = np.repeat(np.arange(copies), [len(members) for members in committees])
    member_ids = np.fromiter((m for members in committees for m in members), dtype=np.int64, count=member_rows.size)
    arrived = np.zeros((copies, n), dtype=bool)
    arrived[member_rows, member_ids] = True
    arrived[copy_of[alive], sources[alive]] = True
    arrival_fidelity = np.full((copies, n), math.nan)
    arrival_fidelity[member_rows, member_ids] = 1.0
    arrival_fidelity[copy_of[alive], sources[alive]] = (1.0 + 3.0 * werner[alive]) / 4.0
    receiver = np.full((copies, n), -1, dtype=np.int64)
    receiver[copy_of[alive], sources[alive]] = targets[alive]
    return Uploads(
        arrived,
        arrival_fidelity,
        receiver,
        pairs_per_edge.reshape(copies, num_links),
        fidelity_sum,
        attempted,
        granted,
    )


def upload_updates(provider: PairProvider, routing: CommitteeRouting, members: tuple[int, ...], amount: int) -> Upload:
    """:func:`upload_updates_many` for one network (link ids ``0..L-1``) and its committee ``members``."""
    return upload_updates_many(provider, routing, [members], [routing.upload_routes(members)], amount).copy(0)


def request_keys_many(
    provider: PairProvider,
    routing: CommitteeRouting,
    paths: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    key_bits: np.ndarray,
    copies: np.ndarray,
    num_copies: int,
) -> KeyGrants:
    """Request the key links' pairs of the listed copies and find each one's key-starved members.

    Each copy requests every link its member pairs' paths cross, with the pairs all those paths need; the calls go
    one per distinct pair count (shared by the copies). A member pair whose path has a link not granted has no
    key: both members are starved.

    Args:
        provider: Serves copy ``c``'s link ``l`` as id ``c L + l``.
        routing: One copy's shortest paths (N nodes, L links).
        paths: For each listed copy, :meth:`CommitteeRouting.key_paths` of its committee.
        key_bits: Key bits per pair of committee positions. ``(N_c, N_c)`` symmetric int.
        copies: The copies that request keys (ascending). ``(K,)`` int.
        num_copies: C, the number of copies (rows of the result; unlisted copies request nothing).
    """
    num_links = routing.num_links
    size = key_bits.shape[0]
    per_edge = np.zeros((num_copies, num_links), dtype=np.int64)
    for copy, (_, needed, links) in zip(copies, paths, strict=True):
        per_edge[copy] = routing.pairs_per_link(needed, links)
    flat = per_edge.ravel()
    wanted = np.flatnonzero(flat > 0)
    link_granted = np.ones(flat.size, dtype=bool)
    fidelity_sum = np.zeros(num_copies)
    granted_count = np.zeros(num_copies, dtype=np.int64)
    for amount in np.unique(flat[wanted]):  # one call per distinct pair count
        ids = wanted[flat[wanted] == amount]
        answer, mean_fidelity = provider.request(ids, int(amount))
        answer = np.asarray(answer, dtype=bool)
        link_granted[ids] = answer
        copy_of_id = ids // num_links
        granted_count += np.bincount(copy_of_id[answer], minlength=num_copies)
        fidelity_sum += np.bincount(copy_of_id[answer], np.asarray(mean_fidelity, dtype=np.float64)[answer], num_copies)
    granted_links = link_granted.reshape(num_copies, num_links)
    starved = np.zeros((num_copies, size), dtype=bool)
    keyed_bits = np.zeros(num_copies, dtype=np.int64)
    for copy, (positions, needed, links) in zip(copies, paths, strict=True):
        reachable = (links >= 0).any(axis=1) | (needed == 0)
        on_path = np.where(links >= 0, granted_links[copy][np.maximum(links, 0)], True)
        path_ok = reachable & np.all(on_path, axis=1)
        starved[copy, positions[~path_ok].ravel()] = True
        keyed_bits[copy] = int(key_bits[positions[path_ok, 0], positions[path_ok, 1]].sum())
    return KeyGrants(
        starved,
        np.where(granted_links, per_edge, 0),
        fidelity_sum,
        np.count_nonzero(per_edge, axis=1),
        granted_count,
        keyed_bits,
    )


def request_keys(
    provider: PairProvider,
    routing: CommitteeRouting,
    members: tuple[int, ...],
    key_bits: np.ndarray,
    key_bits_per_pair: float,
) -> KeyGrant:
    """:func:`request_keys_many` for one network (link ids ``0..L-1``) and its committee ``members``.

    Args:
        provider: The round's pair provider.
        routing: The network's shortest paths.
        members: Committee node ids in draw order.
        key_bits: Key bits per pair of committee positions. ``(N_c, N_c)`` symmetric int.
        key_bits_per_pair: Secret key bits one pair yields (bits per pair).
    """
    paths = [routing.key_paths(members, key_bits, key_bits_per_pair)]
    return request_keys_many(provider, routing, paths, key_bits, np.zeros(1, dtype=np.int64), 1).copy(0)
