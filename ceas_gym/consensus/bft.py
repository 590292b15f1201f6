r"""BFT checkpoints: divergence monitoring, fidelity-dependent quarantine, readmission and quorum (CEAS Sec. III-D, IV).

Model (DESIGN.md section 5; the paper gives the structure, the formulas below are this suite's documented choices):

* **Divergence, every round.** Each node ``k`` and the consensus model predict ``P(class 1)`` on the same probe set
  of ``S`` samples. Both are clipped to ``[eps, 1 - eps]`` (``eps = probability_clip``, default 1e-6, so one sample
  contributes at most ``~log(1/eps)`` nats) and the node's divergence is the mean over samples of the Bernoulli KL
  divergence of the consensus from the node:

  .. math:: D_k = \frac{1}{S} \sum_s \Big[p_s \log\frac{p_s}{q_{ks}} + (1 - p_s)\log\frac{1 - p_s}{1 - q_{ks}}\Big]
     \quad \text{(nats)},

  with ``p`` the consensus and ``q_k`` the node's predictions, i.e. ``D_KL(consensus || node)``. It is recorded for
  every node, quarantined or not, so quarantined nodes can show recovery.
* **Checkpoint cadence.** Round ``t`` (0-based) is a checkpoint when ``(t + 1) % checkpoint_every == 0``
  (CEAS: every 4th round, so rounds 3, 7, 11, ...).
* **Rolling divergence.** ``R_k = sum of D_k over the last W = rolling_window rounds`` (CEAS: W = 6, the
  sum ``sum_{k=t-5}^{t} D_KL^{(k)}`` of Sec. IV). Before W rounds have been recorded the sum runs over the ``w < W``
  recorded rounds and the threshold is scaled by ``w / W`` (same per-round allowance).
* **Fidelity-dependent threshold.** ``Theta(F_k) = s * (1 + kappa * (1 - F_k))`` nats over W rounds, with
  ``kappa = threshold_slope`` and the scale ``s = max(theta0, c * Q_q({R_j : j active}))``,
  ``theta0 = threshold_base``, ``c = relative_factor``, ``Q_q`` the ``q = relative_quantile`` quantile (default
  0.25): the threshold grows as the node's fidelity ``F_k`` falls, so an honest node whose predictions are noisy
  only because its hardware or its links are noisy is not punished for that noise. The scale follows the typical
  divergence of the active nodes (a low quantile, so a Byzantine minority below 75 % cannot raise it): as the
  models grow confident, every node's KL from the consensus grows, and a fixed threshold
  would start quarantining honest nodes (measured on the paper scenario: false quarantine 27 % after 60 rounds
  with ``c = 0``; Byzantine nodes diverge about 12 times more than the median honest node). ``c = 0`` gives the
  fixed threshold ``theta0``. ``F_k`` is the fidelity the protocol passes (the CEAS protocol passes the stamp phi_k).
* **Quarantine.** At a committed checkpoint an active node is quarantined when ``R_k > Theta(F_k)`` or its trust
  score is below ``trust_min`` (CEAS Sec. III-D ``tau_min``; default 0 switches the trust test off).
* **Readmission.** At a committed checkpoint a quarantined node is readmitted when it has *recovered*: its fidelity
  ``F_k >= readmit_fidelity``, its rolling divergence ``R_k <= readmit_fraction * Theta(F_k)`` and its trust
  ``>= trust_min``. Independently, if the active count would fall below ``min(min_active, N)`` (CEAS: 15),
  quarantined nodes (including ones flagged at this checkpoint) are readmitted in order of increasing ``R_k``
  (ties by node index) until the count reaches it.
* **Quorum.** With ``n`` nodes active before the checkpoint, ``f = floor((n - 1) / 3)`` faults are tolerated and a
  checkpoint commits when at least ``2f + 1`` of them vote (the quorum of ``3f + 1``). A node votes when its
  checkpoint message reached the others; by default every active node votes, and the protocol may pass the nodes
  that were reachable this round (e.g. those with at least one granted exchange), so entanglement starvation can
  cost a checkpoint. A checkpoint without quorum is *not committed*: no quarantine or readmission takes effect,
  and it is counted in :attr:`BFTMonitor.checkpoints_failed`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ceas_gym.config import ConfigError, check_int, check_range


@dataclass(frozen=True)
class BFTConfig:
    """BFT checkpoint settings (defaults: CEAS Sec. IV where the paper gives a value, else this suite's choice).

    Attributes:
        checkpoint_every: Rounds between checkpoints k (CEAS: 4), >= 1.
        rolling_window: Rounds W summed in the rolling divergence (CEAS: 6), >= 1.
        threshold_base: theta0, the smallest threshold scale at fidelity 1 (nats summed over W rounds), > 0.
        relative_factor: c, the threshold scale is at least c times a low quantile of the active nodes' rolling
            divergences (dimensionless, >= 0; 0 keeps the fixed scale theta0).
        relative_quantile: q, that quantile, in (0, 1) (default 0.25: stays among honest nodes while fewer than
            75 % of the active nodes are Byzantine).
        threshold_slope: kappa in ``Theta(F) = theta0 (1 + kappa (1 - F))``, >= 0 (dimensionless).
        min_active: Minimum active nodes kept by readmission (CEAS: 15), >= 1.
        readmit_fidelity: Fidelity a quarantined node needs to be readmitted on recovery, in [0, 1].
        readmit_fraction: A recovered node's rolling divergence must be at most this fraction of Theta, in [0, 1].
        trust_min: Trust below which an active node is quarantined (0 disables the trust test), in [0, 1].
        probability_clip: eps: predicted probabilities are clipped to ``[eps, 1 - eps]``, in (0, 0.5).
    """

    checkpoint_every: int = 4
    rolling_window: int = 6
    threshold_base: float = 0.6
    relative_factor: float = 4.0
    relative_quantile: float = 0.25
    threshold_slope: float = 2.0
    min_active: int = 15
    readmit_fidelity: float = 0.9
    readmit_fraction: float = 0.5
    trust_min: float = 0.0
    probability_clip: float = 1e-6

    def __post_init__(self) -> None:
        check_int("BFTConfig.checkpoint_every", self.checkpoint_every, 1)
        check_int("BFTConfig.rolling_window", self.rolling_window, 1)
        check_range("BFTConfig.threshold_base", self.threshold_base, 0.0, None, low_inclusive=False)
        check_range("BFTConfig.relative_factor", self.relative_factor, 0.0, None)
        check_range(
            "BFTConfig.relative_quantile", self.relative_quantile, 0.0, 1.0, low_inclusive=False, high_inclusive=False
        )
        check_range("BFTConfig.threshold_slope", self.threshold_slope, 0.0, None)
        check_int("BFTConfig.min_active", self.min_active, 1)
        check_range("BFTConfig.readmit_fidelity", self.readmit_fidelity, 0.0, 1.0)
        check_range("BFTConfig.readmit_fraction", self.readmit_fraction, 0.0, 1.0)
        check_range("BFTConfig.trust_min", self.trust_min, 0.0, 1.0)
        check_range(
            "BFTConfig.probability_clip", self.probability_clip, 0.0, 0.5, low_inclusive=False, high_inclusive=False
        )


def bernoulli_kl(consensus: torch.Tensor, nodes: torch.Tensor, clip: float = 1e-6) -> torch.Tensor:
    """Mean over probe samples of ``D_KL(Bernoulli(consensus) || Bernoulli(node))`` per node (nats).

    Args:
        consensus: Consensus predictions ``P(class 1)``. ``(S,)`` or ``(1, S)``; ``(B, S)`` for a batch.
        nodes: Each node's predictions ``P(class 1)``. ``(N, S)``; ``(B, N, S)`` for a batch of networks.
        clip: Probabilities are clipped to ``[clip, 1 - clip]`` before the logarithms.

    Returns:
        ``(N,)`` divergences, >= 0 (``(B, N)`` for a batch).
    """
    batch = nodes.shape[:-2]
    if nodes.ndim not in (2, 3) or consensus.numel() != nodes.shape[-1] * max(1, int(np.prod(batch))):
        raise ConfigError(
            f"predictions: expected node predictions (N, S) and consensus (S,), got {tuple(nodes.shape)} "
            f"and {tuple(consensus.shape)}"
        )
    p = consensus.reshape(*batch, 1, nodes.shape[-1]).clamp(clip, 1.0 - clip)
    q = nodes.clamp(clip, 1.0 - clip)
    per_sample = p * (torch.log(p) - torch.log(q)) + (1.0 - p) * (torch.log1p(-p) - torch.log1p(-q))
    return per_sample.mean(dim=-1).clamp_min(0.0)


def divergence_threshold(fidelity: np.ndarray, base: float, slope: float) -> np.ndarray:
    """Return ``Theta(F) = base * (1 + slope * (1 - F))`` per node (nats over the rolling window)."""
    return base * (1.0 + slope * (1.0 - np.asarray(fidelity, dtype=np.float64)))


def quorum_size(num_active: int | np.ndarray) -> int | np.ndarray:
    """Return the quorum ``2f + 1`` with ``f = floor((num_active - 1) / 3)`` (at least 1), elementwise."""
    return 2 * np.maximum(0, (num_active - 1) // 3) + 1


def is_checkpoint_round(round_index: int | np.ndarray, checkpoint_every: int) -> bool | np.ndarray:
    """Whether 0-based round ``round_index`` ends with a checkpoint: ``(round_index + 1) % k == 0`` (elementwise)."""
    return (round_index + 1) % checkpoint_every == 0


def masked_quantile(values: np.ndarray, mask: np.ndarray, quantile: float) -> np.ndarray:
    """Per row, ``np.quantile(values[row][mask[row]], quantile)`` (linear method), for all rows at once.

    Bit-for-bit the same as numpy's linear interpolation (including its ``_lerp`` that interpolates from the upper
    neighbour when the weight is at least 1/2), so a batch of networks computes what a single network computes.

    Args:
        values: ``(B, N)`` float values.
        mask: ``(B, N)`` bool, which entries of each row take part.
        quantile: q in [0, 1].

    Returns:
        ``(B,)`` float64 quantiles, NaN for a row with no entry in the mask.
    """
    values = np.asarray(values, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    count = mask.sum(axis=-1)
    ordered = np.sort(np.where(mask, values, np.inf), axis=-1)  # the masked entries first, in increasing order
    virtual = (count - 1) * np.float64(quantile)
    floor = np.floor(virtual)
    gamma = virtual - floor
    last = np.maximum(count - 1, 0)
    previous = np.minimum(np.maximum(floor, 0), last).astype(np.intp)
    upper = np.minimum(previous + 1, last)
    rows = np.arange(ordered.shape[0])
    low, high = ordered[rows, previous], ordered[rows, upper]
    empty = count == 0
    if empty.any():  # no entry: inf padding on both sides; keep the arithmetic finite, the result is NaN
        low[empty] = high[empty] = 0.0
    difference = high - low
    result = np.where(gamma >= 0.5, high - difference * (1 - gamma), low + difference * gamma)
    if empty.any():
        result[empty] = np.nan
    return result


def _checked_divergence(divergence: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``divergence`` as float64 of ``shape``, all >= 0 (nats), or :class:`ConfigError`."""
    values = np.asarray(divergence, dtype=np.float64)
    if values.shape != shape or not (values >= 0).all():
        raise ConfigError(f"divergence: expected {shape} non-negative values, got shape {values.shape}")
    return values


