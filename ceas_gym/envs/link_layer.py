"""One round of the entanglement layer, shared by every scheduling environment.

:class:`LinkLayer` owns the pair inventory and the request queue of one :class:`SchedulingInstance` and runs the
physical part of a round in a fixed order (documented here once, used by all environments):

1. **Generate.** The round's attempts per link (from the agent's budget split, :func:`split_budget`) each succeed
   independently with the link's success probability ``p``; successes are stored as fresh pairs (age 0) or overflow
   when the link's memory is full.
2. **Serve.** Pending requests are served earliest-deadline-first from memory (see
   :mod:`ceas_gym.network.demand`), in each link's serving order (oldest-first or freshest-first); then deadlines
   count down and expired requests are missed.
3. **Age.** Every stored pair ages one round; pairs reaching their cutoff or falling below the fidelity floor expire.
4. **Arrive.** The next round's requests arrive (and are visible in the next observation).

Environments with a consensus protocol replace step 2 for their own traffic by calling :meth:`LinkLayer.request`
(the :class:`~ceas_gym.consensus.pairs.PairProvider` interface) once per mixing step.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ceas_gym.envs.instance import SchedulingInstance
from ceas_gym.network.demand import Arrivals, RequestQueue, ServeResult
from ceas_gym.network.inventory import PairInventory


def split_budget(weights: np.ndarray, budget: int) -> np.ndarray:
    """Split an integer budget of attempts over links in proportion to non-negative weights.

    The last entry of ``weights`` is the share left unspent. Shares are rounded by the largest-remainder
    (Hamilton) method, ties going to the lower index, so the attempts handed out plus the unspent share always
    equal ``budget``. All-zero weights spend nothing.

    Args:
        weights: Non-negative weights, one per link plus one for "unspent". ``(num_links + 1,)`` float, or
            ``(B, num_links + 1)`` for B independent splits at once.
        budget: Attempts available this round (>= 0).

    Returns:
        Attempts per link. ``(num_links,)`` int (``(B, num_links)`` for a batch), summing to at most ``budget``.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim == 1:  # one split: the same arithmetic in fewer (and cheaper) numpy calls
        total = weights.sum()
        if total <= 0.0 or budget == 0:
            return np.zeros(weights.shape[0] - 1, dtype=np.int64)
        exact = budget * weights / total
        shares = np.floor(exact).astype(np.int64)
        order = np.argsort(-(exact - shares), kind="stable")
        shares[order[: budget - int(shares.sum())]] += 1
        return shares[:-1]
    rows = weights.reshape(-1, weights.shape[-1])
    total = rows.sum(axis=1, keepdims=True)
    spend = (total > 0.0) & (budget > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        exact = np.where(spend, budget * rows / np.where(spend, total, 1.0), 0.0)
    floor = np.floor(exact).astype(np.int64)
    leftover = np.where(spend[:, 0], budget - floor.sum(axis=1), 0)  # (B,)
    order = np.argsort(-(exact - floor), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(rows.shape[1]), rows.shape), axis=1)
    floor += rank < leftover[:, None]
    return floor[:, :-1].reshape(*weights.shape[:-1], weights.shape[-1] - 1)


@dataclass(frozen=True)
class RoundStats:
    """Per-link figures of one round (all ``(num_links,)`` int unless noted)."""

    attempts: np.ndarray
    generated: np.ndarray
    overflow: np.ndarray
    consumed: np.ndarray
    expired: np.ndarray
    served: np.ndarray
    missed: np.ndarray
    rejected: np.ndarray
    fidelity_served: np.ndarray  # float: sum over served requests of their mean delivered fidelity

    def totals(self) -> dict[str, float]:
        """Sum every field over links."""
        return {field.name: float(getattr(self, field.name).sum()) for field in fields(self)}


class LinkLayer:
    """Inventory, request queue and the physical round order of one network instance.

    Args:
        instance: The network.
        queue_capacity: Pending requests per link.
        fidelity_floor: Pairs below this fidelity expire at the next ageing step, in [0.25, 1).
    """

    def __init__(self, instance: SchedulingInstance, queue_capacity: int, fidelity_floor: float) -> None:
        self.instance = instance
        self.inventory = PairInventory(
            capacity=instance.capacity,
            cutoff=instance.cutoff,
            coherence_rounds=instance.coherence_rounds,
            fidelity0=instance.fidelity0,
            fidelity_floor=fidelity_floor,
        )
        self.queue = RequestQueue(instance.num_links, queue_capacity)

    @property
    def num_links(self) -> int:
        """Number of links."""
        return self.instance.num_links

    def reset(self) -> None:
        """Empty memories and queues."""
        self.inventory.reset()
        self.queue.reset()

    def generate(self, attempts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Run this round's generation attempts and store the successes.

        Returns:
            ``(generated, overflow)`` per link.
        """
        successes = rng.binomial(attempts, self.instance.success_probability).astype(np.int64)
        _, overflow = self.inventory.add(successes)
        return successes, overflow

    def serve(self, freshest_first: np.ndarray) -> ServeResult:
        """Serve the pending requests (step 2 of the round)."""
        return self.queue.serve(self.inventory, freshest_first)

    def request(self, link_ids: np.ndarray, pairs_per_exchange: int) -> tuple[np.ndarray, np.ndarray]:
        """Serve one exchange per listed link at once, all-or-nothing (the consensus layer's pair provider).

        Pairs are taken oldest-first (the ones about to expire), which is also what EEF does.

        Args:
            link_ids: Links that want to exchange now; each listed at most once. ``(M,)`` int.
            pairs_per_exchange: Pairs one exchange consumes (>= 1).

        Returns:
            ``(granted (M,) bool, mean_fidelity (M,) float, NaN where not granted)``.
        """
        link_ids = np.asarray(link_ids, dtype=np.int64)
        granted = self.inventory.held[link_ids] >= pairs_per_exchange
        counts = np.zeros(self.num_links, dtype=np.int64)
        counts[link_ids[granted]] = pairs_per_exchange
        result = self.inventory.consume(counts, np.zeros(self.num_links, dtype=bool))
        mean_fidelity = np.where(granted, result.fidelity_sum[link_ids] / pairs_per_exchange, np.nan)
        return granted, mean_fidelity

    def age(self) -> np.ndarray:
        """Age stored pairs one round (step 3); returns expired pairs per link."""
        return self.inventory.age_one_round()

    def arrive(self, arrivals: Arrivals) -> np.ndarray:
        """Queue the next round's requests (step 4); returns rejected requests per link."""
        return self.queue.push(arrivals)
