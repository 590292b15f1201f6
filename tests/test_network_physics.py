import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ceas_gym.config import ConfigError
from ceas_gym.network.hardware import HardwareProfile, get_hardware_profile
from ceas_gym.network.physics import (
    DEFAULT_ATTENUATION_LENGTH_KM,
    age_at_fidelity,
    expected_inventory_step,
    expected_successes,
    fibre_attenuation_length_km,
    link_coherence_rounds,
    link_success_probability,
    node_coherence_rounds,
    sample_successes,
    survival_probability,
    werner_fidelity,
)

fidelities = st.floats(min_value=0.2501, max_value=1.0)
coherences = st.floats(min_value=0.1, max_value=1e4)


def _profile(coherence_time_s: float) -> HardwareProfile:
    return HardwareProfile(
        platform="test",
        coherence_time_s=coherence_time_s,
        single_qubit_error=0.0,
        two_qubit_error=0.0,
        readout_error=0.0,
        memory_qubits=1,
        gate_time_s=1e-6,
    )


# ------------------------------------------------------------------------------------------------ generation
def test_fibre_attenuation_length_of_0_2_db_per_km_is_21_7_km():
    # 0.2 dB/km: 10 log10(e) / 0.2 = 21.71 km.
    assert fibre_attenuation_length_km(0.2) == pytest.approx(10 * math.log10(math.e) / 0.2)
    assert fibre_attenuation_length_km(0.2) == pytest.approx(21.7147, abs=1e-4)
    assert round(fibre_attenuation_length_km(0.2)) == DEFAULT_ATTENUATION_LENGTH_KM


def test_success_probability_hand_computed():
    # One attenuation length costs a factor e; zero length leaves eta.
    p = link_success_probability(np.array([0.5, 0.5, 1.0]), np.array([0.0, 22.0, 44.0]))
    np.testing.assert_allclose(p, [0.5, 0.5 / math.e, math.exp(-2.0)])
    assert link_success_probability(0.8, 10.0, attenuation_length_km=math.inf) == pytest.approx(0.8)
    assert link_success_probability(1.0, 5.0, 10.0) == pytest.approx(math.exp(-0.5))


def test_success_probability_matches_db_loss():
    # A 50 km link at 0.2 dB/km loses 10 dB: a factor 10.
    p = link_success_probability(1.0, 50.0, fibre_attenuation_length_km(0.2))
    assert p == pytest.approx(0.1)


def test_success_probability_scalar_and_broadcast_shapes():
    assert np.ndim(link_success_probability(0.5, 1.0)) == 0
    p = link_success_probability(np.full((2, 1), 0.5), np.array([1.0, 2.0, 3.0]))
    assert p.shape == (2, 3)


@pytest.mark.parametrize("eta", [0.0, -0.1, 1.01, math.nan])
def test_success_probability_rejects_eta_outside_unit_interval(eta):
    with pytest.raises(ConfigError, match=r"eta"):
        link_success_probability(eta, 1.0)


def test_success_probability_names_offending_element():
    with pytest.raises(ConfigError, match=r"length_km\[1\] = -1.0 is out of range; allowed: \[0, inf\)"):
        link_success_probability(0.5, np.array([1.0, -1.0]))
    with pytest.raises(ConfigError, match=r"attenuation_length_km"):
        link_success_probability(0.5, 1.0, attenuation_length_km=0.0)


def test_expected_successes_is_attempts_times_p():
    np.testing.assert_allclose(expected_successes(np.array([0, 10, 7]), np.array([0.3, 0.3, 1.0])), [0.0, 3.0, 7.0])
    with pytest.raises(ConfigError, match=r"attempts"):
        expected_successes(-1, 0.5)
    with pytest.raises(ConfigError, match=r"whole numbers"):
        expected_successes(1.5, 0.5)
    with pytest.raises(ConfigError, match=r"expected_successes.p"):
        expected_successes(3, 1.5)


