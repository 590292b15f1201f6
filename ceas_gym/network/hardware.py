"""Hardware profiles: the capability descriptor of a network node (CEAS Sec. II-E).

A :class:`HardwareProfile` is a coarse summary of one quantum processor, enough for scheduling and for the
learning layer's noise model:

* ``coherence_time_s``: memory coherence time T of a stored qubit (seconds). It sets how fast a stored Bell pair
  depolarises (see :mod:`ceas_gym.network.physics`). Where a source quotes T1 and T2 we use the smaller one that
  limits storage (usually T2); ``inf`` means an ideal memory.
* ``single_qubit_error`` / ``two_qubit_error``: average gate error probabilities (1 - average gate fidelity, as
  quoted by randomised benchmarking), used as depolarising strengths by the learning layer.
* ``readout_error``: average state-preparation-and-measurement error probability.
* ``memory_qubits``: qubits the node can devote to storing Bell pairs (an integer >= 1).
* ``gate_time_s``: duration of a two-qubit gate (seconds), the slowest common operation.

Conversion to rounds: ``coherence_rounds(round_duration_s) = coherence_time_s / round_duration_s``. The simulator
counts time in consensus rounds; the profiles are physical, so the round duration is the bridge.
:data:`REFERENCE_ROUND_DURATION_S` (1 ms) is the round duration the two CEAS profiles are tuned for: at 1 ms per
round they give T = 5 rounds, the middle of the CEAS coherence budget tau_c in [3, 6] rounds.

The literature profiles below use published figures, rounded, each cited next to its value. They are
representative, not a specific device calibration: mix-and-match where a single device does not report every
field (documented per field). Register your own with ``HARDWARE_PROFILES.add(name, HardwareProfile(...))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ceas_gym.config import ConfigError, check_int, check_range
from ceas_gym.registry import Registry, UnknownNameError

REFERENCE_ROUND_DURATION_S = 1e-3
"""Round duration (seconds) for which the CEAS profiles give a coherence of 5 rounds."""

MAX_ERROR_PROBABILITY = 0.5
"""Largest gate or readout error probability a profile may declare (a device worse than a coin is not a device)."""


@dataclass(frozen=True)
class HardwareProfile:
    """Capability descriptor of one node's quantum hardware.

    Attributes:
        platform: Human-readable platform name, e.g. ``"superconducting"``. Non-empty.
        coherence_time_s: Memory coherence time T (seconds), > 0; ``inf`` for an ideal memory.
        single_qubit_error: Average single-qubit gate error probability, in [0, 0.5].
        two_qubit_error: Average two-qubit gate error probability, in [0, 0.5].
        readout_error: Average state-preparation-and-measurement error probability, in [0, 0.5].
        memory_qubits: Qubits available to store Bell pairs, >= 1.
        gate_time_s: Two-qubit gate duration (seconds), > 0 and finite.
        source: Where the figures come from (free text for documentation).
    """

    platform: str
    coherence_time_s: float
    single_qubit_error: float
    two_qubit_error: float
    readout_error: float
    memory_qubits: int
    gate_time_s: float
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.platform, str) or not self.platform:
            raise ConfigError(f"HardwareProfile.platform = {self.platform!r}: expected a non-empty string")
        check_range("HardwareProfile.coherence_time_s", self.coherence_time_s, 0.0, math.inf, low_inclusive=False)
        for name in ("single_qubit_error", "two_qubit_error", "readout_error"):
            check_range(f"HardwareProfile.{name}", getattr(self, name), 0.0, MAX_ERROR_PROBABILITY)
        check_int("HardwareProfile.memory_qubits", self.memory_qubits, 1)
        check_range("HardwareProfile.gate_time_s", self.gate_time_s, 0.0, math.inf, low_inclusive=False)
        if math.isinf(self.gate_time_s):
            raise ConfigError("HardwareProfile.gate_time_s = inf is out of range; allowed: (0, inf)")
        if not isinstance(self.source, str):
            raise ConfigError(f"HardwareProfile.source: expected a string, got {self.source!r}")

    def coherence_rounds(self, round_duration_s: float) -> float:
        """Return the memory coherence time in rounds.

        Args:
            round_duration_s: Wall-clock duration of one consensus round (seconds), > 0 and finite.

        Returns:
            ``coherence_time_s / round_duration_s`` (rounds); ``inf`` for an ideal memory.

        Raises:
            ConfigError: If ``round_duration_s`` is not a positive finite number.
        """
        check_round_duration(round_duration_s)
        return self.coherence_time_s / round_duration_s


def check_round_duration(round_duration_s: float, name: str = "round_duration_s") -> None:
    """Raise :class:`ConfigError` unless the round duration (seconds) is positive and finite."""
    check_range(name, round_duration_s, 0.0, math.inf, low_inclusive=False, high_inclusive=False)


HARDWARE_PROFILES: Registry[HardwareProfile] = Registry("hardware profile")
"""Named hardware profiles. Nodes of a topology name one in their ``hardware`` attribute."""


def get_hardware_profile(name: str) -> HardwareProfile:
    """Return the registered profile ``name``.

    Raises:
        ConfigError: If no profile has that name; the message lists the known names and the closest one.
    """
    try:
        return HARDWARE_PROFILES.get(name)
    except UnknownNameError as error:
        raise ConfigError(str(error)) from None


# ---------------------------------------------------------------------------------------------------- literature
HARDWARE_PROFILES.add(
    "superconducting",
    HardwareProfile(
        platform="superconducting",
        # Transmon T1 ~ 16 us (Sycamore median; Arute et al., Nature 574, 505 (2019), Fig. 2 and SI). Used as the
        # storage limit: transmons are the short-lived, fast extreme of CEAS Sec. II-E.
        coherence_time_s=16e-6,
        # Simultaneous-operation Pauli errors: single-qubit 0.16 %, two-qubit 0.62 %, readout 3.8 %
        # (Arute et al. 2019, Fig. 2).
        single_qubit_error=1.6e-3,
        two_qubit_error=6.2e-3,
        readout_error=3.8e-2,
        # 53 working qubits on Sycamore (Arute et al. 2019).
        memory_qubits=53,
        # Two-qubit (iSWAP-like) gate time 12 ns (Arute et al. 2019).
        gate_time_s=12e-9,
        source="Arute et al., Nature 574, 505 (2019) (Google Sycamore)",
    ),
)

HARDWARE_PROFILES.add(
    "trapped-ion",
    HardwareProfile(
        platform="trapped-ion",
        # Hyperfine memory qubit: 43Ca+ T2* ~ 50 s (Harty et al., PRL 113, 220501 (2014), Oxford).
        coherence_time_s=50.0,
        # Quantinuum H2: single-qubit infidelity ~3e-5, two-qubit ~2e-3, SPAM ~1.6e-3
        # (Moses et al., PRX 13, 041052 (2023)).
        single_qubit_error=3e-5,
        two_qubit_error=2e-3,
        readout_error=1.6e-3,
        # H2 operated with 32 qubits (Moses et al. 2023).
        memory_qubits=32,
        # Molmer-Sorensen / light-shift gates of ~100 us at 99.9 % fidelity (Ballance et al., PRL 117, 060504
        # (2016), Oxford).
        gate_time_s=100e-6,
        source="Moses et al., PRX 13, 041052 (2023); Harty et al., PRL 113, 220501 (2014); "
        "Ballance et al., PRL 117, 060504 (2016)",
    ),
)

HARDWARE_PROFILES.add(
    "nv-centre",
    HardwareProfile(
        platform="nv-centre",
        # 13C nuclear-spin memory during network operation: order 10 ms (Pompili et al., Science 372, 259 (2021);
        # Hermans et al., Nature 605, 663 (2022)); isotopically engineered samples reach longer
        # (Bradley et al., npj Quantum Inf. 8, 122 (2022)). "Millisecond coherence" per CEAS Sec. II-E.
        coherence_time_s=10e-3,
        # Electron-spin gates ~1e-3; electron-nuclear two-qubit gates ~2 % error; single-shot electron readout
        # error of a few percent (Pompili et al. 2021 SM; Hermans et al. 2022 SM). Rounded representative values.
        single_qubit_error=1e-3,
        two_qubit_error=2e-2,
        readout_error=5e-2,
        # One communication qubit plus one memory qubit per node, as in the Delft three-node network
        # (Pompili et al. 2021).
        memory_qubits=2,
        # Electron-nuclear gates take hundreds of microseconds ("slow gates", CEAS Sec. II-E); order 0.5 ms.
        gate_time_s=0.5e-3,
        source="Pompili et al., Science 372, 259 (2021); Hermans et al., Nature 605, 663 (2022); "
        "Bradley et al., npj Quantum Inf. 8, 122 (2022)",
    ),
)

HARDWARE_PROFILES.add(
    "photonic",
    HardwareProfile(
        platform="photonic",
        # Photonic qubits are stored in a fibre delay line; storage is loss-limited. The 1/e loss length of
        # 0.2 dB/km fibre is 21.7 km, travelled in 21.7 km / (2.04e5 km/s) ~ 106 us (group index 1.47).
        coherence_time_s=106e-6,
        # PsiQuantum platform: SPAM fidelity 99.98 %, two-qubit fusion fidelity 99.22 %
        # (Alexander et al., Nature 641, 876 (2025)); single-qubit on-chip rotations taken as ~1e-3 (rounded).
        single_qubit_error=1e-3,
        two_qubit_error=7.8e-3,
        readout_error=2e-4,
        # Delay-line slots per node: a modelling choice (no single literature value).
        memory_qubits=8,
        # Linear-optical operations act in ~ns (detector-limited); order 1 ns.
        gate_time_s=1e-9,
        source="Alexander et al., Nature 641, 876 (2025) (PsiQuantum); fibre loss 0.2 dB/km",
    ),
)

# ---------------------------------------------------------------------------------------------------- CEAS
HARDWARE_PROFILES.add(
    "ceas-honest",
    HardwareProfile(
        platform="ceas-honest",
        # CEAS Sec. IV: honest nodes at ~1 % gate error. T = 5 rounds at REFERENCE_ROUND_DURATION_S, the middle
        # of the CEAS coherence budget tau_c in [3, 6] rounds.
        coherence_time_s=5 * REFERENCE_ROUND_DURATION_S,
        single_qubit_error=1e-2,
        two_qubit_error=1e-2,
        readout_error=1e-2,
        memory_qubits=10,
        gate_time_s=1e-6,
        source="CEAS Sec. IV (honest nodes, ~1 % gate error)",
    ),
)

HARDWARE_PROFILES.add(
    "ceas-byzantine",
    HardwareProfile(
        platform="ceas-byzantine",
        # CEAS Sec. IV: Byzantine nodes at ~20 % gate error; same memory as the honest nodes so that only their
        # noise (and behaviour) differs.
        coherence_time_s=5 * REFERENCE_ROUND_DURATION_S,
        single_qubit_error=0.2,
        two_qubit_error=0.2,
        readout_error=0.2,
        memory_qubits=10,
        gate_time_s=1e-6,
        source="CEAS Sec. IV (Byzantine nodes, ~20 % gate error)",
    ),
)
