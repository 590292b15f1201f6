"""Consensus requests for Bell pairs: a per-link request queue and pluggable demand sources.

A *request* asks for ``pairs`` Bell pairs on one link within ``deadline`` rounds (the payload of one consensus
message: its size in pairs, after compression). Requests wait in a fixed-size queue per link
(:class:`RequestQueue`, arrays of shape ``(num_links, queue_capacity)``).

Serving rule (documented, used by every environment): each round, after generation, every link serves its
pending requests in order of deadline (earliest first, ties by arrival), all-or-nothing, without overtaking: the
first request that does not fit in the link's held pairs blocks the later ones that round. Served pairs are taken
from memory in the link's serving order (oldest-first or freshest-first). Then every remaining deadline drops by
one round; a request whose deadline reaches zero unserved is *missed* and leaves the queue. A request arriving at a
full queue is *rejected* (counted with the missed ones).

Demand sources (:data:`DEMAND_SOURCES`) produce the arrivals of each round. The learning-free environments use
:class:`StochasticDemand`; the CEAS environments derive demand from the consensus protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ceas_gym.config import ConfigError, check_int, check_range
from ceas_gym.network.inventory import PairInventory
from ceas_gym.registry import Registry


@dataclass(frozen=True)
class Arrivals:
    """New requests of one round.

    Attributes:
        link: Link index of each request. ``(M,)`` int.
        pairs: Pairs requested. ``(M,)`` int >= 1.
        deadline: Rounds within which it must be served (1 = in the next step). ``(M,)`` int >= 1.
    """

    link: np.ndarray
    pairs: np.ndarray
    deadline: np.ndarray

    @staticmethod
    def empty() -> Arrivals:
        """No arrivals."""
        zeros = np.zeros(0, dtype=np.int64)
        return Arrivals(zeros, zeros.copy(), zeros.copy())


@dataclass(frozen=True)
class ServeResult:
    """The outcome of one round of serving on every link.

    Attributes:
        served: Requests served per link. ``(num_links,)`` int.
        pairs_consumed: Pairs consumed per link. ``(num_links,)`` int.
        fidelity_served: Sum over served requests of their mean delivered fidelity, per link. ``(num_links,)``.
        missed: Requests whose deadline ran out unserved this round, per link. ``(num_links,)`` int.
    """

    served: np.ndarray
    pairs_consumed: np.ndarray
    fidelity_served: np.ndarray
    missed: np.ndarray


class RequestQueue:
    """Pending requests of every link as fixed-shape arrays.

    Args:
        num_links: Number of links.
        queue_capacity: Pending requests one link can hold (>= 1).
    """

    def __init__(self, num_links: int, queue_capacity: int) -> None:
        check_int("RequestQueue.queue_capacity", queue_capacity, 1)
        self.num_links = num_links
        self.queue_capacity = queue_capacity
        self.pairs = np.zeros((num_links, queue_capacity), dtype=np.int64)  # (L, Q); 0 = empty slot
        self.deadline = np.zeros((num_links, queue_capacity), dtype=np.int64)  # (L, Q) rounds left
        self.sequence = np.zeros((num_links, queue_capacity), dtype=np.int64)  # (L, Q) arrival order
        self._next_sequence = 0

    def reset(self) -> None:
        """Drop every pending request."""
        self.pairs.fill(0)
        self.deadline.fill(0)
        self.sequence.fill(0)
        self._next_sequence = 0

    @property
    def active(self) -> np.ndarray:
        """Mask of slots holding a request. ``(num_links, queue_capacity)`` bool."""
        return self.pairs > 0

    def pending_pairs(self) -> np.ndarray:
        """Pairs requested by all pending requests, per link. ``(num_links,)`` int."""
        return self.pairs.sum(axis=1)

    def pending_requests(self) -> np.ndarray:
        """Number of pending requests per link. ``(num_links,)`` int."""
        return self.active.sum(axis=1)

    def earliest_deadline(self, none_value: int) -> np.ndarray:
        """Smallest deadline among pending requests per link (``none_value`` where none). ``(num_links,)`` int."""
        return np.where(self.active, self.deadline, none_value).min(axis=1)

    def pairs_due_within(self, rounds: int) -> np.ndarray:
        """Pairs requested by requests whose deadline is at most ``rounds``, per link. ``(num_links,)`` int."""
        return np.where(self.active & (self.deadline <= rounds), self.pairs, 0).sum(axis=1)

    def push(self, arrivals: Arrivals) -> np.ndarray:
        """Append new requests to their links' queues.

        Returns:
            Rejected requests per link (queue full). ``(num_links,)`` int.
        """
        link = np.asarray(arrivals.link, dtype=np.int64)
        rejected = np.zeros(self.num_links, dtype=np.int64)
        if link.size == 0:
            return rejected
        order = np.argsort(link, kind="stable")
        link_sorted = link[order]
        first_of_link = np.searchsorted(link_sorted, link_sorted, side="left")
        rank = np.arange(link_sorted.size) - first_of_link  # 0-based rank of each arrival within its link
        free = ~self.active
        free_slots = np.argsort(~free, axis=1, kind="stable")  # free slots first, in slot order
        free_count = free.sum(axis=1)
        fits = rank < free_count[link_sorted]
        slot = free_slots[link_sorted[fits], rank[fits]]
        chosen = order[fits]
        self.pairs[link_sorted[fits], slot] = np.asarray(arrivals.pairs, dtype=np.int64)[chosen]
        self.deadline[link_sorted[fits], slot] = np.asarray(arrivals.deadline, dtype=np.int64)[chosen]
        self.sequence[link_sorted[fits], slot] = self._next_sequence + np.arange(int(fits.sum()))
        self._next_sequence += int(fits.sum())
        np.add.at(rejected, link_sorted[~fits], 1)
        return rejected

    def serve(self, inventory: PairInventory, freshest_first: np.ndarray) -> ServeResult:
        """Serve pending requests from the inventory, then count down deadlines (see the module docstring).

        Args:
            inventory: The link memories to take pairs from.
            freshest_first: Serving order per link. ``(num_links,)`` bool.
        """
        active = self.active
        big = np.iinfo(np.int64).max // 4
        # Sort each link's requests by (deadline, arrival); empty slots last.
        key = np.where(active, self.deadline * (2**31) + self.sequence, big)
        order = np.argsort(key, axis=1, kind="stable")  # (L, Q)
        pairs_sorted = np.take_along_axis(self.pairs, order, axis=1)
        cumulative = np.cumsum(pairs_sorted, axis=1)
        served_sorted = (pairs_sorted > 0) & (cumulative <= inventory.held[:, None])
        counts = np.where(served_sorted, pairs_sorted, 0).sum(axis=1)
        result = inventory.consume(counts, freshest_first)
        # Mean fidelity of each served request from prefix sums over the pairs in serving order.
        fidelity_prefix = np.concatenate(
            [np.zeros((self.num_links, 1)), np.cumsum(np.nan_to_num(result.fidelity_in_order), axis=1)], axis=1
        )
        end = np.where(served_sorted, cumulative, 0)
        start = np.where(served_sorted, cumulative - pairs_sorted, 0)
        request_fidelity_sum = np.take_along_axis(fidelity_prefix, end, axis=1) - np.take_along_axis(
            fidelity_prefix, start, axis=1
        )
        request_mean = np.where(served_sorted, request_fidelity_sum / np.maximum(pairs_sorted, 1), 0.0)
        served = np.zeros_like(active)
        np.put_along_axis(served, order, served_sorted, axis=1)
        self.pairs[served] = 0
        self.deadline[served] = 0
        # Count down; requests reaching zero are missed.
        remaining = self.active
        self.deadline[remaining] -= 1
        missed_mask = remaining & (self.deadline <= 0)
        missed = missed_mask.sum(axis=1)
        self.pairs[missed_mask] = 0
        self.deadline[missed_mask] = 0
        return ServeResult(
            served=served_sorted.sum(axis=1),
            pairs_consumed=counts,
            fidelity_served=request_mean.sum(axis=1),
            missed=missed,
        )


@runtime_checkable
class DemandSource(Protocol):
    """Produces each round's new requests. Register implementations in :data:`DEMAND_SOURCES`."""

    def reset(self, num_links: int, rng: np.random.Generator) -> None:
        """Start a new episode on a network of ``num_links`` links."""
        ...

    def sample(self, round_index: int, rng: np.random.Generator) -> Arrivals:
        """Return the requests arriving at the end of round ``round_index``."""
        ...


