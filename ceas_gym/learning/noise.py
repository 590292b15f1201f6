"""Per-node gate and readout noise in the global-depolarising (white-noise) approximation.

Model. Every single-qubit gate is followed by a depolarising channel ``rho -> (1 - p1) rho + p1 I/2`` on its
qubit, every two-qubit gate by ``rho -> (1 - p2) rho + p2 I/4`` on its pair, and the measured bit is flipped with
probability ``e_r`` (readout error). ``p1``, ``p2`` are the depolarising probabilities (the weight of the white
noise), given per node. In the global-depolarising approximation the whole noisy circuit acts as

    rho_out -> f rho_out + (1 - f) I / 2^n,   f = (1 - p1)^{n1} (1 - p2)^{n2},

so the expectation of any traceless observable (here Pauli Z) shrinks by ``f``, and the symmetric readout flip
multiplies it by a further ``(1 - 2 e_r)``:

    <Z>_noisy = (1 - p1)^{n1} (1 - p2)^{n2} (1 - 2 e_r) <Z>_ideal.

``n1``, ``n2`` are the single- and two-qubit gate counts of one execution (:func:`circuit.gate_counts`).
Sources: Urbanek et al., "Mitigating depolarizing noise on quantum computers with noise-estimation circuits",
PRL 127, 270502 (2021); Vovrosh et al., "Simple mitigation of global depolarizing errors in quantum simulations",
PRE 104, 035309 (2021). The form is exact for one qubit (local depolarising = global depolarising) and an
approximation for local noise on several qubits, accurate for scrambling circuits (Urbanek et al.).

Channel infidelity (used by the fidelity stamp). The process (entanglement) fidelity of the white-noise channel
``rho -> g rho + (1 - g) I / D`` to the identity on dimension ``D = 2^n`` is ``g + (1 - g) / D^2``, so its process
infidelity is ``(1 - g)(1 - 1/D^2)``. The stamp uses ``g = f (1 - 2 e_r)``, the effective shrink factor that the
readout sees, so readout error also lowers the stamp.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from ceas_gym.config import ConfigError
from ceas_gym.learning.circuit import CircuitConfig, gate_counts


def _as_vector(name: str, values: torch.Tensor | Sequence[float], low: float, high: float) -> torch.Tensor:
    vector = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if not bool(torch.all(torch.isfinite(vector))) or bool(torch.any(vector < low)) or bool(torch.any(vector > high)):
        raise ConfigError(f"NodeNoise.{name} must lie in [{low:g}, {high:g}] for every node, got {vector.tolist()}")
    return vector


@dataclasses.dataclass(frozen=True, eq=False)  # holds tensors/arrays: compare fields explicitly
class NodeNoise:
    """Error rates of every node (vectors of length num_nodes, probabilities), stored as float64 tensors.

    Pass Python lists or float64 tensors to keep full precision (float32 inputs keep their rounding).

    Attributes:
        single_qubit_error: Depolarising probability p1 after each single-qubit gate, in [0, 1].
        two_qubit_error: Depolarising probability p2 after each two-qubit gate, in [0, 1].
        readout_error: Bit-flip probability e_r of the measurement, in [0, 0.5].
    """

    single_qubit_error: torch.Tensor
    two_qubit_error: torch.Tensor
    readout_error: torch.Tensor

    def __post_init__(self) -> None:
        p1 = _as_vector("single_qubit_error", self.single_qubit_error, 0.0, 1.0)
        p2 = _as_vector("two_qubit_error", self.two_qubit_error, 0.0, 1.0)
        readout = _as_vector("readout_error", self.readout_error, 0.0, 0.5)
        if not p1.shape == p2.shape == readout.shape:
            raise ConfigError(
                "NodeNoise vectors must have one entry per node; got lengths "
                f"{p1.numel()}, {p2.numel()}, {readout.numel()}"
            )
        object.__setattr__(self, "single_qubit_error", p1)
        object.__setattr__(self, "two_qubit_error", p2)
        object.__setattr__(self, "readout_error", readout)

    @classmethod
    def noiseless(cls, num_nodes: int) -> NodeNoise:
        """Return zero error rates for ``num_nodes`` nodes."""
        zeros = torch.zeros(num_nodes, dtype=torch.float64)
        return cls(zeros, zeros, zeros)

    @property
    def num_nodes(self) -> int:
        """Number of nodes."""
        return int(self.single_qubit_error.numel())


def gate_survival(noise: NodeNoise, config: CircuitConfig) -> torch.Tensor:
    """Return ``f = (1 - p1)^{n1} (1 - p2)^{n2}`` per node, shape ``(num_nodes,)`` float64."""
    single, two = gate_counts(config)
    return (1 - noise.single_qubit_error) ** single * (1 - noise.two_qubit_error) ** two


def expectation_shrink(noise: NodeNoise, config: CircuitConfig) -> torch.Tensor:
    """Return ``g = f (1 - 2 e_r)``, the factor multiplying every ideal Pauli-Z expectation, per node (float64)."""
    return gate_survival(noise, config) * (1 - 2 * noise.readout_error)


def apply_white_noise(expectations: torch.Tensor, shrink: torch.Tensor) -> torch.Tensor:
    """Return noisy expectations ``shrink[b] * expectations[b, ...]`` for a ``(B, ...)`` batch."""
    factor = shrink.to(expectations.device, expectations.dtype)
    return expectations * factor.reshape(-1, *([1] * (expectations.dim() - 1)))


def process_infidelity(shrink: torch.Tensor, num_qubits: int) -> torch.Tensor:
    """Return ``(1 - g)(1 - 1/D^2)``, the process infidelity of the white-noise channel with shrink ``g``, D = 2^n."""
    dimension_squared = 4.0**num_qubits
    return (1 - shrink) * (1 - 1 / dimension_squared)
