"""The interface every consensus protocol implements, the registry they are found in, and helpers they share.

Every protocol in :data:`CONSENSUS_PROTOCOLS` is a class built as ``cls(num_nodes, edges, config)`` (``config`` a
dataclass or a plain mapping, loaded strictly) with:

* ``run_round(params, stamps, predict, pair_provider, round_index, rng, *, perturb=None, authenticated=None)
  -> ConsensusRoundResult``: one consensus round on flat parameter tensors ``(N, P)``;
* ``expected_demand(edges, round_index) -> (pairs (E,), deadline (E,))``: the Bell pairs the next round will ask
  for per link (pairs, expected value where the protocol is random) and within how many rounds (1 = this
  coming round), so the scheduler can observe upcoming consensus demand before it acts;
* ``reset()``, and the per-node state ``active`` (bool) and ``trust`` (float) as attributes.

``predict(params (K, P)) -> (K, S)`` returns each parameter row's probability of class 1 on the probe set.

The built-in protocols each have their own module and are registered in :mod:`ceas_gym.consensus`:
``ceas`` (:mod:`~ceas_gym.consensus.ceas_protocol`), ``qba`` (:mod:`~ceas_gym.consensus.qba_protocol`) and
``random-selection`` (:mod:`~ceas_gym.consensus.random_selection`). This module imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from ceas_gym.config import ConfigError, check_int, from_dict
from ceas_gym.consensus.gossip import Perturb
from ceas_gym.consensus.pairs import PairProvider
from ceas_gym.registry import Registry

Predict = Callable[[torch.Tensor], torch.Tensor]
"""Probe-set predictor: ``predict(params (K, P)) -> (K, S)`` probabilities of class 1."""


@dataclass(frozen=True)
class ConsensusRoundResult:
    """The outcome of one consensus round.

    Attributes:
        params: Parameters per node after the round. ``(N, P)`` tensor.
        consensus_params: The consensus model of this round. ``(P,)`` tensor.
        active: Active (not quarantined) nodes after the round. ``(N,)`` bool.
        quarantined: Nodes quarantined this round. ``(N,)`` bool.
        readmitted: Nodes readmitted this round. ``(N,)`` bool.
        participants: Nodes whose update entered this round's consensus. ``(N,)`` bool.
        checkpoint: Whether this round ran a checkpoint.
        committed: Whether this round committed a consensus model (a checkpoint with quorum for CEAS).
        exchanges_attempted: Exchanges requested from the pair provider this round.
        exchanges_granted: Exchanges that got their pairs and happened.
        pairs_consumed: Bell pairs consumed this round (pairs).
        pairs_per_edge: Bell pairs consumed per link this round. ``(E,)`` int.
        mean_delivered_fidelity: Mean fidelity of the pairs of all granted exchanges (NaN if none).
        received_fidelity: Per node mean fidelity of the pairs its received messages used, NaN if none. ``(N,)``.
        divergence: Per node D_KL(consensus || node) this round (nats), NaN where not computed. ``(N,)``.
        trust: Trust scores after the round. ``(N,)`` float in [0, 1].
    """

    params: torch.Tensor
    consensus_params: torch.Tensor
    active: np.ndarray
    quarantined: np.ndarray
    readmitted: np.ndarray
    participants: np.ndarray
    checkpoint: bool
    committed: bool
    exchanges_attempted: int
    exchanges_granted: int
    pairs_consumed: int
    pairs_per_edge: np.ndarray
    mean_delivered_fidelity: float
    received_fidelity: np.ndarray
    divergence: np.ndarray
    trust: np.ndarray

    @property
    def exchanges_skipped(self) -> int:
        """Exchanges requested but not granted this round (they did not happen)."""
        return self.exchanges_attempted - self.exchanges_granted


@runtime_checkable
class ConsensusProtocol(Protocol):
    """The interface every registered consensus protocol implements (see the module docstring)."""

    name: str
    active: np.ndarray
    trust: np.ndarray

    def reset(self) -> None:
        """Start a new episode: all nodes active, trust at its initial value, no history."""
        ...

    def run_round(
        self,
        params: torch.Tensor,
        stamps: np.ndarray | torch.Tensor,
        predict: Predict | None,
        pair_provider: PairProvider,
        round_index: int,
        rng: np.random.Generator,
        *,
        perturb: Perturb | None = None,
        authenticated: np.ndarray | None = None,
    ) -> ConsensusRoundResult:
        """Run one consensus round (round ``round_index``, 0-based)."""
        ...

    def expected_demand(self, edges: np.ndarray, round_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-link pairs the round ``round_index`` will request ``(E,)`` and their deadline in rounds ``(E,)``."""
        ...


