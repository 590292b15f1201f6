"""Stake-based committee selection from a hash chain (second paper, Alg. 1, eq. 5) and stake updates (Alg. 3).

Selection (Alg. 1)
------------------
1. **Eligibility**: the clients with the ``2 N_c`` largest stakes are candidates; if a tie at the boundary
   would admit more, every client tied with the ``2 N_c``-th stake is admitted too (Sec. 4.2). Clients with
   zero stake are never selectable (their interval in eq. 5 is empty).
2. **Order**: candidates are listed by ascending client id (Sec. 4.2: "c_1..c_M sorted by their IDs"; Alg. 1
   line 1 says "sort by stake", which would make the intervals depend on ties; we follow the text).
3. **Weights** (eq. 5): ``w_i = sum_{j<=i} s(c_j) / sum_j s(c_j)``, ``w_0 = 0``.
4. **Draws**: starting from the latest block hash ``h`` (32 bytes; a hex string is decoded first),
   repeat ``h <- SHA-256(h)`` (the raw 32-byte digest is hashed, not its hex) and map the new digest to
   ``v = (int.from_bytes(h, "big") + 1) / 2**256`` in ``(0, 1]`` (the paper's ``h / 2**len(h)`` lies in
   ``[0, 1)``; adding one puts it in the stated half-open interval). The candidate with
   ``w_{i-1} < v <= w_i`` is drawn; a candidate already on the committee is skipped and the chain advances.
   The conversion of ``v`` to float64 loses bits below 2**-53, which is far below any interval width that
   matters here.
5. The first drawn client is the **leader**; the committee is complete at ``N_c`` distinct members.

The same hash and stakes always give the same committee. Probability of being drawn first is exactly
proportional to stake among the candidates (up to SHA-256 behaving as a random oracle).

Stake updates (Alg. 3, lines 17-23)
-----------------------------------
If the block was accepted (more than ``N_c / 2`` valid committee signatures), every client whose update was
aggregated gains ``reward`` (Alg. 3: +1). Otherwise every committee member loses ``penalty`` (Alg. 3: -1).
In addition (not in Alg. 3, asked for by the design): clients detected as malicious this round (a forged QDS
signature, an equivocating leader) lose ``penalty`` whatever the outcome. Stakes are floored at
``minimum_stake`` (default 0) so that eq. 5 stays a probability distribution.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ceas_gym.config import ConfigError, check_int, check_range

__all__ = ["Committee", "eligible_candidates", "hash_to_unit", "next_hash", "select_committee", "update_stakes"]

_MAX_DRAWS_PER_SEAT = 10_000


def next_hash(block_hash: bytes) -> bytes:
    """One step of the hash chain: the SHA-256 digest (32 bytes) of ``block_hash``."""
    return hashlib.sha256(block_hash).digest()


def hash_to_unit(digest: bytes) -> float:
    """Map a digest to ``v = (int(digest) + 1) / 2**(8 len(digest))`` in ``(0, 1]`` (big-endian integer)."""
    return (int.from_bytes(digest, "big") + 1) / float(2 ** (8 * len(digest)))


def _as_bytes(block_hash: bytes | str) -> bytes:
    if isinstance(block_hash, bytes):
        if not block_hash:
            raise ConfigError("block_hash: empty; allowed: non-empty bytes or a hex string")
        return block_hash
    if isinstance(block_hash, str):
        try:
            raw = bytes.fromhex(block_hash)
        except ValueError:
            raise ConfigError(f"block_hash = {block_hash!r} is not allowed; allowed: bytes or a hex string") from None
        if not raw:
            raise ConfigError("block_hash: empty; allowed: non-empty bytes or a hex string")
        return raw
    raise ConfigError(f"block_hash: expected bytes or a hex string, got {type(block_hash).__name__}")


def _check_stakes(stakes: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(stakes, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ConfigError(f"stakes: expected a non-empty 1-D array, one per client, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ConfigError("stakes: allowed: finite numbers >= 0")
    return array


def eligible_candidates(stakes: Sequence[float] | np.ndarray, committee_size: int) -> np.ndarray:
    """Client ids eligible for election: the top ``2 N_c`` by stake plus boundary ties, ascending id.

    Args:
        stakes: Stake of every client (stake units), shape ``(M,)``.
        committee_size: N_c, the committee size (>= 1).

    Returns:
        Candidate client ids, ascending.
    """
    array = _check_stakes(stakes)
    check_int("committee_size", committee_size, 1)
    quota = min(2 * committee_size, array.size)
    threshold = np.sort(array)[::-1][quota - 1]
    return np.flatnonzero(array >= threshold)


@dataclass(frozen=True)
class Committee:
    """An elected committee.

    Attributes:
        leader: The leader's client id (the first client drawn).
        members: All members in draw order, leader first.
        candidates: The eligible client ids the draws were made over (ascending).
        draws: Hash-chain steps used (one per value v, including skipped repeats).
        final_hash: The chain's last digest.
    """

    leader: int
    members: tuple[int, ...]
    candidates: tuple[int, ...]
    draws: int
    final_hash: bytes


def select_committee(block_hash: bytes | str, stakes: Sequence[float] | np.ndarray, committee_size: int) -> Committee:
    """Elect a committee of ``committee_size`` clients from the latest block hash (Alg. 1, eq. 5).

    Args:
        block_hash: Hash of the latest block (raw bytes or a hex string).
        stakes: Stake s(i) >= 0 of every client (stake units), shape ``(M,)``.
        committee_size: N_c >= 1.

    Returns:
        The committee, leader first.

    Raises:
        ConfigError: If fewer than ``committee_size`` candidates have a positive stake.
    """
    array = _check_stakes(stakes)
    candidates = eligible_candidates(array, committee_size)
    positive = candidates[array[candidates] > 0]
    if positive.size < committee_size:
        raise ConfigError(
            f"committee_size = {committee_size} is not allowed: only {positive.size} eligible clients have a "
            f"positive stake; allowed: at most {positive.size}"
        )
    cumulative = np.cumsum(array[candidates])
    weights = cumulative / cumulative[-1]  # eq. 5
    weights[-1] = 1.0
    digest = _as_bytes(block_hash)
    members: list[int] = []
    draws = 0
    while len(members) < committee_size:
        if draws >= _MAX_DRAWS_PER_SEAT * committee_size:
            raise RuntimeError("committee selection did not terminate; the stakes are too concentrated")
        digest = next_hash(digest)
        draws += 1
        position = int(np.searchsorted(weights, hash_to_unit(digest), side="left"))  # w_{i-1} < v <= w_i
        client = int(candidates[position])
        if client not in members:
            members.append(client)
    return Committee(members[0], tuple(members), tuple(int(c) for c in candidates), draws, digest)


def update_stakes(
    stakes: Sequence[float] | np.ndarray,
    *,
    block_accepted: bool,
    contributors: Sequence[int],
    committee: Sequence[int],
    detected_malicious: Sequence[int] = (),
    reward: float = 1.0,
    penalty: float = 1.0,
    minimum_stake: float = 0.0,
) -> np.ndarray:
    """Stake update after a consensus round (Alg. 3 lines 17-23, plus the penalty for detected attackers).

    Args:
        stakes: Current stakes (stake units), shape ``(M,)``.
        block_accepted: Whether the block got more than ``N_c / 2`` valid signatures.
        contributors: Clients whose updates were aggregated (rewarded when the block is accepted).
        committee: The round's committee (penalised when the block is rejected).
        detected_malicious: Clients caught misbehaving (penalised in any case).
        reward: Stake gained per contribution (Alg. 3: 1).
        penalty: Stake lost per penalty (Alg. 3: 1).
        minimum_stake: Floor applied after the update.

    Returns:
        The new stakes, a fresh array.
    """
    array = _check_stakes(stakes).copy()
    check_range("reward", reward, 0)
    check_range("penalty", penalty, 0)
    check_range("minimum_stake", minimum_stake, 0)
    groups = {"contributors": contributors, "committee": committee, "detected_malicious": detected_malicious}
    members = {}
    for name, group in groups.items():  # each group as a mask: a client listed twice counts once
        index = np.asarray(group, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= array.size):
            raise ConfigError(f"{name}: client ids must lie in [0, {array.size - 1}]")
        mask = np.zeros(array.size, dtype=bool)
        mask[index] = True
        members[name] = mask
    if block_accepted:
        array[members["contributors"]] += reward
    else:
        array[members["committee"]] -= penalty
    array[members["detected_malicious"]] -= penalty
    return np.maximum(array, minimum_stake)
