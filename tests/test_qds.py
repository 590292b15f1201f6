import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceas_gym.config import ConfigError
from ceas_gym.consensus.qds import (
    RandomKeySource,
    bytes_to_bits,
    distribute_keys,
    is_irreducible,
    is_irreducible_bruteforce,
    poly_gcd,
    poly_mod,
    poly_mulmod,
    random_irreducible,
    sign,
    three_party_qds,
    toeplitz_hash,
    toeplitz_matrix,
    verify,
)

N_BITS = 32
DOC = b"block 7: model 3fa9, participants 1 4 5 9"


def signed(seed=0, document=DOC, n=N_BITS):
    rng = np.random.default_rng(seed)
    keys = distribute_keys(RandomKeySource(rng), n)
    signature = sign(document, keys, np.random.default_rng(seed + 1000))
    return keys, signature


def test_polynomial_arithmetic_hand_cases():
    # (x + 1)^2 = x^2 + 1 over GF(2); x^3 + x + 1 mod (x^2 + 1) = x^3 + x + 1 - x (x^2 + 1) = 1
    assert poly_mulmod(0b11, 0b11, 1 << 10) == 0b101
    assert poly_mod(0b1011, 0b101) == 0b1
    assert poly_gcd(0b101, 0b11) == 0b11  # x^2 + 1 = (x + 1)^2


def test_rabin_agrees_with_bruteforce_for_all_degrees_up_to_10():
    for polynomial in range(2, 1 << 11):
        assert is_irreducible(polynomial) == is_irreducible_bruteforce(polynomial), bin(polynomial)


def test_number_of_irreducibles_matches_necklace_count():
    # (1/n) sum_{d | n} mu(d) 2^(n/d) for n = 1..10
    expected = [2, 1, 2, 3, 6, 9, 18, 30, 56, 99]
    for n, count in enumerate(expected, start=1):
        assert sum(is_irreducible(p) for p in range(1 << n, 1 << (n + 1))) == count


def test_known_large_irreducibles():
    assert is_irreducible((1 << 64) | 0b11011)  # x^64 + x^4 + x^3 + x + 1 (a standard CRC/GF(2^64) modulus)
    assert not is_irreducible((1 << 64) | 1)  # x^64 + 1 = (x + 1)^64


def test_random_irreducible_has_the_degree_and_is_seeded():
    first = random_irreducible(N_BITS, np.random.default_rng(5))
    assert first.bit_length() == N_BITS + 1 and is_irreducible(first)
    assert random_irreducible(N_BITS, np.random.default_rng(5)) == first


def test_toeplitz_structure_and_lfsr_recurrence():
    polynomial = random_irreducible(8, np.random.default_rng(1))
    key = np.random.default_rng(2).integers(0, 2, 8, dtype=np.uint8)
    matrix = toeplitz_matrix(polynomial, key, 40)
    assert matrix.shape == (8, 40)
    assert np.array_equal(matrix[1:, 1:], matrix[:-1, :-1])  # constant along diagonals
    # Recover the sequence s: s[k] = H[n-1, k] for k < m, then s[j+n-1] = H[0, j]
    sequence = np.concatenate([matrix[7, :], matrix[0, 40 - 7 :]])
    assert np.array_equal(sequence[:8], key)
    taps = [(polynomial >> i) & 1 for i in range(8)]
    for k in range(len(sequence) - 8):
        assert sequence[k + 8] == sum(t * s for t, s in zip(taps, sequence[k : k + 8], strict=True)) % 2


@settings(max_examples=30, deadline=None)
@given(a=st.binary(min_size=6, max_size=6), b=st.binary(min_size=6, max_size=6), seed=st.integers(0, 1000))
def test_hash_is_linear_over_gf2(a, b, seed):
    rng = np.random.default_rng(seed)
    polynomial = random_irreducible(16, rng)
    key = rng.integers(0, 2, 16, dtype=np.uint8)
    combined = bytes(x ^ y for x, y in zip(a, b, strict=True))
    assert np.array_equal(
        toeplitz_hash(polynomial, key, combined), toeplitz_hash(polynomial, key, a) ^ toeplitz_hash(polynomial, key, b)
    )


@pytest.mark.parametrize("seed", range(5))
def test_honest_signature_verifies(seed):
    keys, signature = signed(seed)
    assert signature.size == 2 * N_BITS
    assert verify(DOC, signature, keys.x_b ^ keys.x_c, keys.y_b ^ keys.y_c)


def test_every_single_message_bit_flip_is_rejected():
    keys, signature = signed(3)
    bits = bytes_to_bits(DOC)
    for position in range(bits.size):
        flipped = bits.copy()
        flipped[position] ^= 1
        assert not verify(flipped, signature, keys.x_a, keys.y_a), position


def test_every_single_tag_bit_flip_is_rejected():
    keys, signature = signed(4)
    for position in range(signature.size):
        tampered = signature.copy()
        tampered[position] ^= 1
        assert not verify(DOC, tampered, keys.x_a, keys.y_a), position


def test_forged_tags_are_rejected():
    keys, _ = signed(5)
    rng = np.random.default_rng(99)
    for _ in range(200):
        forged = rng.integers(0, 2, 2 * N_BITS, dtype=np.uint8)
        assert not verify(DOC, forged, keys.x_a, keys.y_a)


def test_signature_from_other_keys_is_rejected():
    _, signature = signed(6)
    other_keys, _ = signed(7)
    assert not verify(DOC, signature, other_keys.x_a, other_keys.y_a)


def test_three_party_operation_and_pair_accounting():
    source = RandomKeySource(np.random.default_rng(0), bits_per_pair=0.5)
    outcome = three_party_qds(DOC, source, np.random.default_rng(1), hash_bits=N_BITS)
    assert outcome.bob_accepts and outcome.charlie_accepts
    assert outcome.pairs_consumed == 6 * N_BITS * 2
    cheating_bob = three_party_qds(DOC, source, np.random.default_rng(2), N_BITS, forwarded_document=b"other")
    assert cheating_bob.bob_accepts and not cheating_bob.charlie_accepts
    forged = three_party_qds(DOC, source, np.random.default_rng(3), N_BITS, signature=np.zeros(64, dtype=np.uint8))
    assert not forged.bob_accepts and not forged.charlie_accepts
    assert source.pairs_consumed == 3 * 6 * N_BITS * 2


def test_key_source_counts_pairs_by_efficiency():
    source = RandomKeySource(np.random.default_rng(0), bits_per_pair=0.3)
    bits = source.draw(10)
    assert bits.dtype == np.uint8 and set(np.unique(bits)) <= {0, 1}
    assert source.pairs_consumed == 34  # ceil(10 / 0.3)
    with pytest.raises(ConfigError, match="bits_per_pair"):
        RandomKeySource(np.random.default_rng(0), bits_per_pair=0.0)


def test_keys_xor_relation():
    keys = distribute_keys(RandomKeySource(np.random.default_rng(8)), 16)
    assert np.array_equal(keys.x_a ^ keys.x_c, keys.x_b)
    assert np.array_equal(keys.y_a ^ keys.y_b, keys.y_c)
    assert keys.y_a.size == 32


def test_same_seed_same_signature():
    assert np.array_equal(signed(11)[1], signed(11)[1])
