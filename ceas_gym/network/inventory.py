"""The Bell-pair inventory: every stored pair of every link, as arrays, with exact per-pair bookkeeping.

Model (DESIGN.md section 3, CEAS Def. 2 and eq. 7):

* Link ``l`` stores at most ``capacity[l]`` pairs (the memory qubits its two end nodes devote to it). Pairs live
  in a slot array ``age`` of shape ``(num_links, max_capacity)``; ``-1`` marks an empty slot. Ages are in rounds.
* A pair created this round has age 0 and Werner fidelity ``fidelity0[l]``; at age ``a`` its fidelity is
  ``F(a) = 1/4 + (F0 - 1/4) * exp(-a / T_l)`` with ``T_l = coherence_rounds[l]``.
* A pair is usable while ``age < cutoff[l]`` (the coherence budget tau_c, CEAS: 3 to 6 rounds) and its fidelity is
  at least ``fidelity_floor``. :meth:`PairInventory.age_one_round` adds one round to every stored pair and discards
  those that are no longer usable; they count as *expired*.
* Newly generated pairs that find no free memory slot are discarded at once and count as *overflow*.
* Conservation, per link, at every moment:
  ``generated = consumed + expired + overflow + held``. :meth:`PairInventory.check_conservation` asserts it.

Taking the expectation over the stochastic generation gives CEAS eq. (7),
``E[M(t+1)] = e^{-lambda} E[M(t)] + r(t) - c(t)``, with ``e^{-lambda}`` the fraction of held pairs that survive a
round; this simulator is exact per pair rather than in expectation.

Everything is vectorised over links and slots: no Python loop over links or pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ceas_gym.memory import check_fits

EMPTY = -1
"""Age value of an empty memory slot."""
BYTES_PER_SLOT = 48
"""Peak bytes per memory slot (link x capacity): the ``int64`` age array plus the masks and float64 fidelities that
a round's generation, ageing and observation compute over all slots (rounded up)."""


@dataclass(frozen=True)
class ConsumeResult:
    """What :meth:`PairInventory.consume` took out of memory.

    Attributes:
        consumed: Pairs taken per link. ``(num_links,)`` int.
        fidelity_in_order: Fidelity of each consumed pair in the order it was served, left-aligned per link, NaN
            past ``consumed[l]``. ``(num_links, max_capacity)`` float. Prefix sums of a row give the mean fidelity
            of each request served from it.
        fidelity_sum: Sum of the consumed pairs' fidelities per link. ``(num_links,)`` float.
    """

    consumed: np.ndarray
    fidelity_in_order: np.ndarray
    fidelity_sum: np.ndarray


