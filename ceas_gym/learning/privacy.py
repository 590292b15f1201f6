"""Differential privacy for local training: per-sample clipping, Gaussian noise, calibration and accounting.

Second paper (Liu et al. 2025, Sec. 2.2 and 4.3, Fig. 4): clients run DP-SGD (Abadi et al., CCS 2016) and the
paper's DP experiment uses ``(epsilon, delta) = (4, 1e-5)``.

Mechanism (DP-SGD step)
-----------------------
For a batch of B samples with per-sample gradients ``g_b`` (computed in one vectorised pass with
``torch.func.vmap(torch.func.grad(...))``):

    g_b <- g_b * min(1, C / ||g_b||_2)                 (clipping to L2 norm C)
    g   = (sum_b g_b + N(0, (sigma C)^2 I)) / B         (Gaussian noise, noise multiplier sigma)

so the noisy sum has L2 sensitivity C (add/remove one sample) and the noise standard deviation of each
coordinate of ``g`` is ``sigma C / B``.

Calibration of a single Gaussian mechanism with L2 sensitivity Delta
--------------------------------------------------------------------
- :func:`classical_gaussian_sigma`: ``sigma = sqrt(2 ln(1.25 / delta)) Delta / epsilon`` (Dwork & Roth 2014,
  Thm. A.1), valid for ``epsilon < 1`` only; larger epsilon raises.
- :func:`analytic_gaussian_sigma`: the smallest sigma with
  ``Phi(Delta / (2 sigma) - epsilon sigma / Delta) - e^epsilon Phi(-Delta / (2 sigma) - epsilon sigma / Delta)
  <= delta`` (Balle & Wang, ICML 2018, Thm. 8: the exact condition, valid for every epsilon > 0), found by
  bisection on sigma (the left side decreases in sigma).

Accountant over T rounds (:func:`rdp_epsilon`)
----------------------------------------------
Renyi DP of the Gaussian mechanism with noise multiplier sigma (std / sensitivity) at order alpha > 1 is
``alpha / (2 sigma^2)`` (Mironov, CSF 2017, Prop. 7); T adaptive compositions add up to
``T alpha / (2 sigma^2)`` (Prop. 1); conversion to (epsilon, delta)-DP uses
``epsilon = min_alpha [T alpha / (2 sigma^2) + ln(1 / delta) / (alpha - 1)]`` (Prop. 3). The minimum is taken
over :data:`DEFAULT_ORDERS` (a grid of orders from 1.25 to 256) unless orders are given. No amplification by
subsampling is claimed: each round is charged as a full Gaussian mechanism on the client's data, so the bound is
conservative (valid whatever batches are drawn). One "round" is one noisy release; with several local DP-SGD
steps per communication round, pass ``rounds = rounds x steps``.
:func:`noise_multiplier_for` inverts the accountant by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch.func import functional_call, grad, vmap

from ceas_gym.config import ConfigError, check_int, check_range
from ceas_gym.learning.sampling import standard_normal

__all__ = [
    "DEFAULT_ORDERS",
    "add_gaussian_noise",
    "analytic_gaussian_delta",
    "analytic_gaussian_sigma",
    "classical_gaussian_sigma",
    "clip_per_sample",
    "dp_gradient",
    "noise_multiplier_for",
    "per_sample_gradients",
    "rdp_epsilon",
]

DEFAULT_ORDERS: tuple[float, ...] = (
    1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 14.0, 16.0, 20.0, 24.0, 32.0,
    48.0, 64.0, 96.0, 128.0, 256.0,
)  # fmt: skip


def _check_eps_delta(epsilon: float, delta: float) -> None:
    check_range("epsilon", epsilon, 0.0, None, low_inclusive=False)
    check_range("delta", delta, 0.0, 1.0, low_inclusive=False, high_inclusive=False)


def classical_gaussian_sigma(epsilon: float, delta: float, sensitivity: float = 1.0) -> float:
    """Classical Gaussian-mechanism std ``sqrt(2 ln(1.25/delta)) Delta / epsilon`` (Dwork & Roth, Thm. A.1).

    Args:
        epsilon: Privacy loss bound, in (0, 1).
        delta: Failure probability, in (0, 1).
        sensitivity: L2 sensitivity Delta (> 0, in the units of the released quantity).

    Returns:
        The noise standard deviation (units of the released quantity).

    Raises:
        ConfigError: If ``epsilon >= 1`` (the theorem does not hold there; use the analytic calibration).
    """
    _check_eps_delta(epsilon, delta)
    check_range("sensitivity", sensitivity, 0.0, None, low_inclusive=False)
    if epsilon >= 1.0:
        raise ConfigError(
            f"epsilon = {epsilon} is not allowed for the classical calibration; allowed: (0, 1) "
            "(use analytic_gaussian_sigma for larger epsilon)"
        )
    return math.sqrt(2.0 * math.log(1.25 / delta)) * sensitivity / epsilon


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def analytic_gaussian_delta(sigma: float, epsilon: float, sensitivity: float = 1.0) -> float:
    """Exact delta of the Gaussian mechanism with std sigma at epsilon (Balle & Wang 2018, Thm. 8).

    Args:
        sigma: Noise standard deviation (> 0).
        epsilon: Privacy loss (> 0).
        sensitivity: L2 sensitivity (> 0).

    Returns:
        ``Phi(D/(2s) - e s/D) - exp(e) Phi(-D/(2s) - e s/D)``, a probability.
    """
    a = sensitivity / (2.0 * sigma)
    b = epsilon * sigma / sensitivity
    return max(0.0, _normal_cdf(a - b) - math.exp(epsilon) * _normal_cdf(-a - b))


def analytic_gaussian_sigma(epsilon: float, delta: float, sensitivity: float = 1.0, tolerance: float = 1e-12) -> float:
    """Smallest std making the Gaussian mechanism (epsilon, delta)-DP (analytic calibration, Balle & Wang 2018).

    Args:
        epsilon: Privacy loss bound (> 0).
        delta: Failure probability, in (0, 1).
        sensitivity: L2 sensitivity Delta (> 0).
        tolerance: Relative bisection tolerance on sigma.

    Returns:
        sigma (units of the released quantity); ``analytic_gaussian_delta(sigma, epsilon) <= delta``.
    """
    _check_eps_delta(epsilon, delta)
    check_range("sensitivity", sensitivity, 0.0, None, low_inclusive=False)
    low, high = 1e-6 * sensitivity, sensitivity
    while analytic_gaussian_delta(high, epsilon, sensitivity) > delta:
        low, high = high, 2.0 * high
    while high - low > tolerance * high:
        middle = 0.5 * (low + high)
        if analytic_gaussian_delta(middle, epsilon, sensitivity) > delta:
            low = middle
        else:
            high = middle
    return high


def rdp_epsilon(noise_multiplier: float, rounds: int, delta: float, orders: Sequence[float] = DEFAULT_ORDERS) -> float:
    """Total epsilon after ``rounds`` Gaussian releases via Renyi DP (Mironov 2017, Prop. 1, 3, 7), no subsampling.

    Args:
        noise_multiplier: sigma = noise std / L2 sensitivity (> 0).
        rounds: Number of releases T (>= 0).
        delta: Target delta in (0, 1).
        orders: Renyi orders alpha > 1 to minimise over.

    Returns:
        ``min_alpha T alpha / (2 sigma^2) + ln(1/delta) / (alpha - 1)``.
    """
    check_range("noise_multiplier", noise_multiplier, 0.0, None, low_inclusive=False)
    check_int("rounds", rounds, 0)
    check_range("delta", delta, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    if len(orders) == 0 or any(alpha <= 1.0 for alpha in orders):
        raise ConfigError(f"orders = {tuple(orders)!r} is not allowed; allowed: a non-empty list of numbers > 1")
    log_inverse_delta = math.log(1.0 / delta)
    return min(rounds * alpha / (2.0 * noise_multiplier**2) + log_inverse_delta / (alpha - 1.0) for alpha in orders)


def noise_multiplier_for(
    epsilon: float, delta: float, rounds: int, orders: Sequence[float] = DEFAULT_ORDERS, tolerance: float = 1e-9
) -> float:
    """Smallest noise multiplier whose :func:`rdp_epsilon` over ``rounds`` releases is at most ``epsilon``.

    Args:
        epsilon: Target total epsilon (> 0; must exceed ``min_alpha ln(1/delta)/(alpha-1)``, the limit as
            sigma grows).
        delta: Target delta in (0, 1).
        rounds: Number of releases (>= 1).
        orders: Renyi orders.
        tolerance: Relative bisection tolerance.

    Returns:
        The noise multiplier sigma.

    Raises:
        ConfigError: If epsilon is unreachable with these orders.
    """
    _check_eps_delta(epsilon, delta)
    check_int("rounds", rounds, 1)
    floor = min(math.log(1.0 / delta) / (alpha - 1.0) for alpha in orders)
    if epsilon <= floor:
        raise ConfigError(
            f"epsilon = {epsilon} is not reachable with delta = {delta} and these orders; allowed: > {floor:.4g}"
        )
    low, high = 1e-3, 1.0
    while rdp_epsilon(high, rounds, delta, orders) > epsilon:
        low, high = high, 2.0 * high
    while high - low > tolerance * high:
        middle = 0.5 * (low + high)
        if rdp_epsilon(middle, rounds, delta, orders) > epsilon:
            low = middle
        else:
            high = middle
    return high


def per_sample_gradients(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Per-sample gradients of ``loss_fn(model(x_b), y_b)`` for every sample b, in one vmap'd pass.

    Args:
        model: The model (its current parameters are used; buffers are shared).
        loss_fn: Loss of a batch of predictions and targets, returning a scalar (e.g. ``cross_entropy``).
        inputs: Inputs, shape ``(B, ...)``.
        targets: Targets, shape ``(B, ...)``.

    Returns:
        Parameter name -> gradient tensor of shape ``(B, *parameter.shape)``.
    """
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def sample_loss(parameters: dict[str, torch.Tensor], sample: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        prediction = functional_call(model, (parameters, buffers), (sample.unsqueeze(0),))
        return loss_fn(prediction, target.unsqueeze(0))

    return vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, inputs, targets)


