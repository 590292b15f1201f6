import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from ceas_gym.config import ConfigError
from ceas_gym.learning.privacy import (
    analytic_gaussian_delta,
    analytic_gaussian_sigma,
    classical_gaussian_sigma,
    clip_per_sample,
    dp_gradient,
    noise_multiplier_for,
    per_sample_gradients,
    rdp_epsilon,
)


def _model() -> torch.nn.Module:
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
    return model


def test_per_sample_gradients_match_one_sample_at_a_time():
    model = _model()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (6,), generator=g)
    grads = per_sample_gradients(model, torch.nn.functional.cross_entropy, x, y)
    for b in range(6):  # independent reference: ordinary backward on one sample
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[b : b + 1]), y[b : b + 1]).backward()
        for name, p in model.named_parameters():
            torch.testing.assert_close(grads[name][b], p.grad, atol=1e-12, rtol=1e-10)


@settings(max_examples=30, deadline=None)
@given(scale=st.floats(1e-3, 1e3), max_norm=st.floats(1e-2, 10.0), seed=st.integers(0, 10_000))
def test_clipping_bounds_every_norm_and_keeps_small_ones(scale, max_norm, seed):
    g = scale * torch.randn(16, 7, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    clipped = clip_per_sample(g, max_norm)
    norms = torch.linalg.vector_norm(clipped, dim=1)
    assert bool((norms <= max_norm * (1 + 1e-12)).all())
    original = torch.linalg.vector_norm(g, dim=1)
    small = original <= max_norm
    torch.testing.assert_close(clipped[small], g[small])
    # direction preserved
    cos = (clipped * g).sum(1) / (norms * original)
    torch.testing.assert_close(cos, torch.ones_like(cos))


def test_clipping_dict_uses_norm_over_all_parameters():
    grads = {"a": torch.full((2, 3), 1.0), "b": torch.full((2, 1), 1.0)}  # norm 2 per sample
    clipped = clip_per_sample(grads, 1.0)
    torch.testing.assert_close(clipped, torch.full((2, 4), 0.5))


def test_dp_noise_std_matches_calibration():
    batch, params, sigma, clip = 8, 200_000, 1.3, 0.7
    zeros = torch.zeros(batch, params, dtype=torch.float64)
    noisy = dp_gradient(zeros, clip, sigma, torch.Generator().manual_seed(3))
    expected = sigma * clip / batch
    assert float(noisy.std()) == pytest.approx(expected, rel=0.01)
    assert abs(float(noisy.mean())) < 4 * expected / math.sqrt(params)


def test_dp_gradient_without_noise_is_clipped_mean():
    g = torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=torch.float64)
    out = dp_gradient(g, 1.0, 0.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, torch.tensor([(0.6 + 0.3) / 2, (0.8 + 0.4) / 2], dtype=torch.float64))


def test_classical_sigma_hand_computed():
    assert classical_gaussian_sigma(0.5, 1e-5) == pytest.approx(math.sqrt(2 * math.log(125_000)) / 0.5)
    assert classical_gaussian_sigma(0.5, 1e-5, 2.0) == pytest.approx(2 * math.sqrt(2 * math.log(125_000)) / 0.5)
    with pytest.raises(ConfigError, match="epsilon"):
        classical_gaussian_sigma(4.0, 1e-5)


@pytest.mark.parametrize(("epsilon", "delta"), [(0.5, 1e-5), (1.0, 1e-5), (4.0, 1e-5), (0.1, 1e-3)])
def test_analytic_sigma_is_tight_and_not_worse_than_classical(epsilon, delta):
    sigma = analytic_gaussian_sigma(epsilon, delta)

    def reference_delta(s):  # independent: scipy's normal cdf
        return norm.cdf(1 / (2 * s) - epsilon * s) - math.exp(epsilon) * norm.cdf(-1 / (2 * s) - epsilon * s)

    assert reference_delta(sigma) <= delta * (1 + 1e-6)
    assert reference_delta(sigma * 0.999) > delta
    if epsilon < 1:
        assert sigma < classical_gaussian_sigma(epsilon, delta)
    assert analytic_gaussian_delta(sigma, epsilon) == pytest.approx(reference_delta(sigma), rel=1e-6)


def test_rdp_accountant_hand_computed():
    # T alpha / (2 sigma^2) + ln(1/delta)/(alpha-1) at alpha = 8, sigma = 2, T = 10
    expected = 10 * 8 / (2 * 4) + math.log(1e5) / 7
    assert rdp_epsilon(2.0, 10, 1e-5, orders=[8.0]) == pytest.approx(expected, rel=1e-12)
    # minimum over two orders picks the smaller
    other = 10 * 4 / 8 + math.log(1e5) / 3
    assert rdp_epsilon(2.0, 10, 1e-5, orders=[4.0, 8.0]) == pytest.approx(min(expected, other))


def test_rdp_accountant_monotone_in_rounds_and_sigma():
    eps_by_rounds = [rdp_epsilon(1.5, t, 1e-5) for t in (1, 2, 5, 10, 50, 200)]
    assert all(a < b for a, b in itertools.pairwise(eps_by_rounds))
    eps_by_sigma = [rdp_epsilon(s, 20, 1e-5) for s in (0.5, 1.0, 2.0, 4.0, 8.0)]
    assert all(a > b for a, b in itertools.pairwise(eps_by_sigma))


def test_noise_multiplier_inverts_accountant():
    sigma = noise_multiplier_for(4.0, 1e-5, 200)
    assert rdp_epsilon(sigma, 200, 1e-5) <= 4.0
    assert rdp_epsilon(sigma * 0.99, 200, 1e-5) > 4.0
    with pytest.raises(ConfigError, match="epsilon"):
        noise_multiplier_for(0.01, 1e-5, 10)


def test_bad_input_names_field():
    with pytest.raises(ConfigError, match="delta"):
        analytic_gaussian_sigma(1.0, 1.5)
    with pytest.raises(ConfigError, match="max_norm"):
        clip_per_sample(torch.zeros(2, 2), 0.0)
    with pytest.raises(ConfigError, match="orders"):
        rdp_epsilon(1.0, 1, 1e-5, orders=[1.0])