class PairInventory:
    """Stored Bell pairs of all links, with creation ages, expiry and exact conservation counters.

    Args:
        capacity: Memory slots per link (pairs). ``(num_links,)`` int, each >= 1.
        cutoff: Coherence budget tau_c per link (rounds): a pair is usable while ``age < cutoff``.
            ``(num_links,)`` int, each >= 1.
        coherence_rounds: Memory coherence time T per link (rounds), > 0 (``inf`` for no decay). ``(num_links,)``.
        fidelity0: Werner fidelity of a fresh pair per link, in (0.25, 1]. ``(num_links,)``.
        fidelity_floor: Pairs whose fidelity drops below this are discarded at the next ageing step. In [0.25, 1).
    """

    def __init__(
        self,
        capacity: np.ndarray,
        cutoff: np.ndarray,
        coherence_rounds: np.ndarray,
        fidelity0: np.ndarray,
        fidelity_floor: float = 0.5,
    ) -> None:
        self.capacity = np.asarray(capacity, dtype=np.int64)
        self.cutoff = np.asarray(cutoff, dtype=np.int64)
        self.coherence_rounds = np.asarray(coherence_rounds, dtype=np.float64)
        self.fidelity0 = np.asarray(fidelity0, dtype=np.float64)
        self.fidelity_floor = float(fidelity_floor)
        num_links = self.capacity.shape[0]
        for name, array in (
            ("cutoff", self.cutoff),
            ("coherence_rounds", self.coherence_rounds),
            ("fidelity0", self.fidelity0),
        ):
            if array.shape != (num_links,):
                raise ValueError(f"PairInventory.{name}: expected shape ({num_links},), got {array.shape}")
        if num_links == 0:
            raise ValueError("PairInventory.capacity: need at least one link")
        if np.any(self.capacity < 1):
            raise ValueError(f"PairInventory.capacity: every link needs >= 1 slot, got min {self.capacity.min()}")
        if np.any(self.cutoff < 1):
            raise ValueError(f"PairInventory.cutoff: must be >= 1 round, got min {self.cutoff.min()}")
        if np.any(~(self.coherence_rounds > 0)):
            raise ValueError("PairInventory.coherence_rounds: must be > 0 rounds (inf allowed)")
        if np.any((self.fidelity0 <= 0.25) | (self.fidelity0 > 1.0)):
            raise ValueError("PairInventory.fidelity0: must lie in (0.25, 1]")
        if not 0.25 <= self.fidelity_floor < 1.0:
            raise ValueError(f"PairInventory.fidelity_floor = {fidelity_floor!r}: allowed [0.25, 1)")
        self.num_links = num_links
        self.max_capacity = int(self.capacity.max())
        check_fits(
            "LinkConfig.capacity",
            num_links * self.max_capacity * BYTES_PER_SLOT,
            f"memories of {self.max_capacity} pairs on each of {num_links} links",
            "lower capacity",
        )
        # Slots past a link's capacity never hold a pair.
        self._slot_exists = np.arange(self.max_capacity)[None, :] < self.capacity[:, None]  # (L, C)
        self.age = np.full((num_links, self.max_capacity), EMPTY, dtype=np.int64)  # (L, C)
        self.generated = np.zeros(num_links, dtype=np.int64)  # (L,) cumulative
        self.consumed = np.zeros(num_links, dtype=np.int64)  # (L,) cumulative
        self.expired = np.zeros(num_links, dtype=np.int64)  # (L,) cumulative
        self.overflow = np.zeros(num_links, dtype=np.int64)  # (L,) cumulative

    # ----------------------------------------------------------------------------------------------- state
    def reset(self) -> None:
        """Empty every memory and zero the counters."""
        self.age.fill(EMPTY)
        for counter in (self.generated, self.consumed, self.expired, self.overflow):
            counter.fill(0)

    def clear_links(self, links: np.ndarray) -> None:
        """Empty the memories of the listed links and zero their counters (the others are untouched)."""
        self.age[links] = EMPTY
        for counter in (self.generated, self.consumed, self.expired, self.overflow):
            counter[links] = 0

    @property
    def occupied(self) -> np.ndarray:
        """Mask of slots holding a pair. ``(num_links, max_capacity)`` bool."""
        return self.age >= 0

    @property
    def held(self) -> np.ndarray:
        """Pairs stored per link. ``(num_links,)`` int."""
        return self.occupied.sum(axis=1)

    def fidelity(self) -> np.ndarray:
        """Current Werner fidelity of every slot (NaN where empty). ``(num_links, max_capacity)`` float."""
        ages = np.where(self.occupied, self.age, 0).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            decay = np.exp(-ages / self.coherence_rounds[:, None])
        values = 0.25 + (self.fidelity0[:, None] - 0.25) * decay
        return np.where(self.occupied, values, np.nan)

    def remaining_lifetime(self) -> np.ndarray:
        """Rounds each stored pair can still be used (``cutoff - age``, >= 1 where held, 0 where empty)."""
        return np.where(self.occupied, self.cutoff[:, None] - self.age, 0)

    def lifetime_histogram(self, num_bins: int) -> np.ndarray:
        """Count of stored pairs per link by remaining lifetime.

        Args:
            num_bins: Number of bins; bin ``b`` counts pairs with ``b + 1`` rounds left (the last bin collects
                everything with ``num_bins`` or more rounds left).

        Returns:
            ``(num_links, num_bins)`` float32 counts.
        """
        remaining = np.clip(self.remaining_lifetime(), 0, num_bins)  # 0 = empty
        num_links = remaining.shape[0]
        bin_of_pair = np.arange(num_links)[:, None] * num_bins + remaining - 1  # flat (link, bin) of each slot
        counts = np.bincount(bin_of_pair[remaining > 0], minlength=num_links * num_bins)
        return counts.reshape(num_links, num_bins).astype(np.float32)

    def mean_fidelity(self, empty_value: float = 0.0) -> np.ndarray:
        """Mean fidelity of the stored pairs per link (``empty_value`` where a link holds none). ``(num_links,)``."""
        fidelity = self.fidelity()
        held = self.held
        total = np.nansum(fidelity, axis=1)
        return np.where(held > 0, total / np.maximum(held, 1), empty_value)

    # --------------------------------------------------------------------------------------------- dynamics
    def add(self, successes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Store freshly generated pairs (age 0) in free slots; the rest overflow and are discarded.

        Args:
            successes: Pairs generated per link this round. ``(num_links,)`` int >= 0.

        Returns:
            ``(stored, overflow)`` per link, ``(num_links,)`` int each.
        """
        successes = np.asarray(successes, dtype=np.int64)
        if successes.shape != (self.num_links,) or np.any(successes < 0):
            raise ValueError(f"successes: expected ({self.num_links},) non-negative integers")
        free = (~self.occupied) & self._slot_exists  # (L, C)
        stored = np.minimum(successes, free.sum(axis=1))
        rank = np.cumsum(free, axis=1)  # 1-based rank of each free slot within its row
        fill = free & (rank <= stored[:, None])
        self.age[fill] = 0
        overflow = successes - stored
        self.generated += successes
        self.overflow += overflow
        return stored, overflow

    def serving_order(self, freshest_first: np.ndarray) -> np.ndarray:
        """Slot indices per link in the order pairs would be served; empty slots come last.

        Args:
            freshest_first: Per link, True to serve the youngest pair first, False for the oldest first.
                ``(num_links,)`` bool.

        Returns:
            ``(num_links, max_capacity)`` int slot indices (a stable sort, so ties keep slot order).
        """
        freshest_first = np.asarray(freshest_first, dtype=bool)
        signed_age = np.where(freshest_first[:, None], self.age, -self.age)
        key = np.where(self.occupied, signed_age, np.iinfo(np.int64).max)
        return np.argsort(key, axis=1, kind="stable")

    def consume(self, counts: np.ndarray, freshest_first: np.ndarray) -> ConsumeResult:
        """Take ``counts[l]`` pairs out of link ``l``'s memory in the given serving order.

        Args:
            counts: Pairs to take per link. ``(num_links,)`` int, each at most the link's held pairs.
            freshest_first: Serving order per link (see :meth:`serving_order`). ``(num_links,)`` bool.

        Returns:
            The consumed counts and fidelities (see :class:`ConsumeResult`).

        Raises:
            ValueError: If a link is asked for more pairs than it holds.
        """
        counts = np.asarray(counts, dtype=np.int64)
        occupied = self.occupied
        held = occupied.sum(axis=1)
        if counts.shape != (self.num_links,) or np.any(counts < 0) or np.any(counts > held):
            raise ValueError("consume: counts must be non-negative and at most the pairs held on each link")
        if counts.max(initial=0) <= 1:
            return self._consume_at_most_one(counts, np.asarray(freshest_first, dtype=bool), occupied)
        order = self.serving_order(freshest_first)  # (L, C)
        fidelity_sorted = np.take_along_axis(self.fidelity(), order, axis=1)
        taken_sorted = np.arange(self.max_capacity)[None, :] < counts[:, None]  # (L, C)
        fidelity_in_order = np.where(taken_sorted, fidelity_sorted, np.nan)
        taken = np.zeros_like(taken_sorted)
        np.put_along_axis(taken, order, taken_sorted, axis=1)
        self.age[taken] = EMPTY
        self.consumed += counts
        return ConsumeResult(
            consumed=counts,
            fidelity_in_order=fidelity_in_order,
            fidelity_sum=np.nansum(fidelity_in_order, axis=1),
        )

    def _consume_at_most_one(
        self, counts: np.ndarray, freshest_first: np.ndarray, occupied: np.ndarray
    ) -> ConsumeResult:
        """:meth:`consume` when no link gives more than one pair: take the first pair of each serving order.

        The first pair of the stable serving order is the first slot holding the smallest key (``argmin`` returns
        the first minimum), so the result equals the general path's; its fidelity uses the same formula as
        :meth:`fidelity`.
        """
        rows = np.flatnonzero(counts)
        fidelity_in_order = np.full((self.num_links, self.max_capacity), np.nan)
        fidelity_sum = np.zeros(self.num_links)
        if rows.size:
            age = self.age[rows]  # (K, C)
            signed_age = np.where(freshest_first[rows, None], age, -age)
            slots = np.where(occupied[rows], signed_age, np.iinfo(np.int64).max).argmin(axis=1)
            taken_age = age[np.arange(rows.size), slots].astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                decay = np.exp(-taken_age / self.coherence_rounds[rows])
            values = 0.25 + (self.fidelity0[rows] - 0.25) * decay
            fidelity_in_order[rows, 0] = values
            fidelity_sum[rows] = values
            self.age[rows, slots] = EMPTY
        self.consumed += counts
        return ConsumeResult(consumed=counts, fidelity_in_order=fidelity_in_order, fidelity_sum=fidelity_sum)

    def age_one_round(self) -> np.ndarray:
        """Advance every stored pair by one round and discard the ones no longer usable.

        A pair is discarded when its new age reaches the link's cutoff or its fidelity falls below the floor.

        Returns:
            Pairs expired per link this round. ``(num_links,)`` int.
        """
        occupied = self.occupied
        self.age[occupied] += 1
        fidelity = self.fidelity()
        dead = occupied & ((self.age >= self.cutoff[:, None]) | (fidelity < self.fidelity_floor))
        expired = dead.sum(axis=1)
        self.age[dead] = EMPTY
        self.expired += expired
        return expired

    def check_conservation(self) -> None:
        """Raise AssertionError unless ``generated = consumed + expired + overflow + held`` on every link."""
        balance = self.generated - (self.consumed + self.expired + self.overflow + self.held)
        if np.any(balance != 0):
            bad = int(np.flatnonzero(balance)[0])
            raise AssertionError(f"pair conservation broken on link {bad}: imbalance {int(balance[bad])}")

    def copy_state(self) -> dict[str, np.ndarray]:
        """Return copies of the mutable arrays (for snapshots and tests)."""
        return {
            "age": self.age.copy(),
            "generated": self.generated.copy(),
            "consumed": self.consumed.copy(),
            "expired": self.expired.copy(),
            "overflow": self.overflow.copy(),
        }