def _flatten(per_sample: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
    if isinstance(per_sample, torch.Tensor):
        if per_sample.ndim < 2:
            raise ConfigError(f"per_sample: expected shape (B, P), got {tuple(per_sample.shape)}")
        return per_sample.reshape(per_sample.shape[0], -1)
    return torch.cat([g.reshape(g.shape[0], -1) for g in per_sample.values()], dim=1)


def clip_per_sample(per_sample: dict[str, torch.Tensor] | torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale every per-sample gradient to L2 norm at most ``max_norm``: ``g_b * min(1, C / ||g_b||)``.

    Args:
        per_sample: ``(B, P)`` gradients, or the dict returned by :func:`per_sample_gradients` (flattened and
            concatenated in parameter order, so the norm is over all parameters).
        max_norm: Clipping bound C (> 0, gradient units).

    Returns:
        The clipped ``(B, P)`` gradients.
    """
    check_range("max_norm", max_norm, 0.0, None, low_inclusive=False)
    flat = _flatten(per_sample)
    norms = torch.linalg.vector_norm(flat, dim=1, keepdim=True)
    factor = torch.clamp(max_norm / torch.clamp(norms, min=torch.finfo(flat.dtype).tiny), max=1.0)
    return flat * factor


def add_gaussian_noise(total: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Return ``total + N(0, std^2 I)`` (std in the units of ``total``)."""
    check_range("std", std, 0.0, None)
    noise = standard_normal(total, generator)
    return total + std * noise


def dp_gradient(
    per_sample: dict[str, torch.Tensor] | torch.Tensor,
    max_norm: float,
    noise_multiplier: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """One DP-SGD gradient: ``(sum_b clip(g_b) + N(0, (sigma C)^2 I)) / B``, flat shape ``(P,)``.

    Args:
        per_sample: Per-sample gradients ``(B, P)`` or the dict of :func:`per_sample_gradients`.
        max_norm: Clipping bound C (> 0).
        noise_multiplier: sigma (>= 0); the per-coordinate std of the result is ``sigma C / B``.
        generator: Source of the noise.

    Returns:
        The privatised mean gradient.
    """
    check_range("noise_multiplier", noise_multiplier, 0.0, None)
    clipped = clip_per_sample(per_sample, max_norm)
    return add_gaussian_noise(clipped.sum(dim=0), noise_multiplier * max_norm, generator) / clipped.shape[0]
