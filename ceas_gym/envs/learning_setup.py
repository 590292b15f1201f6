"""The learning setup of a CEAS network: the classifier, every node's hardware noise and the Byzantine attack.

:class:`LearningSetup` builds the parts of the distributed quantum neural network that do not change during an
episode: the variational classifier (:class:`~ceas_gym.learning.classifier.QuantumClassifier`), the
global-depolarising shrink of each node's circuit and its channel infidelity (from its hardware profile,
:mod:`ceas_gym.learning.noise`), and the attack Byzantine nodes apply. It checks that the batched circuits fit in
memory. The round (:mod:`ceas_gym.envs.ceas_round`) holds the per-episode state (parameters, data) and runs the
learning half of a round with these parts for every node of every copy at once:

1. **Local training**: K local steps on each node's own data, through its own noisy circuit.
2. **Attack**: Byzantine nodes replace their submission by the attack of this round applied to their weights W
   (``attack_target="weights"``, CEAS Sec. IV) or to their update ``W - W_start`` (``"update"``). They keep
   their own clean model for the next round (an attacker sends poison, it does not adopt it), so attacks do not
   compound over rounds.
3. **Stamps**: fidelity stamps phi_k (CEAS Def. 1, :mod:`ceas_gym.learning.stamps`) from the QFI of the submitted
   circuit (refreshed every ``qfi_every`` rounds), the node's channel infidelity and the mean fidelity of the Bell
   pairs its last received messages used (1 before any message arrived; the previous value is kept for a node
   that received nothing).
4. After consensus the round scores each copy's consensus model on the test set with the ideal circuit ("global
   test accuracy", CEAS Fig. 4).
"""

from __future__ import annotations

import numpy as np
import torch

from ceas_gym.config import ConfigError
from ceas_gym.envs.ceas_config import LearningConfig
from ceas_gym.learning import omniscient_attacks, phased_attack  # noqa: F401  (register alie, ipm, none, phased)
from ceas_gym.learning.attacks import make_attack
from ceas_gym.learning.classifier import QuantumClassifier
from ceas_gym.learning.noise import NodeNoise, expectation_shrink, process_infidelity
from ceas_gym.memory import check_fits
from ceas_gym.network.hardware import HARDWARE_PROFILES

BYTES_PER_AMPLITUDE = 16 * 2
"""Peak bytes per state amplitude of a batched forward and backward pass (complex64 states, real and imaginary
views, per layer: the closed-form gradient keeps one prefix state per layer)."""


def check_learning_fits(config: LearningConfig, num_nodes: int) -> None:
    """Refuse a learning layer whose batched states (nodes x samples x 2^qubits, per layer) cannot fit in memory.

    Raises:
        ConfigError: Naming ``LearningConfig.data.samples_per_node`` and the sizes that multiply into the need.
    """
    data, circuit = config.data, config.circuit
    rows = num_nodes * data.samples_per_node + data.test_samples
    amplitudes = rows * circuit.dimension * (circuit.num_layers + 2)
    features = rows * data.num_features * 8
    check_fits(
        "LearningConfig.data.samples_per_node",
        amplitudes * BYTES_PER_AMPLITUDE + features,
        f"the batched circuits of {num_nodes} nodes x {data.samples_per_node} samples (+ {data.test_samples} test "
        f"samples) x 2^{circuit.num_qubits} amplitudes x {circuit.num_layers} layers",
        "lower samples_per_node, test_samples, topology.num_nodes or circuit.num_qubits",
    )


class LearningSetup:
    """The classifier, node noise and attack of a network (see the module docstring).

    Args:
        config: The learning configuration.
        node_hardware: Hardware profile name per node (sets each node's gate and readout noise).
        byzantine: Which nodes are Byzantine. ``(N,)`` bool.

    Raises:
        ConfigError: On a CUDA device without CUDA, circuits that do not fit in memory, or bad attack parameters.
    """

    def __init__(self, config: LearningConfig, node_hardware: tuple[str, ...], byzantine: np.ndarray) -> None:
        self.config = config
        if config.torch_threads is not None and torch.get_num_threads() != config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        self.device = torch.device(config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("LearningConfig.device = 'cuda' but no CUDA device is available; use 'cpu'")
        self.model = QuantumClassifier(config.circuit, device=self.device)
        self.num_nodes = len(node_hardware)
        check_learning_fits(config, self.num_nodes)
        self.byzantine = np.asarray(byzantine, dtype=bool)
        profiles = [HARDWARE_PROFILES.get(name) for name in node_hardware]
        self.noise = NodeNoise(
            single_qubit_error=[profile.single_qubit_error for profile in profiles],
            two_qubit_error=[profile.two_qubit_error for profile in profiles],
            readout_error=[profile.readout_error for profile in profiles],
        )
        shrink = expectation_shrink(self.noise, config.circuit)  # (N,) float64
        self.shrink = shrink.to(self.device, self.model.dtype)
        self.channel_infidelity = process_infidelity(shrink, config.circuit.num_qubits)  # (N,) float64
        try:
            self.attack = make_attack(config.attack, **dict(config.attack_params))
        except TypeError as error:
            raise ConfigError(f"LearningConfig.attack_params: {error}") from None