DEMAND_SOURCES: Registry[type] = Registry("demand source")


@dataclass(frozen=True)
class StochasticDemandConfig:
    """Parameters of :class:`StochasticDemand`.

    Attributes:
        rate: Probability per link per round that a request arrives (Bernoulli arrivals), in [0, 1].
        pairs_min: Smallest payload, in pairs (>= 1).
        pairs_max: Largest payload, in pairs (>= pairs_min); payloads are uniform on [pairs_min, pairs_max].
        deadline_min: Shortest deadline, in rounds (>= 1).
        deadline_max: Longest deadline, in rounds (>= deadline_min); uniform on [deadline_min, deadline_max].
    """

    rate: float = 0.3
    pairs_min: int = 1
    pairs_max: int = 2
    deadline_min: int = 1
    deadline_max: int = 3

    def __post_init__(self) -> None:
        check_range("StochasticDemandConfig.rate", self.rate, 0.0, 1.0)
        check_int("StochasticDemandConfig.pairs_min", self.pairs_min, 1)
        check_int("StochasticDemandConfig.pairs_max", self.pairs_max, 1)
        check_int("StochasticDemandConfig.deadline_min", self.deadline_min, 1)
        check_int("StochasticDemandConfig.deadline_max", self.deadline_max, 1)
        if self.pairs_max < self.pairs_min:
            raise ConfigError(
                f"StochasticDemandConfig.pairs_max = {self.pairs_max} must be >= pairs_min = {self.pairs_min}"
            )
        if self.deadline_max < self.deadline_min:
            raise ConfigError(
                f"StochasticDemandConfig.deadline_max = {self.deadline_max} must be >= "
                f"deadline_min = {self.deadline_min}"
            )


@DEMAND_SOURCES.register("stochastic")
class StochasticDemand:
    """Independent Bernoulli arrivals per link and round, with uniform payload and deadline.

    Args:
        config: Rates and ranges (see :class:`StochasticDemandConfig`).
    """

    def __init__(self, config: StochasticDemandConfig | None = None) -> None:
        self.config = config or StochasticDemandConfig()
        self.num_links = 0

    def reset(self, num_links: int, rng: np.random.Generator) -> None:
        """Remember the network size; this source keeps no other state."""
        self.num_links = num_links

    def sample(self, round_index: int, rng: np.random.Generator) -> Arrivals:
        """Draw this round's arrivals: one Bernoulli(rate) trial per link."""
        config = self.config
        arrive = rng.random(self.num_links) < config.rate
        link = np.flatnonzero(arrive).astype(np.int64)
        pairs = rng.integers(config.pairs_min, config.pairs_max + 1, size=link.size)
        deadline = rng.integers(config.deadline_min, config.deadline_max + 1, size=link.size)
        return Arrivals(link=link, pairs=pairs.astype(np.int64), deadline=deadline.astype(np.int64))
