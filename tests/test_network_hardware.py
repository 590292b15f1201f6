import math
from pathlib import Path

import pytest

from ceas_gym.config import ConfigError, from_dict, replace, to_dict
from ceas_gym.network.hardware import (
    HARDWARE_PROFILES,
    REFERENCE_ROUND_DURATION_S,
    HardwareProfile,
    get_hardware_profile,
)

LITERATURE = ("superconducting", "trapped-ion", "nv-centre", "photonic")


def _valid(**changes) -> dict:
    values = {
        "platform": "test",
        "coherence_time_s": 1e-3,
        "single_qubit_error": 1e-3,
        "two_qubit_error": 1e-2,
        "readout_error": 1e-2,
        "memory_qubits": 4,
        "gate_time_s": 1e-6,
    }
    values.update(changes)
    return values


def test_registry_holds_the_shipped_profiles():
    assert set(HARDWARE_PROFILES.names()) == {*LITERATURE, "ceas-honest", "ceas-byzantine"}
    for name in HARDWARE_PROFILES.names():
        profile = get_hardware_profile(name)
        assert isinstance(profile, HardwareProfile)
        assert profile.platform == name
        assert profile.source  # every shipped profile names where its figures come from


def test_literature_profiles_respect_platform_ordering():
    # CEAS Sec. II-E: superconducting qubits are fast and short-lived, NV centres slow with ms coherence,
    # trapped ions have the longest-lived memories.
    sc, ion, nv, ph = (get_hardware_profile(name) for name in LITERATURE)
    assert sc.coherence_time_s < nv.coherence_time_s < ion.coherence_time_s
    assert sc.gate_time_s < nv.gate_time_s
    assert 1e-3 <= nv.coherence_time_s <= 1.0
    assert sc.coherence_time_s < 1e-3
    assert ion.two_qubit_error < sc.two_qubit_error < nv.two_qubit_error
    # Photonic storage is loss-limited: 1/e loss length (21.7 km) over the speed of light in fibre.
    assert ph.coherence_time_s == pytest.approx(21.7 / 2.04e5, rel=0.02)


def test_ceas_profiles_match_the_experiment():
    honest, byzantine = get_hardware_profile("ceas-honest"), get_hardware_profile("ceas-byzantine")
    assert honest.single_qubit_error == pytest.approx(0.01) and honest.two_qubit_error == pytest.approx(0.01)
    assert byzantine.single_qubit_error == pytest.approx(0.2) and byzantine.two_qubit_error == pytest.approx(0.2)
    # At the reference round duration both give T = 5 rounds, inside the CEAS budget tau_c in [3, 6].
    for profile in (honest, byzantine):
        assert 3.0 <= profile.coherence_rounds(REFERENCE_ROUND_DURATION_S) <= 6.0


def test_coherence_rounds_closed_form():
    profile = HardwareProfile(**_valid(coherence_time_s=0.02))
    assert profile.coherence_rounds(0.004) == pytest.approx(5.0)
    assert profile.coherence_rounds(0.02) == pytest.approx(1.0)
    assert HardwareProfile(**_valid(coherence_time_s=math.inf)).coherence_rounds(1.0) == math.inf
    assert get_hardware_profile("nv-centre").coherence_rounds(1e-3) == pytest.approx(10.0)


@pytest.mark.parametrize("duration", [0.0, -1.0, math.inf, math.nan])
def test_coherence_rounds_rejects_bad_round_duration(duration):
    with pytest.raises(ConfigError, match=r"round_duration_s"):
        HardwareProfile(**_valid()).coherence_rounds(duration)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("readout_error", 1.5, r"HardwareProfile.readout_error = 1.5 is out of range; allowed: \[0, 0.5\]"),
        ("single_qubit_error", -0.1, r"single_qubit_error = -0.1 is out of range"),
        ("two_qubit_error", 0.51, r"two_qubit_error = 0.51 is out of range"),
        ("coherence_time_s", 0.0, r"coherence_time_s = 0.0 is out of range; allowed: \(0, inf\]"),
        ("gate_time_s", math.inf, r"gate_time_s = inf is out of range"),
        ("gate_time_s", -1e-9, r"gate_time_s"),
        ("memory_qubits", 0, r"memory_qubits = 0 is out of range"),
        ("memory_qubits", 2.5, r"memory_qubits: expected an integer"),
        ("platform", "", r"platform"),
    ],
)
def test_profile_validation_names_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message):
        HardwareProfile(**_valid(**{field: value}))


def test_unknown_profile_suggests_closest():
    with pytest.raises(ConfigError, match=r"unknown hardware profile 'nv-center'.*Did you mean 'nv-centre'"):
        get_hardware_profile("nv-center")


def test_profile_round_trips_through_config_helpers():
    profile = get_hardware_profile("trapped-ion")
    assert from_dict(HardwareProfile, to_dict(profile)) == profile
    faster = replace(profile, gate_time_s=1e-5)
    assert faster.gate_time_s == 1e-5 and faster.platform == "trapped-ion"
    with pytest.raises(ConfigError, match=r"unknown key 'coherence_time'.*Did you mean 'coherence_time_s'"):
        from_dict(HardwareProfile, {**to_dict(profile), "coherence_time": 1.0})


def test_documented_profile_table_matches_the_registry():
    # docs/network.md carries a table of the shipped profiles; it must not drift from the code.
    docs = Path(__file__).resolve().parents[1] / "docs" / "network.md"
    rows = [line for line in docs.read_text().splitlines() if line.startswith("| `") and line.count("|") == 10]
    documented = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        documented[cells[0].strip("`")] = cells
    assert set(documented) == set(HARDWARE_PROFILES.names())
    for name, cells in documented.items():
        profile = get_hardware_profile(name)
        expected = [
            profile.coherence_time_s,
            profile.coherence_rounds(REFERENCE_ROUND_DURATION_S),
            profile.single_qubit_error,
            profile.two_qubit_error,
            profile.readout_error,
            profile.memory_qubits,
            profile.gate_time_s,
        ]
        assert [float(cell) for cell in cells[1:8]] == pytest.approx(expected, rel=1e-3), name
        assert cells[8] == profile.source
