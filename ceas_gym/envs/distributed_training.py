"""The distributed quantum neural network embedded in the CEAS environments.

:class:`DistributedTraining` holds every node's classifier parameters, data, hardware noise and attacker, and
runs the learning half of a round for all nodes at once (one batched torch computation; no loop over nodes):

1. **Local training**: K local steps on each node's own data, through its own noisy circuit (global-depolarising
   shrink from its hardware profile, :mod:`ceas_gym.learning.noise`).
2. **Attack**: Byzantine nodes replace their submission by the attack of this round applied to their weights W
   (``attack_target="weights"``, CEAS Sec. IV) or to their update ``W - W_start`` (``"update"``). They keep
   their own clean model for the next round (an attacker sends poison, it does not adopt it), so attacks do not
   compound over rounds.
3. **Stamps**: fidelity stamps phi_k (CEAS Def. 1, :mod:`ceas_gym.learning.stamps`) from the QFI of the submitted
   circuit (refreshed every ``qfi_every`` rounds), the node's channel infidelity and the mean fidelity of the Bell
   pairs its last received messages used (1 before any message arrived; the previous value is kept for a node
   that received nothing).
4. The consensus protocol then mixes the submissions (the environment runs it); :meth:`evaluate` scores the
   consensus model on the test set with the ideal circuit ("global test accuracy", CEAS Fig. 4), and
   :meth:`predict` gives the probe-set probabilities the BFT checkpoint compares.

Transport noise (:func:`ceas_gym.learning.transport.transmit`) is applied by the consensus layer to every gossip
message through :meth:`perturb`, with the fidelity of the pairs the message used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ceas_gym.config import ConfigError
from ceas_gym.envs.ceas_config import LearningConfig
from ceas_gym.learning.attacks import make_attack
from ceas_gym.learning.classifier import QuantumClassifier
from ceas_gym.learning.data import make_federated_data
from ceas_gym.learning.noise import NodeNoise, expectation_shrink, process_infidelity
from ceas_gym.learning.stamps import fidelity_stamp, qfi_trace_score
from ceas_gym.learning.training import evaluate, local_train
from ceas_gym.learning.transport import transmit
from ceas_gym.memory import check_fits
from ceas_gym.network.hardware import HARDWARE_PROFILES


def attack_rows(
    attack: Any,
    target: str,
    start: torch.Tensor,
    trained: torch.Tensor,
    index: torch.Tensor,
    round_index: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """What the Byzantine rows ``index`` submit, drawing any noise from ``generator``.

    ``target="weights"`` attacks their trained weights; ``"update"`` attacks their update ``trained - start``.
    """
    if target == "weights":
        return attack(trained[index], round_index, generator)
    return start[index] + attack(trained[index] - start[index], round_index, generator)


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


class DistributedTraining:
    """Parameters, data, noise and attacks of every node; the learning half of a CEAS round.

    Args:
        config: The learning configuration.
        node_hardware: Hardware profile name per node (sets each node's gate and readout noise).
        byzantine: Which nodes are Byzantine. ``(N,)`` bool.
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
        self._byzantine_index = torch.as_tensor(np.flatnonzero(self.byzantine), device=self.device)
        profiles = [HARDWARE_PROFILES.get(name) for name in node_hardware]
        self.noise = NodeNoise(
            single_qubit_error=[profile.single_qubit_error for profile in profiles],
            two_qubit_error=[profile.two_qubit_error for profile in profiles],
            readout_error=[profile.readout_error for profile in profiles],
        )
        shrink = expectation_shrink(self.noise, config.circuit)  # (N,) float64
        self.shrink = shrink.to(self.device, self.model.dtype)
        self.channel_infidelity = process_infidelity(shrink, config.circuit.num_qubits)  # (N,) float64
        self.qfi_score = torch.ones(len(node_hardware), dtype=torch.float64)
        try:
            self.attack = make_attack(config.attack, **dict(config.attack_params))
        except TypeError as error:
            raise ConfigError(f"LearningConfig.attack_params: {error}") from None
        self.generator = torch.Generator(device="cpu")
        self.params = torch.zeros(self.num_nodes, self.model.num_parameters, dtype=self.model.dtype)
        self.pair_fidelity = torch.ones(self.num_nodes, dtype=torch.float64)

    # ------------------------------------------------------------------------------------------ episode
    def reset(self, rng: np.random.Generator) -> None:
        """Draw fresh data and initial parameters from ``rng`` (and seed the torch generator from it)."""
        self.generator.manual_seed(int(rng.integers(0, 2**63 - 1)))
        self.data = make_federated_data(self.config.data, self.byzantine, rng, device=self.device)
        self.train_features = self.data.train.features.to(self.model.dtype)
        self.train_labels = self.data.train.labels
        self.test_features = self.data.test_features.to(self.model.dtype)
        self.test_labels = self.data.test_labels
        self.probe_features = self.test_features[: self.config.probe_samples]
        self.qfi_probe_features = self.test_features[: self.config.qfi_probe_samples]
        self.params = self.model.init_parameters(self.num_nodes, self.generator, self.config.init)
        self.pair_fidelity = torch.ones(self.num_nodes, dtype=torch.float64)

    # ------------------------------------------------------------------------------------------- round
    def local_round(self, round_index: int) -> torch.Tensor:
        """Train every node locally, apply the Byzantine attack, and return the submissions ``(N, P)``."""
        start = self.params
        trained = local_train(
            self.model,
            start,
            self.train_features,
            self.train_labels,
            self.config.training,
            self.shrink,
            final_loss=False,  # the environment never reads the post-training loss
        ).parameters
        self._trained = trained
        if self._byzantine_index.numel() == 0:
            return trained
        index = self._byzantine_index
        attacked = attack_rows(
            self.attack, self.config.attack_target, start, trained, index, round_index, self.generator
        )
        submitted = trained.clone()
        submitted[index] = attacked.to(submitted.dtype)
        return submitted

    def stamps(self, submitted: torch.Tensor, round_index: int) -> torch.Tensor:
        """Fidelity stamps phi of the submissions, ``(N,)`` float64 in (0, 1]."""
        if round_index % self.config.qfi_every == 0:
            angles, _, _ = self.model.split(submitted)
            self.qfi_score = qfi_trace_score(self.model.circuit, angles, self.qfi_probe_features).cpu().double()
        return fidelity_stamp(self.qfi_score, self.channel_infidelity, self.pair_fidelity, self.config.stamps)

    def perturb(self, messages: torch.Tensor, fidelity: torch.Tensor) -> torch.Tensor:
        """Transport noise of gossip messages over pairs of the given fidelity (identity when disabled)."""
        if not self.config.transport_noise:
            return messages
        fidelity = torch.as_tensor(fidelity, dtype=messages.dtype)
        return transmit(messages, fidelity, self.generator, self.config.transport_receiver)

    def predict(self, rows: torch.Tensor) -> torch.Tensor:
        """Probe-set probabilities of class 1 for parameter rows ``(K, P) -> (K, S)`` (ideal circuit).

        The circuit unitary of the last row (the consensus model the protocol appends) is kept, so that
        :meth:`evaluate` of the same vector does not rebuild it.
        """
        rows = rows.detach().to(self.model.dtype)
        features = self.probe_features.expand(rows.shape[0], *self.probe_features.shape)
        with torch.no_grad():
            stacked = self.model.circuit.stacked_unitary(self.model.split(rows)[0])
            probabilities = torch.sigmoid(self.model.logits(rows, features, stacked_unitary=stacked))
        self._last_predicted = (rows[-1].clone(), stacked[-1:])
        return probabilities

    def finish_round(self, params: torch.Tensor, received_fidelity: np.ndarray) -> None:
        """Adopt the parameters after consensus and the fidelity of the pairs each node received through.

        Byzantine nodes keep their own clean (un-attacked) trained model and send an attacked copy each round, so
        attacks such as scaling do not compound from round to round.
        """
        params = params.detach().to(self.model.dtype)
        if self._byzantine_index.numel():
            params = params.clone()
            params[self._byzantine_index] = self._trained[self._byzantine_index]
        self.params = params
        received = torch.as_tensor(received_fidelity, dtype=torch.float64)
        self.pair_fidelity = torch.where(torch.isnan(received), self.pair_fidelity, received.clamp(1e-6, 1.0))

    def evaluate(self, params: torch.Tensor) -> tuple[float, float]:
        """Test accuracy and loss (nats) of one parameter vector ``(P,)`` with the ideal circuit."""
        cached_row, cached_unitary = getattr(self, "_last_predicted", (None, None))
        params = params.detach().to(self.model.dtype)
        reuse = cached_row is not None and cached_row.shape == params.shape and torch.equal(cached_row, params)
        result = evaluate(
            self.model, params, self.test_features, self.test_labels, stacked_unitary=cached_unitary if reuse else None
        )
        return float(result.accuracy[0]), float(result.loss[0])

    # ------------------------------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["generator"] = self.generator.get_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        generator_state = state.pop("generator")
        self.__dict__.update(state)
        self.generator = torch.Generator(device="cpu")
        self.generator.set_state(generator_state)