def test_sample_successes_is_reproducible_and_bounded():
    attempts = np.array([0, 5, 100, 1000])
    p = np.array([0.5, 0.0, 1.0, 0.25])
    a = sample_successes(attempts, p, np.random.default_rng(7))
    b = sample_successes(attempts, p, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.int64
    assert a[0] == 0 and a[1] == 0 and a[2] == 100  # degenerate cases are exact
    assert 0 <= a[3] <= 1000


def test_sample_successes_mean_and_variance_match_binomial():
    rng = np.random.default_rng(123)
    n, p = 40, 0.3
    draws = sample_successes(np.full(200_000, n), p, rng)
    # Standard error of the mean: sqrt(n p (1-p) / 2e5) ~ 0.0065; 5 sigma tolerance.
    assert draws.mean() == pytest.approx(n * p, abs=0.035)
    assert draws.var() == pytest.approx(n * p * (1 - p), rel=0.02)


def test_sample_successes_requires_generator():
    with pytest.raises(ConfigError, match=r"numpy.random.Generator"):
        sample_successes(10, 0.5, np.random.RandomState(0))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ ageing
def test_werner_fidelity_closed_form():
    assert werner_fidelity(1.0, 0.0, 5.0) == pytest.approx(1.0)
    assert werner_fidelity(1.0, 5.0, 5.0) == pytest.approx(0.25 + 0.75 / math.e)
    assert werner_fidelity(0.9, 2.0, 4.0) == pytest.approx(0.25 + 0.65 * math.exp(-0.5))
    np.testing.assert_allclose(
        werner_fidelity(np.array([1.0, 0.85]), np.array([[0.0], [3.0]]), 3.0),
        [[1.0, 0.85], [0.25 + 0.75 / math.e, 0.25 + 0.6 / math.e]],
    )


def test_werner_fidelity_half_life():
    # F - 1/4 halves after T ln 2 rounds.
    f = werner_fidelity(0.95, 6.0 * math.log(2.0), 6.0)
    assert f - 0.25 == pytest.approx((0.95 - 0.25) / 2)


def test_werner_fidelity_edge_cases():
    # The maximally mixed state is a fixed point; an ideal memory does not decay.
    assert werner_fidelity(0.25, 100.0, 1.0) == pytest.approx(0.25)
    assert werner_fidelity(0.9, 1e6, math.inf) == pytest.approx(0.9)
    assert werner_fidelity(0.9, 1e6, 1.0) == pytest.approx(0.25)


def test_werner_fidelity_is_monotone_in_age():
    ages = np.arange(0, 50)
    f = werner_fidelity(0.97, ages, 4.0)
    assert np.all(np.diff(f) < 0)
    assert np.all(f > 0.25) and np.all(f <= 0.97)


@pytest.mark.parametrize("fidelity0", [0.2, 1.01, -1.0, math.nan])
def test_werner_fidelity_rejects_fidelity_outside_range(fidelity0):
    with pytest.raises(ConfigError, match=r"fidelity0"):
        werner_fidelity(fidelity0, 1.0, 5.0)


def test_werner_fidelity_rejects_bad_age_and_coherence():
    with pytest.raises(ConfigError, match=r"age_rounds = -1.0 is out of range"):
        werner_fidelity(0.9, -1.0, 5.0)
    with pytest.raises(ConfigError, match=r"coherence_rounds = 0.0 is out of range; allowed: \(0, inf\]"):
        werner_fidelity(0.9, 1.0, 0.0)


def test_age_at_fidelity_hand_computed():
    # F0 = 1, floor 1/2, T = 5: 5 ln(0.75 / 0.25) = 5 ln 3.
    assert age_at_fidelity(1.0, 0.5, 5.0) == pytest.approx(5.0 * math.log(3.0))
    np.testing.assert_allclose(
        age_at_fidelity(np.array([0.9, 0.5, 0.4, 0.9, 0.9]), 0.5, np.array([2.0, 2.0, 2.0, math.inf, 2.0])),
        [2.0 * math.log(0.65 / 0.25), 0.0, 0.0, math.inf, 2.0 * math.log(0.65 / 0.25)],
    )


def test_age_at_fidelity_edge_cases():
    assert age_at_fidelity(0.25, 0.25, 3.0) == 0.0  # already at the floor
    assert age_at_fidelity(0.25, 0.5, math.inf) == 0.0  # below the floor, even with an ideal memory
    assert age_at_fidelity(0.9, 0.25, 3.0) == math.inf  # 1/4 is only approached
    assert age_at_fidelity(0.9, 0.6, math.inf) == math.inf
    with pytest.raises(ConfigError, match=r"age_at_fidelity.floor = 0.2"):
        age_at_fidelity(0.9, 0.2, 3.0)


@given(fidelity0=fidelities, fraction=st.floats(min_value=0.01, max_value=0.99), coherence=coherences)
def test_age_at_fidelity_inverts_werner_fidelity(fidelity0, fraction, coherence):
    floor = 0.25 + fraction * (fidelity0 - 0.25)
    age = age_at_fidelity(fidelity0, floor, coherence)
    assert werner_fidelity(fidelity0, age, coherence) == pytest.approx(floor, rel=1e-9, abs=1e-12)


@given(fidelity0=fidelities, age=st.floats(min_value=0.0, max_value=50.0), coherence=coherences)
def test_werner_fidelity_inverts_age_at_fidelity(fidelity0, age, coherence):
    floor = werner_fidelity(fidelity0, age, coherence)
    # The round trip is ill-conditioned where F is flat in age (near 1/4) or the age is ~0.
    assume(floor - 0.25 > 1e-9 * (fidelity0 - 0.25) and fidelity0 - floor > 1e-9)
    assert age_at_fidelity(fidelity0, floor, coherence) == pytest.approx(age, rel=1e-6, abs=1e-6)


# ------------------------------------------------------------------------------------------------ coherence
def test_link_coherence_uses_worse_memory():
    long, short = _profile(10e-3), _profile(2e-3)
    assert link_coherence_rounds(long, short, 1e-3) == pytest.approx(2.0)
    assert link_coherence_rounds(short, long, 1e-3) == pytest.approx(2.0)
    assert link_coherence_rounds(long, long, 1e-3) == pytest.approx(10.0)


def test_link_coherence_sum_of_rates_rule():
    long, short = _profile(6e-3), _profile(3e-3)
    # 1 / (1/6 + 1/3) = 2 rounds.
    assert link_coherence_rounds(long, short, 1e-3, rule="sum-of-rates") == pytest.approx(2.0)
    # Equal memories: half of either.
    assert link_coherence_rounds(long, long, 1e-3, rule="sum-of-rates") == pytest.approx(3.0)
    with pytest.raises(ConfigError, match=r"rule"):
        link_coherence_rounds(long, short, 1e-3, rule="best")  # type: ignore[arg-type]


def test_link_coherence_vectorised_over_links_and_inf():
    ideal = _profile(math.inf)
    u = [ideal, _profile(1.0), ideal]
    v = [ideal, ideal, _profile(0.5)]
    np.testing.assert_allclose(link_coherence_rounds(u, v, 0.1), [math.inf, 10.0, 5.0])
    np.testing.assert_allclose(node_coherence_rounds(u, 0.5), [math.inf, 2.0, math.inf])


def test_link_coherence_rejects_bad_inputs():
    with pytest.raises(ConfigError, match=r"round_duration_s"):
        link_coherence_rounds(_profile(1.0), _profile(1.0), 0.0)
    with pytest.raises(ConfigError, match=r"profile_v\[1\]: expected a HardwareProfile"):
        link_coherence_rounds([_profile(1.0)] * 2, [_profile(1.0), "nv-centre"], 1.0)  # type: ignore[list-item]


def test_link_coherence_of_shipped_profiles():
    nv, ion = get_hardware_profile("nv-centre"), get_hardware_profile("trapped-ion")
    assert link_coherence_rounds(nv, ion, 1e-3) == pytest.approx(nv.coherence_time_s / 1e-3)


# ------------------------------------------------------------------------------------------------ inventory
def test_survival_probability_closed_form():
    assert survival_probability(0.0, 10.0) == 1.0
    assert survival_probability(0.5, 2.0) == pytest.approx(math.exp(-1.0))
    np.testing.assert_allclose(survival_probability(np.array([0.1, 1.0])), np.exp([-0.1, -1.0]))
    # Survival over t1 + t2 is the product (memoryless exponential lifetime).
    assert survival_probability(0.3, 5.0) == pytest.approx(
        survival_probability(0.3, 2.0) * survival_probability(0.3, 3.0)
    )
    with pytest.raises(ConfigError, match=r"decay_rate = -0.1"):
        survival_probability(-0.1)
    with pytest.raises(ConfigError, match=r"survival_probability.dt"):
        survival_probability(0.1, -1.0)


def test_expected_inventory_step_hand_computed():
    # e^{-ln 2} * 8 + 3 - 2 = 5.
    assert expected_inventory_step(8.0, math.log(2.0), 3.0, 2.0) == pytest.approx(5.0)
    np.testing.assert_allclose(
        expected_inventory_step(
            np.array([0.0, 10.0]), np.array([1.0, 0.0]), np.array([4.0, 0.0]), np.array([1.0, 10.0])
        ),
        [3.0, 0.0],
    )


def test_expected_inventory_step_steady_state():
    # With constant r and c the recursion converges to (r - c) / (1 - e^{-lambda}).
    lam, r, c = 0.4, 5.0, 2.0
    mean = 0.0
    for _ in range(200):
        mean = expected_inventory_step(mean, lam, r, c)
    assert mean == pytest.approx((r - c) / (1.0 - math.exp(-lam)))


def test_expected_inventory_step_matches_per_pair_simulation():
    # Independent reference: simulate each pair's exponential survival explicitly.
    rng = np.random.default_rng(5)
    lam, start, generated, consumed, trials = 0.7, 20, 6, 4, 20_000
    survivors = rng.binomial(start, math.exp(-lam), size=trials)
    held = survivors + generated - consumed
    expected = expected_inventory_step(float(start), lam, float(generated), float(consumed))
    # Standard error ~ sqrt(20 * 0.5 * 0.5 / 2e4) ~ 0.016.
    assert held.mean() == pytest.approx(expected, abs=0.08)


def test_expected_inventory_step_rejects_bad_inputs():
    with pytest.raises(ConfigError, match=r"consumed = 5.0 exceeds the pairs available"):
        expected_inventory_step(2.0, 0.0, 1.0, 5.0)
    with pytest.raises(ConfigError, match=r"mean_inventory = -1.0"):
        expected_inventory_step(-1.0, 0.1, 1.0, 0.0)
    with pytest.raises(ConfigError, match=r"generated"):
        expected_inventory_step(1.0, 0.1, -1.0, 0.0)
    with pytest.raises(ConfigError, match=r"decay_rate"):
        expected_inventory_step(1.0, math.inf, 1.0, 0.0)
