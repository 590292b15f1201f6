"""Where consensus exchanges get their Bell pairs: the :class:`PairProvider` interface and two simple providers.

A consensus *exchange* on a link (one gossip swap, one participant upload) needs ``pairs_per_exchange`` Bell
pairs on that link (the payload size in pairs after compression; the swap of both directions is one exchange).
The consensus layer asks for all exchanges of one mixing step in **one** call,
``request(edge_ids, pairs_per_exchange)``, and the provider answers, per requested exchange, whether the pairs were
granted and the mean Werner fidelity of the pairs it consumed (NaN where not granted). An exchange that is not
granted does not happen. The network inventory implements this interface in the environments; here are two
stand-ins:

* :class:`UnlimitedPairs`: every request granted at one fixed fidelity (no entanglement limit).
* :class:`ScriptedPairs`: grants and fidelities read from a table, one row per call (for tests and what-if runs).
* :class:`InventoryPairs`: serves straight from a :class:`~ceas_gym.network.inventory.PairInventory`: an exchange is
  granted when its link holds at least ``pairs_per_exchange`` pairs, which are then consumed in the link's serving
  order (oldest-first by default), all-or-nothing per exchange.

Conventions: ``edge_ids`` index the rows of the edge array ``(E, 2)`` the consensus protocol was built with; the
same edge may appear at most once per call. Fidelities are Werner fidelities in (0.25, 1].
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ceas_gym.config import ConfigError, check_int, check_range
from ceas_gym.network.inventory import PairInventory


@runtime_checkable
class PairProvider(Protocol):
    """Serves the Bell-pair requests of one mixing step at once."""

    def request(self, edge_ids: np.ndarray, pairs_per_exchange: int) -> tuple[np.ndarray, np.ndarray]:
        """Try to serve one exchange on each listed link.

        Args:
            edge_ids: Link index of each exchange. ``(M,)`` int, distinct.
            pairs_per_exchange: Bell pairs one exchange consumes (pairs), >= 1.

        Returns:
            ``(granted, mean_fidelity)``: whether each exchange got its pairs, ``(M,)`` bool; and the mean Werner
            fidelity of the pairs it consumed, ``(M,)`` float, NaN where not granted.
        """
        ...


def check_request(edge_ids: np.ndarray, pairs_per_exchange: int) -> np.ndarray:
    """Validate a request's arguments and return ``edge_ids`` as an int64 array.

    Raises:
        ConfigError: If ``edge_ids`` is not a 1-D integer array of non-negative ids or ``pairs_per_exchange < 1``.
    """
    check_int("pairs_per_exchange", pairs_per_exchange, 1)
    ids = np.asarray(edge_ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ConfigError(f"edge_ids: expected a 1-D integer array, got shape {ids.shape} dtype {ids.dtype}")
    ids = ids.astype(np.int64)
    if ids.size and ids.min() < 0:
        raise ConfigError(f"edge_ids: ids must be >= 0, got {int(ids.min())}")
    return ids


class UnlimitedPairs:
    """Grants every exchange, with pairs of one fixed fidelity; counts what it handed out.

    Args:
        fidelity: Werner fidelity of every pair, in (0.25, 1].

    Attributes:
        pairs_served: Total pairs handed out so far (pairs).
        calls: Number of :meth:`request` calls so far (mixing steps).
    """

    def __init__(self, fidelity: float = 1.0) -> None:
        check_range("UnlimitedPairs.fidelity", fidelity, 0.25, 1.0, low_inclusive=False)
        self.fidelity = float(fidelity)
        self.pairs_served = 0
        self.calls = 0

    def request(self, edge_ids: np.ndarray, pairs_per_exchange: int) -> tuple[np.ndarray, np.ndarray]:
        """Grant every exchange at :attr:`fidelity` (see :meth:`PairProvider.request`)."""
        ids = check_request(edge_ids, pairs_per_exchange)
        self.calls += 1
        self.pairs_served += int(ids.size) * pairs_per_exchange
        return np.ones(ids.size, dtype=bool), np.full(ids.size, self.fidelity)


class ScriptedPairs:
    """Grants read from a table: row ``k % num_rows`` answers the ``k``-th call (cycling), column = edge id.

    Args:
        granted: Whether an exchange on each link is granted. ``(E,)`` (same every call) or ``(num_rows, E)`` bool.
        fidelity: Mean fidelity of the consumed pairs. A scalar, ``(E,)`` or ``(num_rows, E)``, in (0.25, 1].

    Attributes:
        calls: Number of :meth:`request` calls so far (mixing steps).
        requested: The ``edge_ids`` of every call, in order (for tests to inspect).
        pairs_served: Total pairs handed out so far (pairs).
    """

    def __init__(self, granted: np.ndarray, fidelity: float | np.ndarray = 1.0) -> None:
        table = np.asarray(granted)
        if table.dtype != bool or table.ndim not in (1, 2):
            raise ConfigError(
                f"ScriptedPairs.granted: expected a 1-D or 2-D bool array, got {table.dtype} {table.shape}"
            )
        self.granted = np.atleast_2d(table)
        fidelities = np.broadcast_to(np.asarray(fidelity, dtype=np.float64), self.granted.shape).copy()
        if not np.all((fidelities > 0.25) & (fidelities <= 1.0)):
            raise ConfigError("ScriptedPairs.fidelity: every value must be in (0.25, 1]")
        self.fidelity = fidelities
        self.calls = 0
        self.requested: list[np.ndarray] = []
        self.pairs_served = 0

    def request(self, edge_ids: np.ndarray, pairs_per_exchange: int) -> tuple[np.ndarray, np.ndarray]:
        """Answer from the table row of this call (see :meth:`PairProvider.request`)."""
        ids = check_request(edge_ids, pairs_per_exchange)
        if ids.size and ids.max() >= self.granted.shape[1]:
            raise ConfigError(f"edge_ids: id {int(ids.max())} is out of range; allowed: [0, {self.granted.shape[1]})")
        row = self.calls % self.granted.shape[0]
        self.calls += 1
        self.requested.append(ids.copy())
        granted = self.granted[row, ids].copy()
        mean_fidelity = np.where(granted, self.fidelity[row, ids], np.nan)
        self.pairs_served += int(granted.sum()) * pairs_per_exchange
        return granted, mean_fidelity


class InventoryPairs:
    """Serves exchanges from the pairs stored in a :class:`~ceas_gym.network.inventory.PairInventory`.

    An exchange on link ``l`` is granted when ``held[l] >= pairs_per_exchange``; its pairs are then consumed in the
    link's serving order and its fidelity is their mean Werner fidelity at consumption. Edge ids are the
    inventory's link indices.

    Args:
        inventory: The Bell-pair store (consumed from in place).
        freshest_first: Serving order per link, ``(num_links,)`` bool (default: oldest first everywhere).

    Attributes:
        pairs_served: Total pairs consumed through this provider (pairs).
        calls: Number of :meth:`request` calls so far (mixing steps).
    """

    def __init__(self, inventory: PairInventory, freshest_first: np.ndarray | None = None) -> None:
        self.inventory = inventory
        num_links = inventory.num_links
        order = np.zeros(num_links, dtype=bool) if freshest_first is None else np.asarray(freshest_first)
        if order.shape != (num_links,) or order.dtype != bool:
            raise ConfigError(f"InventoryPairs.freshest_first: expected a bool array of shape ({num_links},)")
        self.freshest_first = order
        self.pairs_served = 0
        self.calls = 0

    def request(self, edge_ids: np.ndarray, pairs_per_exchange: int) -> tuple[np.ndarray, np.ndarray]:
        """Grant the exchanges whose link holds enough pairs and consume them (see :meth:`PairProvider.request`)."""
        ids = check_request(edge_ids, pairs_per_exchange)
        num_links = self.inventory.num_links
        if ids.size and ids.max() >= num_links:
            raise ConfigError(f"edge_ids: id {int(ids.max())} is out of range; allowed: [0, {num_links})")
        if np.bincount(ids, minlength=num_links).max(initial=0) > 1:
            raise ConfigError("edge_ids: a link may be requested at most once per call")
        self.calls += 1
        granted = self.inventory.held[ids] >= pairs_per_exchange
        counts = np.zeros(num_links, dtype=np.int64)
        counts[ids[granted]] = pairs_per_exchange
        result = self.inventory.consume(counts, self.freshest_first)
        self.pairs_served += int(counts.sum())
        mean_fidelity = np.where(granted, result.fidelity_sum[ids] / pairs_per_exchange, np.nan)
        return granted, mean_fidelity