CONSENSUS_PROTOCOLS: Registry[type] = Registry("consensus protocol")
"""Consensus protocol classes by name; each is built as ``cls(num_nodes, edges, config)``."""


def load_config(config_class: type, config: Any) -> Any:
    """Return ``config`` as ``config_class``: None gives the defaults, a mapping is loaded strictly."""
    if config is None:
        return config_class()
    if isinstance(config, config_class):
        return config
    if isinstance(config, Mapping):
        return from_dict(config_class, config)
    raise ConfigError(f"config: expected {config_class.__name__} or a mapping, got {type(config).__name__}")


def check_params(params: torch.Tensor, num_nodes: int) -> None:
    """Raise :class:`ConfigError` unless ``params`` is a float tensor of shape ``(num_nodes, P)``."""
    if not isinstance(params, torch.Tensor) or params.ndim != 2 or params.shape[0] != num_nodes:
        raise ConfigError(f"params: expected a tensor of shape ({num_nodes}, P), got {getattr(params, 'shape', None)}")
    if not torch.is_floating_point(params):
        raise ConfigError(f"params: expected a floating-point tensor, got {params.dtype}")


def check_round_inputs(
    params: torch.Tensor, num_nodes: int, round_index: int, rng: Any, *, uses_rng: bool = True
) -> None:
    """The checks every protocol's ``run_round`` makes on its inputs, in one place.

    Args:
        params: Submitted parameters, a float tensor ``(num_nodes, P)``.
        num_nodes: The protocol's N.
        round_index: The round, an int >= 0.
        rng: The round's generator; must be a :class:`numpy.random.Generator` when ``uses_rng``.
        uses_rng: Whether the protocol draws from ``rng`` (a deterministic protocol accepts anything).

    Raises:
        ConfigError: Naming the input and what is allowed.
    """
    check_params(params, num_nodes)
    check_int("round_index", round_index, 0)
    if uses_rng and not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")


def probe_predictions(predict: Predict, rows: torch.Tensor) -> torch.Tensor:
    """Call ``predict`` on ``rows (K, P)`` without gradients and check it returns ``(K, S)`` probabilities."""
    with torch.no_grad():
        predictions = torch.as_tensor(predict(rows))
    if predictions.ndim != 2 or predictions.shape[0] != rows.shape[0]:
        raise ConfigError(f"predict: must return shape ({rows.shape[0]}, S), got {tuple(predictions.shape)}")
    if not bool(torch.all((predictions >= 0) & (predictions <= 1))):
        raise ConfigError("predict: must return probabilities of class 1 in [0, 1]")
    return predictions.to(torch.float64)


def weighted_consensus(params: torch.Tensor, stamps: torch.Tensor, members: np.ndarray) -> torch.Tensor:
    """Return ``sum_{k in members} phi_k theta_k / sum_{k in members} phi_k`` (CEAS eq. 4-5), ``(P,)``.

    Batched over leading dimensions too: params ``(..., N, P)``, stamps and members ``(..., N)`` give ``(..., P)``
    (one batched matmul, the same arithmetic per network as for one).
    """
    weights = stamps * torch.as_tensor(members, dtype=stamps.dtype, device=stamps.device)
    return (weights[..., None, :] @ params)[..., 0, :] / weights.sum(-1, keepdim=True)
