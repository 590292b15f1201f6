r"""Fidelity-weighted gossip mixing (CEAS eq. 6) over the links whose Bell pairs were granted.

Model (DESIGN.md section 5, CEAS Sec. III-B):

* Node ``i`` holds a flat parameter vector ``theta_i`` (a row of ``params (N, P)``) and a fidelity stamp
  ``phi_i in (0, 1]`` (CEAS Def. 1), fixed during a round's mixing steps.
* A round runs ``S`` mixing steps (default ``ceil(log2 N)``, at least 1: "logarithmic mixing depth", CEAS Sec. IV).
  In step ``l`` every link ``(u, v)`` whose two ends are both *active* (not quarantined) attempts one *exchange*,
  which needs ``pairs_per_exchange`` Bell pairs on that link (both directions of the swap together). All of the
  step's exchanges are requested from the :class:`~ceas_gym.consensus.pairs.PairProvider` in one call. An exchange
  that is not granted does not happen: the link drops out of step ``l`` and is counted as *skipped*.
* Over the granted links ``G_l`` of step ``l``, with degrees ``d_i`` counted over ``G_l`` only, the mixing matrix is
  the Metropolis–Hastings matrix scaled by the stamps:

  .. math::

      W_{ij} = \frac{\phi_j}{1 + \max(d_i, d_j)} \quad (ij \in G_l), \qquad
      W_{ii} = 1 - \sum_{j \ne i} W_{ij}, \qquad W_{ij} = 0 \text{ otherwise}.

  ``W`` is row-stochastic with ``W_ii >= 1 - d_i / (1 + d_i) > 0`` (since ``phi_j <= 1``), and it satisfies
  detailed balance with ``pi_i ∝ phi_i``:
  ``phi_i W_ij = phi_i phi_j / (1 + max(d_i, d_j)) = phi_j W_ji``. Summing over ``i`` gives ``phi^T W = phi^T``,
  so ``pi ∝ phi`` is stationary, ``W`` is reversible, and the pi-weighted mass ``sum_i phi_i theta_i`` is conserved
  by every step (without transport noise). On a connected granted graph repeated mixing therefore converges to the
  fidelity-weighted mean ``sum_j phi_j theta_j / sum_j phi_j`` (CEAS eq. 4-5), and the error shrinks at least as
  ``||e_s||_pi <= lambda_*^s ||e_0||_pi`` with ``lambda_*`` the second-largest eigenvalue modulus of ``W`` and
  ``||x||_pi^2 = sum_i pi_i x_i^2``.
* The update is eq. (6) with the message ``m_{j->i}`` that node ``i`` received from ``j``:
  ``theta_i <- W_ii theta_i + sum_j W_ij m_{j->i}``. Without transport noise ``m_{j->i} = theta_j``. An optional
  ``perturb(messages (M, P), fidelity (M,))`` hook (the learning layer's transport-noise model) replaces the
  ``M = 2 |G_l|`` messages of a step by noisy copies, given the mean fidelity of the pairs each travelled on. With
  noise the phi-weighted mass is no longer conserved exactly (the noise enters it).
* Inactive nodes neither send nor receive: their links are never requested and their rows stay unchanged.
* Per node, the *received fidelity* is the mean, over all messages it received in the round, of the mean fidelity
  of the pairs each travelled on (NaN if it received none); it feeds the next round's fidelity stamp.

Implementation: per-edge arrays and ``index_add`` (O(N + E) work per step, no dense N x N matrix, no Python loop over
nodes or edges; the only loop is over the ``S`` mixing steps, whose pair requests depend on the previous step). The
weights of a step are computed in numpy in the parameters' precision (row sums accumulate in float64), so a step
costs a handful of torch operations; per-node fidelity bookkeeping is done once per round.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ceas_gym.config import ConfigError, check_int
from ceas_gym.consensus.pairs import PairProvider

Perturb = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""Transport-noise hook: ``perturb(messages (M, P), fidelity (M,)) -> (M, P)`` noisy messages."""


def default_mixing_steps(num_nodes: int) -> int:
    """Return the default mixing depth ``max(1, ceil(log2 N))`` (steps per round; CEAS Sec. IV)."""
    check_int("num_nodes", num_nodes, 1)
    return max(1, math.ceil(math.log2(num_nodes)))