def _checked_checkpoint_inputs(
    shape: tuple[int, ...], fidelity: np.ndarray, votes: np.ndarray | None, trust: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fidelity in [0, 1], voters (default all) and trust (default 1), each of ``shape``, or :class:`ConfigError`."""
    fidelity = np.asarray(fidelity, dtype=np.float64)
    if fidelity.shape != shape or not ((fidelity >= 0) & (fidelity <= 1)).all():
        raise ConfigError(f"fidelity: expected {shape} values in [0, 1], got shape {fidelity.shape}")
    voters = np.ones(shape, dtype=bool) if votes is None else np.asarray(votes, dtype=bool)
    scores = np.ones(shape) if trust is None else np.asarray(trust, dtype=np.float64)
    if voters.shape != shape or scores.shape != shape:
        raise ConfigError(f"votes and trust: expected shape {shape}")
    return fidelity, voters, scores


@dataclass(frozen=True)
class CheckpointOutcome:
    """What one checkpoint decided.

    Attributes:
        committed: Whether the quorum was reached and the checkpoint took effect.
        votes: Active nodes that voted.
        quorum: Votes needed, ``2f + 1``.
        active: Active mask after the checkpoint (unchanged if not committed). ``(N,)`` bool.
        quarantined: Nodes quarantined at this checkpoint. ``(N,)`` bool.
        readmitted: Nodes readmitted at this checkpoint. ``(N,)`` bool.
        rolling_divergence: R_k, the divergence summed over the recorded window (nats). ``(N,)``.
        threshold: The effective threshold each R_k was compared to (nats). ``(N,)``.
    """

    committed: bool
    votes: int
    quorum: int
    active: np.ndarray
    quarantined: np.ndarray
    readmitted: np.ndarray
    rolling_divergence: np.ndarray
    threshold: np.ndarray


@dataclass(frozen=True, eq=False)  # holds arrays
class BatchedCheckpointOutcome:
    """What one checkpoint decided in each of B networks (the fields of :class:`CheckpointOutcome`, batched).

    Attributes:
        ran: Networks that held a checkpoint this call. ``(B,)`` bool.
        committed: Networks whose checkpoint reached its quorum and took effect. ``(B,)`` bool.
        votes: Active nodes that voted. ``(B,)`` int.
        quorum: Votes needed, ``2f + 1``. ``(B,)`` int.
        active: Active masks after the checkpoint. ``(B, N)`` bool.
        quarantined: Nodes quarantined at this checkpoint. ``(B, N)`` bool.
        readmitted: Nodes readmitted at this checkpoint. ``(B, N)`` bool.
        rolling_divergence: R_k (nats). ``(B, N)``.
        threshold: The effective thresholds (nats). ``(B, N)``.
    """

    ran: np.ndarray
    committed: np.ndarray
    votes: np.ndarray
    quorum: np.ndarray
    active: np.ndarray
    quarantined: np.ndarray
    readmitted: np.ndarray
    rolling_divergence: np.ndarray
    threshold: np.ndarray

    def network(self, index: int) -> CheckpointOutcome:
        """The outcome of network ``index`` as a :class:`CheckpointOutcome`."""
        return CheckpointOutcome(
            committed=bool(self.committed[index]),
            votes=int(self.votes[index]),
            quorum=int(self.quorum[index]),
            active=self.active[index].copy(),
            quarantined=self.quarantined[index].copy(),
            readmitted=self.readmitted[index].copy(),
            rolling_divergence=self.rolling_divergence[index].copy(),
            threshold=self.threshold[index].copy(),
        )


class BatchedBFTMonitor:
    """Rolling divergence records, active masks and checkpoint decisions of B independent networks of N nodes.

    Every rule of the module docstring, applied to all networks in a few array operations (no loop over networks
    or nodes). :class:`BFTMonitor` is this class for one network.

    Args:
        config: The checkpoint settings.
        num_nodes: Number of nodes N per network, >= 1.
        num_networks: Number of networks B, >= 1.
    """

    def __init__(self, config: BFTConfig, num_nodes: int, num_networks: int = 1) -> None:
        check_int("num_nodes", num_nodes, 1)
        check_int("num_networks", num_networks, 1)
        self.config = config
        self.num_nodes = num_nodes
        self.num_networks = num_networks
        self.active = np.ones((num_networks, num_nodes), dtype=bool)  # (B, N)
        self.history = np.zeros((num_networks, config.rolling_window, num_nodes))  # (B, W, N) nats
        self.rounds_recorded = np.zeros(num_networks, dtype=np.int64)  # (B,)
        self.checkpoints_committed = np.zeros(num_networks, dtype=np.int64)  # (B,)
        self.checkpoints_failed = np.zeros(num_networks, dtype=np.int64)  # (B,)
        self._networks = np.arange(num_networks)

    def reset(self, networks: np.ndarray | None = None) -> None:
        """Forget the history of the given networks (indices or a ``(B,)`` bool mask; default all)."""
        rows = slice(None) if networks is None else np.asarray(networks)
        self.active[rows] = True
        self.history[rows] = 0.0
        self.rounds_recorded[rows] = 0
        self.checkpoints_committed[rows] = 0
        self.checkpoints_failed[rows] = 0

    def record(self, divergence: np.ndarray) -> None:
        """Store one round's divergence per node of every network (nats), ``(B, N)`` >= 0."""
        self._store(_checked_divergence(divergence, (self.num_networks, self.num_nodes)))

    def _store(self, values: np.ndarray) -> None:
        """:meth:`record` after validation."""
        slot = self.rounds_recorded % self.config.rolling_window
        self.history[self._networks, slot] = values
        self.rounds_recorded += 1

    @property
    def window_fill(self) -> np.ndarray:
        """Rounds currently in each rolling window, ``min(rounds_recorded, W)``. ``(B,)`` int."""
        return np.minimum(self.rounds_recorded, self.config.rolling_window)

    def rolling_divergence(self) -> np.ndarray:
        """Sum of each node's divergence over its recorded window (nats). ``(B, N)``."""
        return self.history.sum(axis=1)

    def threshold(self, fidelity: np.ndarray) -> np.ndarray:
        """Effective threshold per node: ``Theta(F)`` with scale ``max(theta0 w / W, c Q_q(R_active))`` (nats).

        ``(B, N)`` for fidelity ``(B, N)``. ``theta0`` is scaled by the recorded fraction ``w / W`` of the window;
        the quantile term is already a sum over the recorded rounds.
        """
        config = self.config
        scale = config.threshold_base * (self.window_fill / config.rolling_window)
        if config.relative_factor > 0:  # NaN quantile (no active node) leaves the base scale: fmax ignores NaN
            typical = masked_quantile(self.rolling_divergence(), self.active, config.relative_quantile)
            scale = np.fmax(scale, config.relative_factor * typical)
        return divergence_threshold(fidelity, scale[:, None], config.threshold_slope)

    def checkpoint(
        self,
        fidelity: np.ndarray,
        votes: np.ndarray | None = None,
        trust: np.ndarray | None = None,
        networks: np.ndarray | None = None,
    ) -> BatchedCheckpointOutcome:
        """Run a checkpoint in the chosen networks: quorum test, then quarantine and readmission.

        Args:
            fidelity: Fidelity F_k per node for Theta(F), in [0, 1]. ``(B, N)``.
            votes: Nodes whose vote arrived (default: all); only active voters count. ``(B, N)`` bool.
            trust: Trust scores for the ``trust_min`` test (default: all 1). ``(B, N)`` in [0, 1].
            networks: Which networks hold a checkpoint (default: all). ``(B,)`` bool.

        Returns:
            The :class:`BatchedCheckpointOutcome`; :attr:`active` is updated where committed.
        """
        shape = (self.num_networks, self.num_nodes)
        fidelity, voters, scores = _checked_checkpoint_inputs(shape, fidelity, votes, trust)
        ran = np.ones(self.num_networks, dtype=bool) if networks is None else np.asarray(networks, dtype=bool)
        if ran.shape != shape[:1]:
            raise ConfigError(f"networks: expected shape {shape[:1]}, got {ran.shape}")
        return self._checkpoint(fidelity, voters, scores, ran)

    def _checkpoint(
        self, fidelity: np.ndarray, voters: np.ndarray, scores: np.ndarray, ran: np.ndarray
    ) -> BatchedCheckpointOutcome:
        """:meth:`checkpoint` after validation."""
        config = self.config
        active = self.active
        rolling = self.rolling_divergence()
        threshold = self.threshold(fidelity)
        quorum = quorum_size(active.sum(axis=1))
        vote_count = (voters & active).sum(axis=1)
        committed = ran & (vote_count >= quorum)

        trusted = scores >= config.trust_min
        flagged = active & ((rolling > threshold) | ~trusted)
        recovered = ~active & (fidelity >= config.readmit_fidelity) & (rolling <= config.readmit_fraction * threshold)
        new_active = (active & ~flagged) | (recovered & trusted)
        deficit = min(config.min_active, self.num_nodes) - new_active.sum(axis=1)  # (B,)
        if (deficit > 0).any():
            # Readmit the lowest rolling divergences first (ties by node index) until each network has its minimum.
            order = np.argsort(np.where(new_active, np.inf, rolling), axis=1, kind="stable")
            rank = np.empty_like(order)
            np.put_along_axis(rank, order, np.broadcast_to(np.arange(self.num_nodes), order.shape), axis=1)
            new_active |= ~new_active & (rank < deficit[:, None])
        new_active = np.where(committed[:, None], new_active, active)
        outcome = BatchedCheckpointOutcome(
            ran=ran,
            committed=committed,
            votes=vote_count,
            quorum=quorum,
            active=new_active,
            quarantined=active & ~new_active,
            readmitted=~active & new_active,
            rolling_divergence=rolling,
            threshold=threshold,
        )
        self.active = new_active.copy()
        self.checkpoints_committed += committed
        self.checkpoints_failed += ran & ~committed
        return outcome


class BFTMonitor:
    """Rolling divergence record, active mask and checkpoint decisions for N nodes of one network.

    A :class:`BatchedBFTMonitor` of one network, with ``(N,)`` arrays and scalar counters.

    Args:
        config: The checkpoint settings.
        num_nodes: Number of nodes N, >= 1.
    """

    def __init__(self, config: BFTConfig, num_nodes: int) -> None:
        self._batch = BatchedBFTMonitor(config, num_nodes, 1)
        self.config = config
        self.num_nodes = num_nodes

    def reset(self) -> None:
        """Forget all history: every node active, no divergence recorded, counters zero."""
        self._batch.reset()

    @property
    def active(self) -> np.ndarray:
        """Active (not quarantined) nodes, ``(N,)`` bool (a view: writing to it changes the monitor)."""
        return self._batch.active[0]

    @active.setter
    def active(self, value: np.ndarray) -> None:
        self._batch.active[0] = value

    @property
    def rounds_recorded(self) -> int:
        """Rounds recorded since the last reset."""
        return int(self._batch.rounds_recorded[0])

    @property
    def checkpoints_committed(self) -> int:
        """Checkpoints that reached their quorum since the last reset."""
        return int(self._batch.checkpoints_committed[0])

    @property
    def checkpoints_failed(self) -> int:
        """Checkpoints that missed their quorum since the last reset."""
        return int(self._batch.checkpoints_failed[0])

    def record(self, divergence: np.ndarray) -> None:
        """Store one round's divergence per node (nats), ``(N,)`` >= 0, dropping the oldest beyond the window."""
        self._batch._store(_checked_divergence(divergence, (self.num_nodes,))[None])

    @property
    def window_fill(self) -> int:
        """Rounds currently in the rolling window, ``min(rounds_recorded, W)``."""
        return int(self._batch.window_fill[0])

    def rolling_divergence(self) -> np.ndarray:
        """Sum of each node's divergence over the recorded window (nats). ``(N,)``."""
        return self._batch.rolling_divergence()[0]

    def threshold(self, fidelity: np.ndarray) -> np.ndarray:
        """Effective threshold per node (nats), ``(N,)``; see :meth:`BatchedBFTMonitor.threshold`."""
        return self._batch.threshold(np.asarray(fidelity, dtype=np.float64).reshape(1, -1))[0]

    def checkpoint(
        self, fidelity: np.ndarray, votes: np.ndarray | None = None, trust: np.ndarray | None = None
    ) -> CheckpointOutcome:
        """Run a checkpoint: quorum test, then quarantine and readmission (see the module docstring).

        Args:
            fidelity: Fidelity F_k per node for Theta(F), in [0, 1]. ``(N,)``.
            votes: Nodes whose vote arrived (default: all); only active voters count. ``(N,)`` bool.
            trust: Trust scores for the ``trust_min`` test (default: all 1). ``(N,)`` in [0, 1].

        Returns:
            The :class:`CheckpointOutcome`; :attr:`active` is updated when committed.
        """
        fidelity, voters, scores = _checked_checkpoint_inputs((self.num_nodes,), fidelity, votes, trust)
        outcome = self._batch._checkpoint(fidelity[None], voters[None], scores[None], np.ones(1, dtype=bool))
        return outcome.network(0)
