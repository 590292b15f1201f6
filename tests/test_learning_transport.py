import math

import pytest
import torch

from ceas_gym.learning.transport import depolarising_strength, expected_squared_error, transmit


def _updates(rows, size, seed=0):
    return torch.randn(rows, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_strength_hand_values():
    fidelity = torch.tensor([1.0, 0.7, 0.25, 0.1, 0.0], dtype=torch.float64)
    torch.testing.assert_close(depolarising_strength(fidelity), torch.tensor([0.0, 0.4, 1.0, 1.0, 1.0]).double())
    with pytest.raises(ValueError, match=r"fidelity must lie in \[0, 1\]"):
        depolarising_strength(torch.tensor([1.2]))


def test_perfect_pair_leaves_update_unchanged():
    updates = _updates(5, 26)
    received = transmit(updates, torch.ones(5, dtype=torch.float64), torch.Generator().manual_seed(1))
    assert torch.equal(received, updates)


def test_monte_carlo_matches_closed_form_and_is_monotone():
    # Per draw ||W' - W||^2 = p^2 (||W||^2 - 2 rms W.xi + rms^2 ||xi||^2), with mean 2 p^2 ||W||^2 and
    # variance p^4 rms^4 (4 P + 2 P); the relative std of the mean over R draws is sqrt(1.5 / (P R)).
    size, repeats = 26, 20_000
    fidelities = torch.tensor([0.55, 0.7, 0.85, 0.95], dtype=torch.float64)
    base = _updates(1, size, seed=2)
    updates = base.expand(repeats * len(fidelities), size)
    per_message = fidelities.repeat_interleave(repeats)
    received = transmit(updates, per_message, torch.Generator().manual_seed(3))
    errors = (received - updates).square().sum(-1).reshape(len(fidelities), repeats)
    estimate = errors.mean(1)
    closed = expected_squared_error(base.expand(len(fidelities), size), fidelities)
    tolerance = 5 * math.sqrt(1.5 / (size * repeats))  # 5 standard errors, relative
    torch.testing.assert_close(estimate, closed, rtol=tolerance, atol=0)
    assert torch.all(estimate[:-1] > estimate[1:])  # error falls as fidelity rises
    # the mean received message is (1 - p) W
    mean = received.reshape(len(fidelities), repeats, size).mean(1)
    shrunk = (1 - depolarising_strength(fidelities))[:, None] * base
    rms = base.square().mean().sqrt()
    p = depolarising_strength(fidelities)[:, None]
    assert torch.all((mean - shrunk).abs() <= 5 * p * rms / math.sqrt(repeats))


def test_closed_form_hand_value_and_seeded_reproducibility():
    updates = torch.tensor([[3.0, 4.0]], dtype=torch.float64)  # ||W||^2 = 25
    fidelity = torch.tensor([0.7], dtype=torch.float64)  # p = 0.4
    assert expected_squared_error(updates, fidelity).item() == pytest.approx(2 * 0.16 * 25)
    a = transmit(updates, fidelity, torch.Generator().manual_seed(9))
    b = transmit(updates, fidelity, torch.Generator().manual_seed(9))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="updates must be"):
        transmit(updates, torch.ones(2), torch.Generator())


def test_unbiased_receiver_undoes_the_shrinkage_in_expectation():
    """E[W''] = W and E||W'' - W||^2 = (p / (1 - p))^2 ||W||^2 for the unbiased receiver (Monte Carlo)."""
    generator = torch.Generator().manual_seed(5)
    row = torch.linspace(-1.0, 2.0, 16, dtype=torch.float64)
    draws = 20_000
    updates = row.expand(draws, -1).clone()
    fidelity = torch.full((draws,), 0.85, dtype=torch.float64)
    received = transmit(updates, fidelity, generator, receiver="unbiased")
    p = float(depolarising_strength(torch.tensor(0.85)))
    mean = received.mean(0)
    # Per coordinate the noise std is p/(1-p) * rms(W); the mean of `draws` samples has std that / sqrt(draws).
    rms = float(row.norm() / 4.0)
    tolerance = 5 * (p / (1 - p)) * rms / draws**0.5
    assert torch.all((mean - row).abs() < tolerance)
    error = (received - updates).square().sum(-1).mean()
    expected = (p / (1 - p)) ** 2 * float(row.square().sum())
    assert float(error) == pytest.approx(expected, rel=0.03)
    raw = transmit(updates, fidelity, torch.Generator().manual_seed(5))
    assert torch.allclose(raw.mean(0), (1 - p) * row, atol=tolerance * (1 - p))


def test_unknown_receiver_is_rejected():
    with pytest.raises(ValueError, match="receiver = 'smart'"):
        transmit(torch.ones(2, 3), torch.ones(2), torch.Generator(), receiver="smart")