def check_edges(edges: np.ndarray, num_nodes: int) -> np.ndarray:
    """Validate an edge list and return it as an int64 ``(E, 2)`` array.

    Args:
        edges: Link endpoints, ``u < v``, no repeated link. ``(E, 2)`` int.
        num_nodes: Number of nodes N; endpoints must lie in ``[0, N)``.

    Raises:
        ConfigError: On a wrong shape or dtype, an endpoint out of range, ``u >= v`` or a repeated link.
    """
    array = np.asarray(edges)
    if array.ndim != 2 or array.shape[1] != 2 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise ConfigError(f"edges: expected an integer array of shape (E, 2), got {array.dtype} {array.shape}")
    array = array.astype(np.int64).reshape(-1, 2)
    if array.size and (array.min() < 0 or array.max() >= num_nodes):
        raise ConfigError(f"edges: endpoints must be in [0, {num_nodes}), got [{array.min()}, {array.max()}]")
    if np.any(array[:, 0] >= array[:, 1]):
        raise ConfigError("edges: every link must be written (u, v) with u < v")
    keys = np.sort(array[:, 0] * num_nodes + array[:, 1])
    if np.any(keys[1:] == keys[:-1]):
        raise ConfigError("edges: a link appears more than once")
    return array


def check_stamps(stamps: np.ndarray | torch.Tensor, num_nodes: int, like: torch.Tensor) -> torch.Tensor:
    """Validate fidelity stamps ``(N,)`` in (0, 1] and return them as a tensor of ``like``'s dtype and device."""
    tensor = torch.as_tensor(stamps).to(dtype=like.dtype, device=like.device)
    if tensor.shape != (num_nodes,):
        raise ConfigError(f"stamps: expected shape ({num_nodes},), got {tuple(tensor.shape)}")
    if not bool(torch.all((tensor > 0) & (tensor <= 1))):
        raise ConfigError("stamps: every fidelity stamp must be in (0, 1]")
    return tensor


