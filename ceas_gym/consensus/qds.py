"""Three-party quantum digital signatures with one-time universal hashing (second paper, Appendix A.1).

Model
-----
Parties: signer a (Alice), receiver/forwarder b (Bob), verifier c (Charlie). ``n`` is the hash length in bits.

- **Keys** (pre-distribution): Bob holds ``X_b`` (n bits) and ``Y_b`` (2n bits), Charlie holds ``X_c`` and
  ``Y_c``; Alice holds ``X_a = X_b xor X_c`` and ``Y_a = Y_b xor Y_c`` (the asymmetric keys of one-time
  universal hashing QDS, Li et al., PRApplied 20, 044011 (2023)). Physically these are the Alice-Bob and
  Alice-Charlie secret keys, so one signature consumes ``2 (n + 2n) = 6n`` secret key bits, drawn from a
  :class:`KeySource`.
- **Bell pairs per key bit**: a key source that distils key from shared Bell pairs at efficiency ``eta``
  secret bits per pair (sifting x error correction x privacy amplification) consumes
  ``ceil(total bits drawn / eta)`` pairs over its lifetime. BBM92 sifting alone gives ``eta = 1/2``
  (Bennett, Brassard, Mermin, PRL 68, 557 (1992)), the default of :class:`RandomKeySource`.
- **Irreducible polynomial** ``p_a``: Alice draws ``n`` random bits from her own quantum random number
  generator (modelled by a separate ``np.random.Generator``, not the key source) as the coefficients of
  ``x^0..x^{n-1}`` of a monic degree-``n`` polynomial over GF(2), and redraws until it is irreducible
  (Rabin's test). Polynomials are Python ints: bit ``i`` is the coefficient of ``x^i``.
- **LFSR-based Toeplitz hash** (Krawczyk, CRYPTO 1994): the LFSR with feedback polynomial
  ``p(x) = x^n + sum_{i<n} p_i x^i`` and initial state ``X_a`` generates
  ``s_0..s_{n-1} = X_a``, ``s_{k+n} = sum_i p_i s_{k+i} (mod 2)``. The ``n x m`` matrix is
  ``H[i, j] = s[j - i + n - 1]`` (constant along diagonals: Toeplitz; column j is the LFSR state at step j,
  reversed). ``Hash = H . Doc (mod 2)`` for an m-bit document. An all-zero ``X_a`` (probability 2^-n) gives the
  zero hash; it is used as drawn, as in the protocol.
- **Signing**: ``Dig = Hash || p_a`` (2n bits: hash bits, then the n low coefficients of ``p_a``),
  ``Sig = Dig xor Y_a``; Alice sends ``{Sig, Doc}`` to Bob.
- **Verification**: Bob sends ``{Sig, Doc}`` and his keys to Charlie, Charlie sends hers to Bob; each forms
  ``K_X = X_b xor X_c``, ``K_Y = Y_b xor Y_c``, unmasks ``Dig' = Sig xor K_Y``, checks that the polynomial part
  is irreducible, recomputes the hash of Doc with ``K_X`` and that polynomial, and accepts iff it equals the
  hash part. Bob checks what Alice sent him; Charlie checks what Bob forwarded to her.

Bit strings are 1-D ``np.uint8`` arrays of 0/1 values. Documents may be given as bytes (bits MSB first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ceas_gym.config import ConfigError, check_int, check_range

__all__ = [
    "KeySource",
    "QDSKeys",
    "QDSOutcome",
    "RandomKeySource",
    "bytes_to_bits",
    "distribute_keys",
    "is_irreducible",
    "is_irreducible_bruteforce",
    "poly_gcd",
    "poly_mod",
    "poly_mulmod",
    "random_irreducible",
    "sign",
    "three_party_qds",
    "toeplitz_hash",
    "toeplitz_matrix",
    "verify",
]


# --------------------------------------------------------------------------------------------------------
# Polynomial arithmetic over GF(2) on Python ints (bit i = coefficient of x^i)
# --------------------------------------------------------------------------------------------------------


def _degree(a: int) -> int:
    return a.bit_length() - 1


def poly_mod(a: int, modulus: int) -> int:
    """Remainder of ``a`` divided by ``modulus`` over GF(2)."""
    if modulus == 0:
        raise ZeroDivisionError("polynomial modulus is zero")
    degree = _degree(modulus)
    while a and _degree(a) >= degree:
        a ^= modulus << (_degree(a) - degree)
    return a


def _clmul(a: int, b: int) -> int:
    """Carry-less product of two GF(2) polynomials."""
    result = 0
    while b:
        if b & 1:
            result ^= a
        a <<= 1
        b >>= 1
    return result


def poly_mulmod(a: int, b: int, modulus: int) -> int:
    """``a * b mod modulus`` over GF(2)."""
    return poly_mod(_clmul(a, b), modulus)


def poly_gcd(a: int, b: int) -> int:
    """Greatest common divisor over GF(2) (monic, since GF(2) has one unit)."""
    while b:
        a, b = b, poly_mod(a, b)
    return a


def _prime_factors(n: int) -> list[int]:
    factors, d = [], 2
    while d * d <= n:
        if n % d == 0:
            factors.append(d)
            while n % d == 0:
                n //= d
        d += 1
    if n > 1:
        factors.append(n)
    return factors


# Squaring over GF(2) spreads the bits (no cross terms): bit i of a goes to bit 2i of a^2.
_SPREAD_BYTE = tuple(sum(((byte >> i) & 1) << (2 * i) for i in range(8)) for byte in range(256))


def _square(a: int) -> int:
    """``a^2`` over GF(2) by spreading each byte's bits (table lookup)."""
    result, shift = 0, 0
    while a:
        result |= _SPREAD_BYTE[a & 0xFF] << shift
        a >>= 8
        shift += 16
    return result


