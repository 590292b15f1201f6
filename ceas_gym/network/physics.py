"""Link physics: generation success, Werner-state ageing and the expected inventory of CEAS eq. (7).

All functions are vectorised: every argument may be a scalar or an array, and arguments broadcast against each
other with numpy rules. Scalar inputs give numpy scalars, array inputs give arrays. Every input is validated
(vectorised) and a bad value raises :class:`~ceas_gym.config.ConfigError` naming the argument, the first offending
value and the allowed range.

Model and units (DESIGN.md section 3, CEAS Sec. III-C):

* **Generation.** One attempt on a fibre link of length ``L`` (km) succeeds with probability
  ``p = eta * exp(-L / L_att)``, where ``eta`` in (0, 1] lumps the non-fibre efficiencies (sources, coupling,
  detectors) and ``L_att`` is the fibre's 1/e attenuation length. Telecom fibre loses 0.2 dB/km, so
  ``L_att = 10 / (0.2 ln 10) = 21.7 km``; we use the customary round value 22 km
  (see :func:`fibre_attenuation_length_km`). ``k`` independent attempts in a round give a Binomial(k, p) number of
  pairs (:func:`sample_successes`), mean ``k p`` (:func:`expected_successes`).
* **Ageing.** A stored pair is a Werner state whose two halves sit in depolarising memories. Its fidelity after
  ``age`` rounds is ``F(age) = 1/4 + (F0 - 1/4) exp(-age / T)`` with ``T`` the link's coherence time in rounds
  (:func:`werner_fidelity`). ``F0 = 1/4`` is the maximally mixed state, a fixed point; ``T = inf`` means no decay.
  The inverse, :func:`age_at_fidelity`, gives the age ``T ln((F0 - 1/4) / (F_floor - 1/4))`` at which a pair hits a
  fidelity floor: 0 if it starts at or below the floor, ``inf`` if it never gets there (``T = inf``, or a floor of
  exactly 1/4, which is only approached).
* **Link coherence.** Each half of a pair is stored at one end node. We give the pair the coherence time of the
  *worse* of the two memories, ``T_link = min(T_u, T_v)`` (:func:`link_coherence_rounds`, ``rule="worse"``): the
  pair is only as good as its weakest half, and this keeps ``T_link`` equal to a node's own T on homogeneous
  links. If both halves depolarise independently the exact Werner decay rate is the sum of the two rates,
  ``T_link = 1 / (1/T_u + 1/T_v)`` (``rule="sum-of-rates"``), which is between ``min/2`` and ``min``; it is
  offered for users who want that stricter model.
* **Inventory.** CEAS eq. (7): each held pair survives a round with probability ``exp(-lambda dt)``
  (:func:`survival_probability`, ``lambda`` in 1/rounds, ``dt`` in rounds), so
  ``E[M(t+1)] = e^{-lambda} E[M(t)] + r(t) - c(t)`` (:func:`expected_inventory_step`) with ``r`` the pairs
  generated and ``c`` the pairs consumed in round t. The decay applies to the pairs held at the start of the round;
  pairs generated this round are counted in full. Consumption cannot exceed what is available.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from ceas_gym.config import ConfigError, check_choice
from ceas_gym.network.hardware import HardwareProfile, check_round_duration

DEFAULT_ATTENUATION_LENGTH_KM = 22.0
"""1/e attenuation length of telecom fibre (km), 0.2 dB/km rounded (DESIGN.md section 3)."""

MIXED_FIDELITY = 0.25
"""Fidelity of the maximally mixed two-qubit state, the floor every Werner state decays to."""

CoherenceRule = Literal["worse", "sum-of-rates"]


# ------------------------------------------------------------------------------------------------ validation
def _as_float_array(name: str, value: ArrayLike) -> np.ndarray:
    """Convert ``value`` to a float array, raising :class:`ConfigError` if it is not numeric."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a number or an array of numbers, got {value!r}") from None
    if np.isnan(array).any():
        raise ConfigError(f"{name}: NaN is not allowed")
    return array


