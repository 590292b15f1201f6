"""The repeater chain's model without the environment: its configuration, chain states and Werner arithmetic.

:class:`RepeaterChainConfig`, the chain state (stored pairs ``(left, right, age)``), the node-pair index of the
observation, and the Werner-fidelity rules of decay and swapping, as :mod:`ceas_gym.envs.repeater_chain` (the
environment, whose module docstring states the model) and the exact solvers in :mod:`agents` use them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ceas_gym.config import check_int, check_range

#: A chain state: stored pairs as ``(left node, right node, age in rounds)``, sorted by left node.
ChainState = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class RepeaterChainConfig:
    """Parameters of a homogeneous repeater chain.

    Attributes:
        n_nodes: Number of nodes including both end nodes (>= 2); there are ``n_nodes - 1`` elementary links.
        p: Per-attempt elementary-link generation success probability, in (0, 1]; one attempt per link per round.
        p_s: Entanglement-swap success probability, in (0, 1].
        t_cut: Cutoff in rounds (integer >= 0): a pair is discarded when its age exceeds ``t_cut``.
        fidelity0: Werner fidelity ``F0`` of a fresh elementary pair, in (0.25, 1].
        coherence_rounds: Memory coherence time ``T`` in rounds, > 0 (``inf`` for no decoherence).
        max_steps: Steps (rounds) after which an undelivered episode is truncated (>= 1).
    """

    n_nodes: int = 4
    p: float = 0.5
    p_s: float = 0.75
    t_cut: int = 3
    fidelity0: float = 0.95
    coherence_rounds: float = 20.0
    max_steps: int = 1000

    def __post_init__(self) -> None:
        check_int("RepeaterChainConfig.n_nodes", self.n_nodes, 2, None)
        check_range("RepeaterChainConfig.p", self.p, 0.0, 1.0, low_inclusive=False)
        check_range("RepeaterChainConfig.p_s", self.p_s, 0.0, 1.0, low_inclusive=False)
        check_int("RepeaterChainConfig.t_cut", self.t_cut, 0, None)
        check_range("RepeaterChainConfig.fidelity0", self.fidelity0, 0.25, 1.0, low_inclusive=False)
        check_range("RepeaterChainConfig.coherence_rounds", self.coherence_rounds, 0.0, None, low_inclusive=False)
        check_int("RepeaterChainConfig.max_steps", self.max_steps, 1, None)

    @property
    def n_links(self) -> int:
        """Number of elementary links, ``n_nodes - 1``."""
        return self.n_nodes - 1

    @property
    def n_node_pairs(self) -> int:
        """Number of node pairs ``(i, j)``, ``i < j``: the length of the per-pair observation arrays."""
        return self.n_nodes * (self.n_nodes - 1) // 2


def werner_swap_fidelity(fidelity1: np.ndarray | float, fidelity2: np.ndarray | float) -> np.ndarray:
    """Fidelity of the pair made by swapping two Werner pairs: ``F1 F2 + (1 - F1)(1 - F2) / 3``.

    Equivalently the Werner parameters ``w = (4F - 1) / 3`` multiply. Elementwise over arrays.

    Args:
        fidelity1: Fidelity of the first pair, in [0, 1].
        fidelity2: Fidelity of the second pair, in [0, 1].

    Returns:
        The swapped pair's fidelity (array, broadcast shape).
    """
    f1 = np.asarray(fidelity1, dtype=np.float64)
    f2 = np.asarray(fidelity2, dtype=np.float64)
    return f1 * f2 + (1.0 - f1) * (1.0 - f2) / 3.0


def werner_fidelity(age: np.ndarray | float, fidelity0: float, coherence_rounds: float) -> np.ndarray:
    """Fidelity of a Werner pair of fresh fidelity ``fidelity0`` after ``age`` rounds in memory.

    ``F(age) = 1/4 + (F0 - 1/4) exp(-age / T)`` with ``T = coherence_rounds`` (``inf``: no decay).

    Args:
        age: Storage time in rounds (>= 0).
        fidelity0: Fidelity at age 0.
        coherence_rounds: Coherence time ``T`` in rounds.

    Returns:
        Fidelity (array, shape of ``age``).
    """
    decay = np.exp(-np.asarray(age, dtype=np.float64) / coherence_rounds)
    return 0.25 + (fidelity0 - 0.25) * decay


def werner_from_fidelity(fidelity: np.ndarray) -> np.ndarray:
    """Werner parameter ``w = (4 F - 1) / 3`` of fidelity ``F``."""
    return (4.0 * fidelity - 1.0) / 3.0


def fidelity_from_werner(werner: np.ndarray) -> np.ndarray:
    """Fidelity ``F = (3 w + 1) / 4`` of Werner parameter ``w``."""
    return (3.0 * werner + 1.0) / 4.0


def node_pair_index(n_nodes: int) -> np.ndarray:
    """Index of node pair ``(i, j)``, ``i < j``, in the per-pair observation arrays (row-major upper triangle).

    Args:
        n_nodes: Number of nodes.

    Returns:
        ``(n_nodes, n_nodes)`` int array; entry ``[i, j]`` for ``i < j`` is the index, other entries are -1.
    """
    table = np.full((n_nodes, n_nodes), -1, dtype=np.int64)
    rows, cols = np.triu_indices(n_nodes, k=1)
    table[rows, cols] = np.arange(rows.size)
    return table


def chain_state_from_observation(observation: Mapping[str, np.ndarray], n_nodes: int) -> ChainState:
    """Decode the chain state (stored pairs and their ages) from an observation of :class:`RepeaterChainEnv`.

    Args:
        observation: The env's observation dict (needs ``"pair_age"``).
        n_nodes: Number of nodes of the chain.

    Returns:
        The stored pairs ``(left, right, age)``, sorted by left node.
    """
    rows, cols = np.triu_indices(n_nodes, k=1)
    ages = np.asarray(observation["pair_age"]).reshape(-1)
    if ages.size != rows.size:
        raise ValueError(f"observation['pair_age'] has {ages.size} entries; a {n_nodes}-node chain has {rows.size}")
    present = np.flatnonzero(ages >= 0)
    return tuple(
        (int(rows[k]), int(cols[k]), round(float(ages[k]))) for k in present[np.argsort(rows[present], kind="stable")]
    )


def validate_chain_state(pairs: Iterable[tuple[int, int, int]], config: RepeaterChainConfig) -> ChainState:
    """Check a chain state and return it sorted.

    Args:
        pairs: Stored pairs ``(left, right, age)`` with ``0 <= left < right < n_nodes`` and ``0 <= age <= t_cut``.
        config: The chain's configuration.

    Returns:
        The pairs as a sorted tuple of int triples.

    Raises:
        ValueError: If a pair is out of range or two pairs' spans overlap.
    """
    state = tuple(sorted((int(i), int(j), int(a)) for i, j, a in pairs))
    previous_right = 0
    for left, right, age in state:
        if not 0 <= left < right < config.n_nodes:
            raise ValueError(f"pair ({left}, {right}): need 0 <= left < right <= {config.n_nodes - 1}")
        if not 0 <= age <= config.t_cut:
            raise ValueError(f"pair ({left}, {right}) age {age}: allowed ages are 0 .. t_cut = {config.t_cut}")
        if left < previous_right:
            raise ValueError(f"pair ({left}, {right}) overlaps the span of another pair; spans must be disjoint")
        previous_right = right
    return state