def _x_power_two_powers(steps: set[int], modulus: int) -> dict[int, int]:
    """``x^(2^k) mod modulus`` for every k in ``steps``, by max(steps) successive squarings."""
    value = poly_mod(0b10, modulus)
    powers = {0: value} if 0 in steps else {}
    for k in range(1, max(steps) + 1):
        value = poly_mod(_square(value), modulus)
        if k in steps:
            powers[k] = value
    return powers


def is_irreducible(polynomial: int) -> bool:
    """Rabin's irreducibility test over GF(2).

    A polynomial f of degree n >= 1 is irreducible iff ``x^(2^n) = x (mod f)`` and, for every prime q dividing
    n, ``gcd(x^(2^(n/q)) - x, f) = 1`` (Rabin, SIAM J. Comput. 9, 273 (1980)). The powers come from one chain
    of n squarings.

    Args:
        polynomial: The polynomial as an int (bit i = coefficient of x^i).

    Returns:
        Whether it is irreducible. Constants (degree <= 0) are not.
    """
    n = _degree(polynomial)
    if n < 1:
        return False
    if n > 1 and (not polynomial & 1 or polynomial.bit_count() % 2 == 0):  # divisible by x or by x + 1
        return False
    primes = _prime_factors(n)
    powers = _x_power_two_powers({n, *(n // q for q in primes)}, polynomial)
    x = poly_mod(0b10, polynomial)
    if powers[n] != x:
        return False
    return all(poly_gcd(polynomial, powers[n // q] ^ x) == 1 for q in primes)


def is_irreducible_bruteforce(polynomial: int) -> bool:
    """Irreducibility by trial division by every polynomial of degree 1..n/2 (a reference for small n)."""
    n = _degree(polynomial)
    if n < 1:
        return False
    return all(poly_mod(polynomial, divisor) != 0 for divisor in range(2, 1 << (n // 2 + 1)))


def _small_irreducibles(max_degree: int) -> tuple[int, ...]:
    return tuple(p for p in range(2, 1 << (max_degree + 1)) if is_irreducible_bruteforce(p))


_SMALL_IRREDUCIBLES = _small_irreducibles(6)


def _has_small_factor(polynomial: int) -> bool:
    """Whether a proper factor of degree <= 6 divides ``polynomial`` (a cheap pre-filter before Rabin's test)."""
    return any(poly_mod(polynomial, small) == 0 for small in _SMALL_IRREDUCIBLES if small != polynomial)


def random_irreducible(degree: int, rng: np.random.Generator) -> int:
    """A uniformly random monic irreducible polynomial of the given degree (rejection sampling).

    Args:
        degree: n >= 1.
        rng: Source of the n random low coefficients (the signer's local QRNG).

    Returns:
        The polynomial as an int with bit n set.
    """
    check_int("degree", degree, 1)
    while True:
        low = int.from_bytes(rng.bytes((degree + 7) // 8), "little") & ((1 << degree) - 1)
        candidate = (1 << degree) | low
        if _has_small_factor(candidate):
            continue
        if is_irreducible(candidate):
            return candidate


# --------------------------------------------------------------------------------------------------------
# Bits, keys, key sources
# --------------------------------------------------------------------------------------------------------


def bytes_to_bits(data: bytes) -> np.ndarray:
    """Bytes to a 0/1 ``uint8`` array, most significant bit of each byte first."""
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))


def _bits(name: str, bits: np.ndarray | bytes, length: int | None = None) -> np.ndarray:
    array = bytes_to_bits(bits) if isinstance(bits, bytes) else np.asarray(bits)
    if array.ndim != 1 or (array.size and not np.isin(array, (0, 1)).all()):
        raise ConfigError(f"{name}: expected a 1-D array of 0/1 bits")
    if length is not None and array.size != length:
        raise ConfigError(f"{name}: expected {length} bits, got {array.size}")
    return array.astype(np.uint8)


def _poly_to_bits(polynomial: int, degree: int) -> np.ndarray:
    return np.array([(polynomial >> i) & 1 for i in range(degree)], dtype=np.uint8)


def _bits_to_poly(bits: np.ndarray) -> int:
    return (1 << bits.size) | int(np.dot(bits.astype(object), [1 << i for i in range(bits.size)]))


@runtime_checkable
class KeySource(Protocol):
    """Where secret key bits come from; it counts the Bell pairs they cost.

    Attributes:
        pairs_consumed: Bell pairs consumed so far by every draw (pairs).
    """

    pairs_consumed: int

    def draw(self, num_bits: int) -> np.ndarray:
        """Return ``num_bits`` secret key bits as a 0/1 ``uint8`` array."""
        ...


class RandomKeySource:
    """Seeded key bits for tests and standalone use; ``ceil(bits drawn / bits_per_pair)`` pairs consumed.

    Args:
        rng: The generator the key bits come from.
        bits_per_pair: Secret key bits distilled per Bell pair, eta in (0, 1] (default 1/2, BBM92 sifting).
    """

    def __init__(self, rng: np.random.Generator, bits_per_pair: float = 0.5) -> None:
        check_range("RandomKeySource.bits_per_pair", bits_per_pair, 0, 1, low_inclusive=False)
        self._rng = rng
        self.bits_per_pair = float(bits_per_pair)
        self.bits_drawn = 0
        self.pairs_consumed = 0

    def draw(self, num_bits: int) -> np.ndarray:
        """Return ``num_bits`` uniformly random bits and book the Bell pairs they consume."""
        check_int("num_bits", num_bits, 0)
        self.bits_drawn += num_bits
        self.pairs_consumed = math.ceil(self.bits_drawn / self.bits_per_pair - 1e-9)
        return self._rng.integers(0, 2, size=num_bits, dtype=np.uint8)


@dataclass(frozen=True)
class QDSKeys:
    """One signature's keys: Bob's ``(X_b, Y_b)``, Charlie's ``(X_c, Y_c)``; Alice's are their XOR.

    Attributes:
        x_b: Bob's n-bit hash key share.
        y_b: Bob's 2n-bit mask share.
        x_c: Charlie's n-bit hash key share.
        y_c: Charlie's 2n-bit mask share.
    """

    x_b: np.ndarray
    y_b: np.ndarray
    x_c: np.ndarray
    y_c: np.ndarray

    @property
    def hash_bits(self) -> int:
        """n, the hash length (bits)."""
        return int(self.x_b.size)

    @property
    def x_a(self) -> np.ndarray:
        """Alice's hash key ``X_a = X_b xor X_c``."""
        return self.x_b ^ self.x_c

    @property
    def y_a(self) -> np.ndarray:
        """Alice's mask ``Y_a = Y_b xor Y_c``."""
        return self.y_b ^ self.y_c


def distribute_keys(source: KeySource, hash_bits: int) -> QDSKeys:
    """Draw one signature's keys (``6 n`` bits) from ``source``.

    Args:
        source: The key source (it books the Bell pairs).
        hash_bits: n, the hash length (bits), >= 2.
    """
    check_int("hash_bits", hash_bits, 2)
    bits = source.draw(6 * hash_bits)
    n = hash_bits
    return QDSKeys(x_b=bits[:n], y_b=bits[n : 3 * n], x_c=bits[3 * n : 4 * n], y_c=bits[4 * n :])


# --------------------------------------------------------------------------------------------------------
# Hashing, signing, verifying
# --------------------------------------------------------------------------------------------------------


def _lfsr_sequence(polynomial: int, initial_state: np.ndarray, length: int) -> np.ndarray:
    """The first ``length`` LFSR bits; the state is a Python int, one parity per output bit.

    (A block-doubling matrix form was tried; BLAS threading overhead made it slower for n >= 64 on shared
    CPUs, while this loop costs about 0.3 microseconds per bit whatever n is.)
    """
    n = initial_state.size
    taps = polynomial & ((1 << n) - 1)
    state = int(np.dot(initial_state.astype(object), [1 << i for i in range(n)])) if n else 0
    out = np.empty(max(length, n), dtype=np.uint8)
    out[:n] = initial_state
    for k in range(n, length):
        bit = (state & taps).bit_count() & 1
        out[k] = bit
        state = (state >> 1) | (bit << (n - 1))
    return out[:length]


def toeplitz_matrix(polynomial: int, initial_state: np.ndarray, document_bits: int) -> np.ndarray:
    """The LFSR-based Toeplitz matrix ``H[i, j] = s[j - i + n - 1]``, shape ``(n, m)``.

    Args:
        polynomial: Monic degree-n feedback polynomial (int, bit n set).
        initial_state: n-bit LFSR seed (the key ``X_a``).
        document_bits: m, the document length (bits).
    """
    n = _degree(polynomial)
    state = _bits("initial_state", initial_state, n)
    sequence = _lfsr_sequence(polynomial, state, document_bits + n - 1)
    index = np.arange(document_bits)[None, :] - np.arange(n)[:, None] + n - 1
    return sequence[index]


def toeplitz_hash(polynomial: int, key: np.ndarray, document: np.ndarray | bytes) -> np.ndarray:
    """``Hash = H . Doc (mod 2)``, n bits, with H from :func:`toeplitz_matrix`."""
    doc = _bits("document", document)
    matrix = toeplitz_matrix(polynomial, key, doc.size)
    return ((matrix.astype(np.int64) @ doc.astype(np.int64)) & 1).astype(np.uint8)


def sign(document: np.ndarray | bytes, keys: QDSKeys, rng: np.random.Generator) -> np.ndarray:
    """Alice's signature ``Sig = (Hash || p_a) xor Y_a`` (2n bits) on ``document``.

    Args:
        document: The m-bit document (bits or bytes).
        keys: The signature's keys (Alice uses ``X_a``, ``Y_a``).
        rng: Alice's local random source for the irreducible polynomial ``p_a``.
    """
    n = keys.hash_bits
    polynomial = random_irreducible(n, rng)
    digest = np.concatenate([toeplitz_hash(polynomial, keys.x_a, document), _poly_to_bits(polynomial, n)])
    return digest ^ keys.y_a


def verify(document: np.ndarray | bytes, signature: np.ndarray, x_key: np.ndarray, y_key: np.ndarray) -> bool:
    """Check ``signature`` on ``document`` with the reconstructed keys ``K_X = X_b xor X_c``, ``K_Y``.

    Args:
        document: The received document.
        signature: The received 2n-bit signature.
        x_key: The reconstructed n-bit hash key.
        y_key: The reconstructed 2n-bit mask.

    Returns:
        True iff the unmasked polynomial is irreducible of degree n and the recomputed hash matches.
    """
    n = x_key.size
    sig = _bits("signature", signature, 2 * n)
    digest = sig ^ _bits("y_key", y_key, 2 * n)
    polynomial = _bits_to_poly(digest[n:])
    if not is_irreducible(polynomial):
        return False
    return bool(np.array_equal(toeplitz_hash(polynomial, x_key, document), digest[:n]))


@dataclass(frozen=True)
class QDSOutcome:
    """Result of one three-party QDS operation.

    Attributes:
        bob_accepts: Whether the forwarder accepted Alice's signature.
        charlie_accepts: Whether the verifier accepted what Bob forwarded (False when Bob rejected: abort).
        pairs_consumed: Bell pairs the operation's keys cost (pairs).
    """

    bob_accepts: bool
    charlie_accepts: bool
    pairs_consumed: int


def three_party_qds(
    document: np.ndarray | bytes,
    source: KeySource,
    rng: np.random.Generator,
    hash_bits: int = 64,
    *,
    signature: np.ndarray | None = None,
    forwarded_document: np.ndarray | bytes | None = None,
) -> QDSOutcome:
    """Run one sign -> forward -> verify operation among Alice, Bob and Charlie.

    Args:
        document: What Alice (claims to) sign.
        source: Key source for the operation's ``6n`` key bits.
        rng: Alice's local random source (irreducible polynomial).
        hash_bits: n, the hash length (bits).
        signature: A signature to send instead of Alice's honest one (a forgery), or None.
        forwarded_document: What Bob forwards to Charlie instead of what he received (a cheating Bob), or None.

    Returns:
        Both verdicts and the Bell pairs consumed.
    """
    before = source.pairs_consumed
    keys = distribute_keys(source, hash_bits)
    sig = sign(document, keys, rng) if signature is None else signature
    x_key, y_key = keys.x_b ^ keys.x_c, keys.y_b ^ keys.y_c
    bob = verify(document, sig, x_key, y_key)
    forwarded = document if forwarded_document is None else forwarded_document
    charlie = bob and verify(forwarded, sig, x_key, y_key)
    return QDSOutcome(bob, charlie, source.pairs_consumed - before)
