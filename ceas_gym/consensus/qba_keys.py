"""Key material and signatures of the committee protocol: QDS key bits per member pair, hashes, signatures.

The key bits follow the schedule of :func:`~ceas_gym.consensus.qba.run_qba` (second paper, Appendix A.1-A.2);
:class:`PairBackedKeySource` hands the agreement bits distilled from pairs the network granted.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence

import numpy as np
import torch

from ceas_gym.config import check_int

__all__ = ["PairBackedKeySource", "member_signatures", "model_hash", "qds_key_bits_per_member_pair"]


def qds_key_bits_per_member_pair(committee_size: int, committee_faulty: int, hash_bits: int) -> np.ndarray:
    """Key bits each pair of committee positions shares for one QBA (Appendix A.1-A.2), ``(N_c, N_c)`` symmetric.

    The schedule is the one of :func:`~ceas_gym.consensus.qba.run_qba`: in multicast round m, for every path
    ``(0, p_1, .., p_m)`` of distinct positions, primary ``p_m``, every forwarder i and verifier j off the path
    (``i != j``) run one operation, which uses ``3 n`` bits shared by (primary, i) and ``3 n`` by (primary, j).
    The entries sum to ``2 * 6 n * N_QDS`` (each operation's ``6 n`` bits counted in both triangles).

    Args:
        committee_size: N_c >= 2.
        committee_faulty: f_c >= 0 (multicast rounds).
        hash_bits: n (bits).
    """
    check_int("committee_size", committee_size, 2)
    check_int("committee_faulty", committee_faulty, 0)
    check_int("hash_bits", hash_bits, 2)
    operations = np.zeros((committee_size, committee_size), dtype=np.int64)
    others = range(1, committee_size)
    for round_index in range(committee_faulty):
        for middle in itertools.permutations(others, round_index):
            path = (0, *middle)
            outside = [member for member in others if member not in path]
            for forwarder, verifier in itertools.permutations(outside, 2):
                operations[path[-1], forwarder] += 1
                operations[path[-1], verifier] += 1
    symmetric = operations + operations.T
    return symmetric * 3 * hash_bits


def model_hash(params: torch.Tensor) -> str:
    """SHA-256 (hex) of a parameter vector's float64 bytes (C order)."""
    array = np.ascontiguousarray(params.detach().cpu().to(torch.float64).numpy())
    return hashlib.sha256(array.tobytes()).hexdigest()


def member_signatures(members: Sequence[int], text: str) -> list[str]:
    """The committee members' signatures on ``text`` as the ledger records them: ``sha256("<member>|<text>")``.

    The QDS exchange that authenticates the vote (Appendix A) runs before; these hex strings stand for its outcome
    in the ledger, over the consensus message for a block and over :func:`~ceas_gym.consensus.ledger.head_message`
    for the head.
    """
    return [hashlib.sha256(f"{member}|{text}".encode()).hexdigest() for member in members]


class PairBackedKeySource:
    """A :class:`~ceas_gym.consensus.qds.KeySource` whose bits were distilled from pairs already granted.

    The round requests the key pairs from the pair provider before the agreement; this source then hands the
    QBA its key bits (drawn from ``rng``) and reports the pairs booked. Bits drawn beyond the granted key
    material are counted in :attr:`bits_missing` (those operations belong to key-starved members, which act
    silent in the QBA).

    Args:
        rng: Generator of the key bits.
        bits_available: Secret key bits the granted pairs yield (bits).
        pairs_granted: Pairs the granted key material consumed (pairs); booked as consumed at the first draw.
    """

    def __init__(self, rng: np.random.Generator, bits_available: int, pairs_granted: int) -> None:
        check_int("bits_available", bits_available, 0)
        check_int("pairs_granted", pairs_granted, 0)
        self._rng = rng
        self.bits_available = bits_available
        self.pairs_granted = pairs_granted
        self.pairs_consumed = 0
        self.bits_drawn = 0

    @property
    def bits_missing(self) -> int:
        """Bits drawn beyond the granted key material (bits)."""
        return max(0, self.bits_drawn - self.bits_available)

    def draw(self, num_bits: int) -> np.ndarray:
        """Return ``num_bits`` key bits as a 0/1 ``uint8`` array."""
        check_int("num_bits", num_bits, 0)
        self.bits_drawn += num_bits
        self.pairs_consumed = self.pairs_granted  # the key was distilled from these pairs before the round
        return self._rng.integers(0, 2, size=num_bits, dtype=np.uint8)
