"""Omniscient Byzantine attacks that craft their update from the honest nodes' ones: ALIE and IPM (as ByzFL).

Both are registered in :data:`~ceas_gym.learning.attacks.ATTACKS`. The attacker sees the honest vectors ``x_1 ..
x_n`` of its network this round (the honest nodes' trained weights, or their updates with
``attack_target="update"``) and every Byzantine node of that network submits the same vector:

* ``alie`` ("a little is enough", Baruch, Baruch and Goldberg, NeurIPS 2019):
  ``mu + tau * sigma`` with ``mu`` the coordinate-wise mean and ``sigma`` the coordinate-wise population standard
  deviation (``1/n``) of the honest vectors; ByzFL's ``ALittleIsEnough(tau=1.5)``.
* ``ipm`` (inner-product manipulation, Xie, Koyejo and Gupta, UAI 2020): ``-tau * mu``; ByzFL's
  ``InnerProductManipulation(tau=2.0)``.

They draw no randomness. They need the honest vectors, which the CEAS round passes to
:meth:`OmniscientAttack.apply_groups` as ``honest`` (``(groups, n, P)``, one block per network); called without
them they raise a :class:`~ceas_gym.config.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ceas_gym.config import ConfigError, check_range
from ceas_gym.learning.attacks import ATTACKS, Attack

__all__ = ["ALittleIsEnoughAttack", "InnerProductManipulationAttack", "OmniscientAttack"]


class OmniscientAttack(Attack):
    """Base class: one vector per network computed from its honest vectors, sent by all its Byzantine nodes."""

    needs_honest = True
    """The round passes the honest vectors of each network to :meth:`apply_groups`."""

    def from_honest(self, honest: torch.Tensor) -> torch.Tensor:
        """The attack vector of each network from its honest vectors: ``(G, n, P) -> (G, P)``."""
        raise NotImplementedError

    def __call__(
        self,
        updates: torch.Tensor,
        round_index: int,
        generator: torch.Generator,
        honest: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One network's Byzantine rows ``(B, P)`` given its honest vectors ``(n, P)``."""
        return self.apply_groups(updates, [updates.shape[0]], [round_index], [generator], honest=_one(honest))

    def apply_groups(
        self,
        updates: torch.Tensor,
        sizes: Sequence[int],
        round_indices: Sequence[int],
        generators: Sequence[torch.Generator],
        honest: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Every row of group ``g`` becomes the attack vector of the honest block ``honest[g]``.

        Raises:
            ConfigError: Without ``honest``, or with one block per group missing.
        """
        del round_indices, generators
        if honest is None:
            raise ConfigError(
                f"attack {type(self).__name__}: needs the honest nodes' vectors of each network (the CEAS round "
                "passes them); it cannot attack from the Byzantine rows alone"
            )
        if honest.ndim != 3 or honest.shape[0] != len(sizes) or honest.shape[1] < 1:
            raise ConfigError(
                f"honest: expected (groups = {len(sizes)}, n >= 1, P) honest vectors, got {tuple(honest.shape)}"
            )
        vectors = self.from_honest(honest.to(updates.dtype))
        counts = torch.as_tensor(list(sizes), device=vectors.device)
        return vectors.repeat_interleave(counts, dim=0)


def _one(honest: torch.Tensor | None) -> torch.Tensor | None:
    return None if honest is None else honest[None]


@ATTACKS.register("alie")
class ALittleIsEnoughAttack(OmniscientAttack):
    """``mu + tau * sigma`` of the honest vectors (see the module docstring).

    Args:
        tau: The attack factor (ByzFL's default 1.5).
    """

    def __init__(self, tau: float = 1.5) -> None:
        check_range("ALittleIsEnoughAttack.tau", tau, -100.0, 100.0)
        self.tau = float(tau)

    def from_honest(self, honest: torch.Tensor) -> torch.Tensor:
        """``mean + tau * std`` (population) per network and coordinate."""
        return honest.mean(dim=1) + self.tau * honest.std(dim=1, correction=0)


@ATTACKS.register("ipm")
class InnerProductManipulationAttack(OmniscientAttack):
    """``-tau * mu`` of the honest vectors (see the module docstring).

    Args:
        tau: The attack factor (ByzFL's default 2.0).
    """

    def __init__(self, tau: float = 2.0) -> None:
        check_range("InnerProductManipulationAttack.tau", tau, -100.0, 100.0)
        self.tau = float(tau)

    def from_honest(self, honest: torch.Tensor) -> torch.Tensor:
        """``-tau * mean`` per network and coordinate."""
        return -self.tau * honest.mean(dim=1)