def metropolis_fidelity_weights(
    granted_edges: np.ndarray, stamps: torch.Tensor, num_nodes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Off-diagonal mixing weights of the granted links of one step.

    Args:
        granted_edges: Links that exchange this step, ``u < v``. ``(G, 2)`` int.
        stamps: Fidelity stamps phi. ``(N,)`` tensor in (0, 1].
        num_nodes: Number of nodes N.

    Returns:
        ``(w_uv, w_vu)``: ``W[u, v] = phi_v / (1 + max(d_u, d_v))`` and ``W[v, u] = phi_u / (1 + max(d_u, d_v))``
        per granted link, ``(G,)`` each, with degrees ``d`` counted over the granted links.
    """
    u, v = granted_edges[:, 0], granted_edges[:, 1]
    degree = np.bincount(np.concatenate([u, v]), minlength=num_nodes)
    scale = torch.as_tensor(1.0 / (1.0 + np.maximum(degree[u], degree[v])), dtype=stamps.dtype, device=stamps.device)
    u_index = torch.as_tensor(u, device=stamps.device)
    v_index = torch.as_tensor(v, device=stamps.device)
    return stamps[v_index] * scale, stamps[u_index] * scale


def mixing_step(
    params: torch.Tensor,
    granted_edges: np.ndarray,
    stamps: torch.Tensor,
    edge_fidelity: np.ndarray | None = None,
    perturb: Perturb | None = None,
) -> torch.Tensor:
    """Apply one fidelity-weighted Metropolis mixing step over the granted links (eq. 6).

    Args:
        params: Parameters per node. ``(N, P)`` tensor.
        granted_edges: Links that exchange this step, ``u < v``. ``(G, 2)`` int.
        stamps: Fidelity stamps phi. ``(N,)`` tensor in (0, 1], same dtype as ``params``.
        edge_fidelity: Mean fidelity of the pairs each granted exchange consumed, ``(G,)``; needed with ``perturb``.
        perturb: Optional transport-noise hook applied to the ``2G`` messages (see module docstring).

    Returns:
        The new parameters, ``(N, P)``; rows of nodes without a granted link are unchanged.
    """
    if granted_edges.shape[0] == 0:
        return params.clone()
    num_nodes = params.shape[0]
    u, v = granted_edges[:, 0], granted_edges[:, 1]
    degree = np.bincount(granted_edges.ravel(), minlength=num_nodes)
    # Weights in numpy (in the parameters' precision, as metropolis_fidelity_weights gives them), then few torch ops.
    real_dtype = torch.empty((), dtype=params.dtype).numpy().dtype
    scale = (1.0 / (1.0 + np.maximum(degree[u], degree[v]))).astype(real_dtype)
    phi = stamps.detach().cpu().numpy()
    weights = np.concatenate([phi[v] * scale, phi[u] * scale])  # W[u, v] for receiver u, then W[v, u]
    receivers = np.concatenate([u, v])
    self_weight = (1.0 - np.bincount(receivers, weights, minlength=num_nodes)).astype(real_dtype)  # W_ii
    device = params.device
    receivers_t = torch.from_numpy(receivers).to(device)
    messages = params.index_select(0, torch.from_numpy(np.concatenate([v, u])).to(device))  # u gets theta_v, ...
    if perturb is not None:
        if edge_fidelity is None:
            raise ConfigError("edge_fidelity: required when a perturb hook is given")
        fidelity = torch.from_numpy(np.concatenate([edge_fidelity, edge_fidelity]).astype(real_dtype))
        messages = perturb(messages, fidelity.to(device))
        if messages.shape != (receivers.shape[0], params.shape[1]):
            raise ConfigError(
                f"perturb: must return shape {(receivers.shape[0], params.shape[1])}, got {messages.shape}"
            )
    weights_t = torch.from_numpy(weights).to(device)[:, None]
    mixed = params * torch.from_numpy(self_weight).to(device)[:, None]
    return mixed.index_add_(0, receivers_t, messages * weights_t)


@dataclass(frozen=True)
class GossipResult:
    """The outcome of one round of gossip mixing.

    Attributes:
        params: Parameters per node after mixing. ``(N, P)`` tensor.
        attempted_per_step: Exchanges requested in each mixing step. ``(S,)`` int.
        granted_per_step: Exchanges that got their pairs and happened. ``(S,)`` int.
        granted_per_edge: Exchanges that happened on each link over the round. ``(E,)`` int.
        attempted_per_edge: Exchanges requested on each link over the round. ``(E,)`` int.
        pairs_consumed: Bell pairs consumed over the round (pairs).
        mean_delivered_fidelity: Mean fidelity of the pairs of all granted exchanges (NaN if none).
        received_fidelity: Per node, mean fidelity of the pairs its received messages travelled on, NaN if it
            received none. ``(N,)`` float.
        messages_received: Messages each node received over the round. ``(N,)`` int.
        fidelity_sum_per_edge: Sum over the link's granted exchanges of their pairs' mean fidelity. ``(E,)`` float.
    """

    params: torch.Tensor
    attempted_per_step: np.ndarray
    granted_per_step: np.ndarray
    granted_per_edge: np.ndarray
    attempted_per_edge: np.ndarray
    pairs_consumed: int
    mean_delivered_fidelity: float
    received_fidelity: np.ndarray
    messages_received: np.ndarray
    fidelity_sum_per_edge: np.ndarray

    @property
    def skipped_per_step(self) -> np.ndarray:
        """Exchanges requested but not granted in each mixing step (they did not happen). ``(S,)`` int."""
        return self.attempted_per_step - self.granted_per_step

    @property
    def attempted(self) -> int:
        """Exchanges requested over the round."""
        return int(self.attempted_per_step.sum())

    @property
    def granted(self) -> int:
        """Exchanges that happened over the round."""
        return int(self.granted_per_step.sum())

    @property
    def skipped(self) -> int:
        """Exchanges that were requested but not granted over the round."""
        return self.attempted - self.granted


def gossip_round(
    edges: np.ndarray,
    params: torch.Tensor,
    stamps: np.ndarray | torch.Tensor,
    active: np.ndarray,
    pair_provider: PairProvider,
    *,
    mixing_steps: int | None = None,
    pairs_per_exchange: int = 1,
    perturb: Perturb | None = None,
    perturb_for_step: Callable[[np.ndarray], Perturb] | None = None,
) -> GossipResult:
    """Run one round of fidelity-weighted gossip: ``mixing_steps`` steps, each gated by granted Bell pairs.

    Args:
        edges: Link endpoints, ``u < v``. ``(E, 2)`` int; ``edge_ids`` in pair requests index its rows.
        params: Parameters per node. ``(N, P)`` float tensor (not modified).
        stamps: Fidelity stamps phi per node, in (0, 1]. ``(N,)``.
        active: Whether each node takes part (False: quarantined). ``(N,)`` bool.
        pair_provider: Serves each step's exchanges in one call.
        mixing_steps: Mixing steps S (default ``max(1, ceil(log2 N))``), >= 0.
        pairs_per_exchange: Bell pairs one exchange consumes (pairs), >= 1.
        perturb: Optional transport-noise hook ``(messages (M, P), fidelity (M,)) -> (M, P)``.
        perturb_for_step: Instead of ``perturb``, a factory called in each step with the granted link ids
            ``(G,)``; the hook it returns perturbs that step's messages, ordered as :func:`mixing_step` orders them
            (one per granted link towards ``u``, then one per granted link towards ``v``). For hooks that need to
            know which link carried which message (environments batched in lock-step draw noise per copy).

    Returns:
        A :class:`GossipResult`.

    Raises:
        ConfigError: On inconsistent shapes, stamps outside (0, 1], a non-boolean mask or bad step counts.
    """
    if params.ndim != 2 or not torch.is_floating_point(params):
        raise ConfigError(f"params: expected a float tensor of shape (N, P), got {params.dtype} {tuple(params.shape)}")
    num_nodes = params.shape[0]
    edges = check_edges(edges, num_nodes)
    phi = check_stamps(stamps, num_nodes, params)
    active = np.asarray(active)
    if active.shape != (num_nodes,) or active.dtype != bool:
        raise ConfigError(f"active: expected a bool array of shape ({num_nodes},), got {active.dtype} {active.shape}")
    steps = default_mixing_steps(num_nodes) if mixing_steps is None else mixing_steps
    check_int("mixing_steps", steps, 0)
    check_int("pairs_per_exchange", pairs_per_exchange, 1)
    if perturb is not None and perturb_for_step is not None:
        raise ConfigError("perturb and perturb_for_step: give at most one")

    candidate_ids = np.flatnonzero(active[edges[:, 0]] & active[edges[:, 1]])
    attempted_per_step = np.zeros(steps, dtype=np.int64)
    granted_per_step = np.zeros(steps, dtype=np.int64)
    granted_id_list: list[np.ndarray] = []
    granted_fidelity_list: list[np.ndarray] = []
    current = params.detach().clone()
    for step in range(steps):
        attempted_per_step[step] = candidate_ids.size
        if candidate_ids.size == 0:
            continue
        granted, mean_fidelity = pair_provider.request(candidate_ids, pairs_per_exchange)
        granted = np.asarray(granted, dtype=bool)
        mean_fidelity = np.asarray(mean_fidelity, dtype=np.float64)
        if granted.shape != candidate_ids.shape or mean_fidelity.shape != candidate_ids.shape:
            raise ConfigError(f"pair_provider.request: must return two arrays of shape {candidate_ids.shape}")
        granted_ids = candidate_ids[granted]
        granted_fidelity = mean_fidelity[granted]
        granted_per_step[step] = granted_ids.size
        granted_id_list.append(granted_ids)
        granted_fidelity_list.append(granted_fidelity)
        step_perturb = perturb_for_step(granted_ids) if perturb_for_step is not None else perturb
        current = mixing_step(current, edges[granted_ids], phi, granted_fidelity, step_perturb)

    # Round bookkeeping in one pass over all granted exchanges (a link may appear once per step).
    all_ids = np.concatenate(granted_id_list) if granted_id_list else np.zeros(0, dtype=np.int64)
    all_fidelity = np.concatenate(granted_fidelity_list) if granted_fidelity_list else np.zeros(0)
    granted_per_edge = np.bincount(all_ids, minlength=edges.shape[0]).astype(np.int64)
    endpoints = edges[all_ids].ravel()  # u0, v0, u1, v1, ...: each endpoint receives one message
    fidelity_sum_per_node = np.bincount(endpoints, np.repeat(all_fidelity, 2), minlength=num_nodes)
    messages_received = np.bincount(endpoints, minlength=num_nodes).astype(np.int64)
    fidelity_total = float(all_fidelity.sum())
    attempted_per_edge = np.zeros(edges.shape[0], dtype=np.int64)
    attempted_per_edge[candidate_ids] = steps
    granted_total = int(granted_per_step.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        received_fidelity = np.where(messages_received > 0, fidelity_sum_per_node / messages_received, np.nan)
    return GossipResult(
        params=current,
        attempted_per_step=attempted_per_step,
        granted_per_step=granted_per_step,
        granted_per_edge=granted_per_edge,
        attempted_per_edge=attempted_per_edge,
        pairs_consumed=granted_total * pairs_per_exchange,
        mean_delivered_fidelity=fidelity_total / granted_total if granted_total else math.nan,
        received_fidelity=received_fidelity,
        messages_received=messages_received,
        fidelity_sum_per_edge=np.bincount(all_ids, all_fidelity, minlength=edges.shape[0]),
    )
