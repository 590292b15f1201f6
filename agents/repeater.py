"""The swap-asap policy for ``RepeaterChain-v0`` and its exact expected delivery time.

Swap-asap swaps at every node that can, as soon as it can: each round, every intermediate node holding a pair to
each side swaps. Its expected delivery time (rounds, from the empty chain) is computed exactly by evaluating this
policy on the enumerated :class:`~agents.exact.RepeaterChainModel` (a sparse linear solve, nothing sampled).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.exact import (
    EnumeratedMDP,
    RepeaterChainModel,
    enumerate_mdp,
    evaluate_policy,
    feasible_swaps,
    policy_from_function,
)
from ceas_gym.envs.repeater_chain import RepeaterChainConfig


class SwapAsapPolicy:
    """Swap at every intermediate node that holds a pair to each side.

    Args:
        n_nodes: Number of nodes of the chain (``env.unwrapped.config.n_nodes``).
    """

    name = "swap-asap"

    def __init__(self, n_nodes: int) -> None:
        if n_nodes < 2:
            raise ValueError(f"n_nodes = {n_nodes} is out of range; allowed: >= 2")
        self.n_nodes = n_nodes
        self._rows, self._cols = np.triu_indices(n_nodes, k=1)

    def reset(self, seed: int | None = None) -> None:
        """The policy is deterministic; nothing to reset."""

    def act(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        """Return the ``MultiBinary`` swap vector: 1 at every node with a stored pair on each side."""
        present = np.asarray(observation["pair_age"]).reshape(-1) >= 0
        has_left = np.zeros(self.n_nodes, dtype=bool)
        has_right = np.zeros(self.n_nodes, dtype=bool)
        has_left[self._cols[present]] = True
        has_right[self._rows[present]] = True
        swap = (has_left & has_right)[1 : self.n_nodes - 1]
        if self.n_nodes == 2:
            return np.zeros(1, dtype=np.int8)
        return swap.astype(np.int8)


def swap_asap_expected_delivery_time(config: RepeaterChainConfig, mdp: EnumeratedMDP | None = None) -> float:
    """Exact expected delivery time (rounds, from the empty chain) of swap-asap on the chain ``config``.

    Args:
        config: The chain's configuration.
        mdp: The enumerated :class:`~agents.exact.RepeaterChainModel` of ``config``, if already built.

    Returns:
        The expected number of env steps until delivery.
    """
    if mdp is None:
        mdp = enumerate_mdp(RepeaterChainModel(config))
    values = evaluate_policy(mdp, policy_from_function(mdp, feasible_swaps))
    return -float(mdp.initial @ values)