def _check_array_range(
    name: str,
    array: np.ndarray,
    low: float,
    high: float,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise :class:`ConfigError` naming the first element of ``array`` outside the interval ``low..high``."""
    ok_low = array >= low if low_inclusive else array > low
    ok_high = array <= high if high_inclusive else array < high
    bad = ~(ok_low & ok_high)
    if bad.any():
        index = np.argwhere(bad)[0]
        value = float(array[tuple(index)])
        where = "" if array.ndim == 0 else f"[{', '.join(map(str, index))}]"
        left = ("[" if low_inclusive else "(") + f"{low:g}"
        right = f"{high:g}" + ("]" if high_inclusive else ")")
        raise ConfigError(f"{name}{where} = {value!r} is out of range; allowed: {left}, {right}")


def _result(array: np.ndarray) -> np.ndarray:
    """Return a numpy scalar for 0-d results and the array itself otherwise."""
    return array[()]


# ------------------------------------------------------------------------------------------------ generation
def fibre_attenuation_length_km(loss_db_per_km: float = 0.2) -> float:
    """Return the 1/e attenuation length (km) of fibre with the given loss (dB/km).

    Power falls as ``10^(-loss L / 10) = exp(-L / L_att)``, so ``L_att = 10 / (loss ln 10)``.

    Raises:
        ConfigError: If ``loss_db_per_km`` is not positive and finite.
    """
    name = "fibre_attenuation_length_km.loss_db_per_km"
    array = _as_float_array(name, loss_db_per_km)
    _check_array_range(name, array, 0.0, math.inf, low_inclusive=False, high_inclusive=False)
    return float(10.0 / (float(array) * math.log(10.0)))


def link_success_probability(
    eta: ArrayLike, length_km: ArrayLike, attenuation_length_km: ArrayLike = DEFAULT_ATTENUATION_LENGTH_KM
) -> np.ndarray:
    """Per-attempt Bell-pair generation success probability ``p = eta * exp(-L / L_att)``.

    Args:
        eta: Link efficiency apart from fibre loss (probability), in (0, 1].
        length_km: Fibre length L (km), >= 0 and finite.
        attenuation_length_km: Fibre 1/e attenuation length L_att (km), > 0 (``inf`` for a lossless link).

    Returns:
        Success probability per attempt, in (0, 1] (may underflow to 0 for very long links).

    Raises:
        ConfigError: If an argument is out of range.
    """
    eta_a = _as_float_array("link_success_probability.eta", eta)
    length_a = _as_float_array("link_success_probability.length_km", length_km)
    att_a = _as_float_array("link_success_probability.attenuation_length_km", attenuation_length_km)
    _check_array_range("link_success_probability.eta", eta_a, 0.0, 1.0, low_inclusive=False)
    _check_array_range("link_success_probability.length_km", length_a, 0.0, math.inf, high_inclusive=False)
    _check_array_range("link_success_probability.attenuation_length_km", att_a, 0.0, math.inf, low_inclusive=False)
    return _result(eta_a * np.exp(-length_a / att_a))


def expected_successes(attempts: ArrayLike, p: ArrayLike) -> np.ndarray:
    """Expected number of pairs from ``attempts`` independent attempts of success probability ``p``: ``k p``.

    Args:
        attempts: Attempts per link this round (a count), >= 0.
        p: Per-attempt success probability, in [0, 1].

    Returns:
        Expected successes (pairs per round), float.
    """
    attempts_a = _check_attempts("expected_successes.attempts", attempts)
    p_a = _as_float_array("expected_successes.p", p)
    _check_array_range("expected_successes.p", p_a, 0.0, 1.0)
    return _result(attempts_a * p_a)


def sample_successes(attempts: ArrayLike, p: ArrayLike, rng: np.random.Generator) -> np.ndarray:
    """Sample the number of generated pairs per link: Binomial(attempts, p), independently per entry.

    Args:
        attempts: Attempts per link this round (a count), >= 0.
        p: Per-attempt success probability, in [0, 1].
        rng: The only source of randomness.

    Returns:
        Successes (pairs), int64, broadcast shape of ``attempts`` and ``p``.

    Raises:
        ConfigError: On out-of-range arguments or if ``rng`` is not a ``numpy.random.Generator``.
    """
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"sample_successes.rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    attempts_a = _check_attempts("sample_successes.attempts", attempts)
    p_a = _as_float_array("sample_successes.p", p)
    _check_array_range("sample_successes.p", p_a, 0.0, 1.0)
    return _result(np.asarray(rng.binomial(attempts_a.astype(np.int64), p_a), dtype=np.int64))


def _check_attempts(name: str, attempts: ArrayLike) -> np.ndarray:
    """Validate a count array: finite, non-negative, whole numbers."""
    array = _as_float_array(name, attempts)
    _check_array_range(name, array, 0.0, math.inf, high_inclusive=False)
    fractional = np.atleast_1d(array != np.floor(array))
    if fractional.any():
        value = float(np.atleast_1d(array)[fractional][0])
        raise ConfigError(f"{name} = {value!r}: expected whole numbers of attempts (>= 0)")
    return array


# ------------------------------------------------------------------------------------------------ ageing
def werner_fidelity(fidelity0: ArrayLike, age_rounds: ArrayLike, coherence_rounds: ArrayLike) -> np.ndarray:
    """Fidelity of a stored Werner pair after ``age_rounds``: ``1/4 + (F0 - 1/4) exp(-age / T)``.

    Args:
        fidelity0: Fidelity when fresh, in [0.25, 1].
        age_rounds: Storage time (rounds), >= 0 and finite.
        coherence_rounds: Memory coherence time T (rounds), > 0; ``inf`` for no decay.

    Returns:
        Fidelity, in [0.25, F0].
    """
    f0 = _check_fidelity("werner_fidelity.fidelity0", fidelity0)
    age = _as_float_array("werner_fidelity.age_rounds", age_rounds)
    _check_array_range("werner_fidelity.age_rounds", age, 0.0, math.inf, high_inclusive=False)
    coherence = _check_coherence("werner_fidelity.coherence_rounds", coherence_rounds)
    return _result(MIXED_FIDELITY + (f0 - MIXED_FIDELITY) * np.exp(-age / coherence))


def age_at_fidelity(fidelity0: ArrayLike, floor: ArrayLike, coherence_rounds: ArrayLike) -> np.ndarray:
    """Age (rounds) at which a pair's fidelity falls to ``floor``: ``T ln((F0 - 1/4) / (floor - 1/4))``.

    The inverse of :func:`werner_fidelity` in ``age``. A pair that starts at or below the floor has age 0; one that
    never reaches it (``T = inf``, or ``floor = 1/4`` which is only approached) has age ``inf``.

    Args:
        fidelity0: Fidelity when fresh, in [0.25, 1].
        floor: Fidelity floor, in [0.25, 1].
        coherence_rounds: Memory coherence time T (rounds), > 0; ``inf`` for no decay.

    Returns:
        Age in rounds, in [0, inf].
    """
    f0 = _check_fidelity("age_at_fidelity.fidelity0", fidelity0)
    floor_a = _check_fidelity("age_at_fidelity.floor", floor)
    coherence = _check_coherence("age_at_fidelity.coherence_rounds", coherence_rounds)
    f0, floor_a, coherence = np.broadcast_arrays(f0, floor_a, coherence)
    above = f0 > floor_a
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log((f0 - MIXED_FIDELITY) / (floor_a - MIXED_FIDELITY))
        age = np.where(above, coherence * log_ratio, 0.0)
    # Reaching exactly 1/4, or any floor with an ideal memory, takes forever (avoids inf * 0 and 0 * inf).
    age = np.where(above & ((floor_a == MIXED_FIDELITY) | np.isinf(coherence)), np.inf, age)
    return _result(np.asarray(age, dtype=np.float64))


def _check_fidelity(name: str, value: ArrayLike) -> np.ndarray:
    array = _as_float_array(name, value)
    _check_array_range(name, array, MIXED_FIDELITY, 1.0)
    return array


def _check_coherence(name: str, value: ArrayLike) -> np.ndarray:
    array = _as_float_array(name, value)
    _check_array_range(name, array, 0.0, math.inf, low_inclusive=False)
    return array


def link_coherence_rounds(
    profile_u: HardwareProfile | Sequence[HardwareProfile],
    profile_v: HardwareProfile | Sequence[HardwareProfile],
    round_duration_s: float,
    rule: CoherenceRule = "worse",
) -> np.ndarray:
    """Coherence time (rounds) of pairs stored across the two end memories of links.

    Args:
        profile_u: Hardware of the first end node, one profile or one per link.
        profile_v: Hardware of the second end node, one profile or one per link.
        round_duration_s: Duration of one round (seconds), > 0 and finite.
        rule: ``"worse"`` (default): ``min(T_u, T_v)``, the worse memory sets the pair's decay.
            ``"sum-of-rates"``: ``1 / (1/T_u + 1/T_v)``, both halves depolarise independently.

    Returns:
        Link coherence time T (rounds), scalar or ``(num_links,)``.
    """
    check_round_duration(round_duration_s, "link_coherence_rounds.round_duration_s")
    check_choice("link_coherence_rounds.rule", rule, ("worse", "sum-of-rates"))
    t_u = _coherence_seconds("link_coherence_rounds.profile_u", profile_u) / round_duration_s
    t_v = _coherence_seconds("link_coherence_rounds.profile_v", profile_v) / round_duration_s
    if rule == "worse":
        return _result(np.minimum(t_u, t_v))
    return _result(1.0 / (1.0 / t_u + 1.0 / t_v))


def node_coherence_rounds(profiles: Sequence[HardwareProfile], round_duration_s: float) -> np.ndarray:
    """Memory coherence time (rounds) of each node. ``(num_nodes,)`` float."""
    check_round_duration(round_duration_s, "node_coherence_rounds.round_duration_s")
    return np.atleast_1d(_coherence_seconds("node_coherence_rounds.profiles", profiles)) / round_duration_s


def _coherence_seconds(name: str, profiles: HardwareProfile | Sequence[HardwareProfile]) -> np.ndarray:
    """Coherence times (seconds) of one profile or a sequence of profiles (built once per instance)."""
    if isinstance(profiles, HardwareProfile):
        return np.asarray(profiles.coherence_time_s, dtype=np.float64)
    items = list(profiles)
    for index, item in enumerate(items):
        if not isinstance(item, HardwareProfile):
            raise ConfigError(f"{name}[{index}]: expected a HardwareProfile, got {type(item).__name__}")
    return np.fromiter((item.coherence_time_s for item in items), dtype=np.float64, count=len(items))


# ------------------------------------------------------------------------------------------------ inventory
def survival_probability(decay_rate: ArrayLike, dt: ArrayLike = 1.0) -> np.ndarray:
    """Probability that a stored pair is still usable after ``dt`` rounds: ``exp(-lambda dt)`` (CEAS Sec. III-C).

    Args:
        decay_rate: Loss rate lambda of stored pairs (1/rounds), >= 0 and finite.
        dt: Elapsed time (rounds), >= 0 and finite.

    Returns:
        Survival probability, in (0, 1].
    """
    rate = _check_rate("survival_probability.decay_rate", decay_rate)
    dt_a = _as_float_array("survival_probability.dt", dt)
    _check_array_range("survival_probability.dt", dt_a, 0.0, math.inf, high_inclusive=False)
    return _result(np.exp(-rate * dt_a))


def expected_inventory_step(
    mean_inventory: ArrayLike, decay_rate: ArrayLike, generated: ArrayLike, consumed: ArrayLike
) -> np.ndarray:
    """One step of CEAS eq. (7): ``E[M(t+1)] = e^{-lambda} E[M(t)] + r(t) - c(t)``.

    Args:
        mean_inventory: Expected pairs held per link at round t, E[M(t)] (pairs), >= 0.
        decay_rate: Per-round loss rate lambda of held pairs (1/rounds), >= 0 and finite.
        generated: Pairs generated per link in round t, r(t) (pairs), >= 0.
        consumed: Pairs consumed per link in round t, c(t) (pairs), >= 0 and at most
            ``e^{-lambda} E[M(t)] + r(t)``.

    Returns:
        Expected pairs held per link at round t + 1 (pairs), >= 0.

    Raises:
        ConfigError: On negative arguments or consumption beyond the pairs available.
    """
    mean = _check_nonnegative("expected_inventory_step.mean_inventory", mean_inventory)
    rate = _check_rate("expected_inventory_step.decay_rate", decay_rate)
    generated_a = _check_nonnegative("expected_inventory_step.generated", generated)
    consumed_a = _check_nonnegative("expected_inventory_step.consumed", consumed)
    available = np.exp(-rate) * mean + generated_a
    next_mean = available - consumed_a
    tolerance = 1e-9 * np.maximum(1.0, available)
    short = next_mean < -tolerance
    if np.any(short):
        index = np.argwhere(short)[0]
        where = "" if short.ndim == 0 else f"[{', '.join(map(str, index))}]"
        c = float(np.broadcast_to(consumed_a, short.shape)[tuple(index)])
        a = float(np.broadcast_to(available, short.shape)[tuple(index)])
        raise ConfigError(
            f"expected_inventory_step.consumed{where} = {c!r} exceeds the pairs available "
            f"e^(-lambda) M + r = {a!r}; allowed: [0, {a:g}]"
        )
    return _result(np.maximum(next_mean, 0.0))


def _check_rate(name: str, value: ArrayLike) -> np.ndarray:
    array = _as_float_array(name, value)
    _check_array_range(name, array, 0.0, math.inf, high_inclusive=False)
    return array


def _check_nonnegative(name: str, value: ArrayLike) -> np.ndarray:
    array = _as_float_array(name, value)
    _check_array_range(name, array, 0.0, math.inf, high_inclusive=False)
    return array
