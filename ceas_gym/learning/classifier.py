"""The variational quantum classifier: flat parameter layout, prediction map and binary cross-entropy.

Prediction map. With ``z`` the noisy Pauli-Z readout vector of a sample (``R = 1`` entry, ``<Z_0>``, for
``readout="first"``; ``R = n`` entries for ``readout="all"``), each node has a trainable classical head
``a in R^R``, ``b in R`` and predicts

    p(y = 1 | x) = sigmoid(a . z + b),   z = g_k <Z>_ideal(x; theta_k),

where ``g_k`` is the node's white-noise shrink factor (:mod:`ceas_gym.learning.noise`). Noise therefore pulls
predictions towards ``sigmoid(b)``. The loss is the mean binary cross-entropy (nats) over a node's samples.

Flat layout. Gossip and aggregation mix flat vectors, so a node's parameters are one row of a
``(num_nodes, P)`` tensor, ``P = 2 n L + R + 1``: first the circuit angles ``theta`` (radians) in the row-major
order of shape ``(L, n, 2)`` (``[..., 0]`` = RY, ``[..., 1]`` = RZ angle), then the head weights ``a`` (``R``),
then the bias ``b``. :meth:`QuantumClassifier.split` and :meth:`QuantumClassifier.join` convert.

Initialisation. All nodes start from one shared vector: angles ``theta ~ N(0, angle_std^2)`` (radians) with a
seeded ``torch.Generator``, head weights ``a = head_weight`` and ``b = 0``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch.nn import functional

from ceas_gym.config import check_range
from ceas_gym.learning.circuit import BatchedCircuit, CircuitConfig
from ceas_gym.learning.noise import apply_white_noise


@dataclasses.dataclass(frozen=True)
class InitConfig:
    """Initial parameters.

    Attributes:
        angle_std: Standard deviation of the initial circuit angles (radians).
        head_weight: Initial head weight ``a`` for every readout (dimensionless).
    """

    angle_std: float = 0.1
    head_weight: float = 2.0

    def __post_init__(self) -> None:
        check_range("InitConfig.angle_std", self.angle_std, 0.0, 10.0)
        check_range("InitConfig.head_weight", self.head_weight, -100.0, 100.0)


class QuantumClassifier:
    """Batched noisy variational classifier over flat parameter rows.

    Args:
        config: Circuit configuration (qubits, layers, readout, dtype).
        device: Torch device (CPU default).
    """

    def __init__(self, config: CircuitConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.circuit = BatchedCircuit(config, device)
        self.config = self.circuit.config
        self.device = self.circuit.device
        self.dtype = self.circuit.real_dtype

    @property
    def num_angles(self) -> int:
        """Number of circuit angles ``2 n L``."""
        return self.config.num_circuit_parameters

    @property
    def num_parameters(self) -> int:
        """Length P of a flat parameter row: ``2 n L + R + 1``."""
        return self.num_angles + self.config.num_readouts + 1

    def split(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split ``(B, P)`` rows into angles ``(B, L, n, 2)``, head weights ``(B, R)`` and bias ``(B,)``."""
        if flat.dim() != 2 or flat.shape[1] != self.num_parameters:
            raise ValueError(
                f"flat parameters must have shape (num_nodes, {self.num_parameters}), got {tuple(flat.shape)}"
            )
        angles = flat[:, : self.num_angles].reshape(-1, *self.circuit.parameter_shape)
        weights = flat[:, self.num_angles : self.num_angles + self.config.num_readouts]
        return angles, weights, flat[:, -1]

    def join(self, angles: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`split`: return ``(B, P)`` rows."""
        return torch.cat([angles.reshape(angles.shape[0], -1), weights, bias.reshape(-1, 1)], dim=1)

    def init_parameters(
        self, num_nodes: int, generator: torch.Generator, config: InitConfig | None = None
    ) -> torch.Tensor:
        """Return ``(num_nodes, P)`` identical initial rows (see module docstring)."""
        config = config or InitConfig()
        angles = torch.randn(self.num_angles, generator=generator, dtype=torch.float64) * config.angle_std
        weights = torch.full((self.config.num_readouts,), config.head_weight, dtype=torch.float64)
        row = torch.cat([angles, weights, torch.zeros(1, dtype=torch.float64)]).to(self.device, self.dtype)
        return row.expand(num_nodes, -1).clone()

    def logits(
        self,
        flat: torch.Tensor,
        features: torch.Tensor,
        shrink: torch.Tensor | None = None,
        stacked_unitary: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return logits ``a . z + b`` of shape ``(B, S)``.

        Args:
            flat: ``(B, P)`` parameter rows.
            features: ``(B, S, n)`` features (radians).
            shrink: ``(B,)`` white-noise factors ``g`` per row, or None for the noise-free circuit.
            stacked_unitary: ``(B, 2D, D)`` :meth:`BatchedCircuit.stacked_unitary` of the rows' angles when the
                caller already has it (it is then not rebuilt; it must belong to ``flat``).
        """
        angles, weights, bias = self.split(flat)
        if stacked_unitary is None:
            stacked_unitary = self.circuit.stacked_unitary(angles)
        readout = self.circuit.expectations_from_unitary(stacked_unitary, features)  # (B, S, R)
        if shrink is not None:
            readout = apply_white_noise(readout, shrink)
        return (readout * weights[:, None, :]).sum(-1) + bias[:, None]

    def probabilities(
        self, flat: torch.Tensor, features: torch.Tensor, shrink: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return ``p(y = 1 | x)`` of shape ``(B, S)``."""
        return torch.sigmoid(self.logits(flat, features, shrink))

    def loss(
        self,
        flat: torch.Tensor,
        features: torch.Tensor,
        labels: torch.Tensor,
        shrink: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return the mean binary cross-entropy (nats) per row, shape ``(B,)``; labels ``(B, S)`` in {0, 1}."""
        logits = self.logits(flat, features, shrink)
        targets = labels.to(logits.device, logits.dtype)
        return functional.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(-1)
