"""Byzantine attacks on model updates (and the label-flip data attack), behind one registry.

Every attack is a class registered in :data:`ATTACKS`; an instance is called as

    attack(updates: Tensor (B, P), round_index: int, generator: torch.Generator) -> Tensor (B, P)

on the Byzantine rows only, and has ``poison_labels(labels, num_classes) -> labels`` for data-level attacks
(identity for update-level ones). Build one with :func:`make_attack` (``make_attack("scaling", factor=2.0)``).

Built-in attacks (CEAS Sec. IV; Liu et al., Sci China Inf Sci 2025, Sec. 5):

* ``gaussian``: ``W <- W + N(0, (0.6 sigma_W)^2)`` per coordinate, ``sigma_W`` the standard deviation
  (population, ``1/P``) of the coordinates of each update row (CEAS).
* ``reversal``: ``W <- -1.05 W`` (CEAS).
* ``scaling``: ``W <- 1.6 W`` (CEAS).
* ``sign-flip``: ``W <- -W`` (the "bit-flipping" attack of Liu et al.: gradients with inverted sign).
* ``gaussian-fixed``: ``W <- W + N(0, std^2)`` with a fixed ``std`` (default 0.1, Liu et al.).
* ``label-flip``: data level, label ``i -> C - 1 - i`` for ``C`` classes (Liu et al.); updates pass unchanged.
* ``alie`` and ``ipm`` (:mod:`ceas_gym.learning.omniscient_attacks`): omniscient attacks built from the honest
  nodes' vectors (ByzFL's ALIE and IPM).
* ``switching``: an adaptive attacker that changes between update-level attacks over time, either cycling
  (``schedule="cycle"``: attack ``(t // period) mod len``) or at random (``schedule="random"``: uniform choice per
  period of ``period`` rounds, drawn from ``numpy.random.default_rng([seed, t // period])`` so the choice is a
  pure function of the round and reproducible without state).

Users add their own with ``@ATTACKS.register("name")`` on a class following :class:`Attack`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ceas_gym.config import ConfigError, check_choice, check_int, check_range
from ceas_gym.learning.sampling import standard_normal
from ceas_gym.registry import Registry


class Attack:
    """Base class: an update-level identity that also leaves labels untouched."""

    data_level: bool = False
    """True when the attack acts on training labels rather than on updates."""

    needs_honest: bool = False
    """True when the attack crafts its rows from the honest nodes' vectors (``apply_groups(..., honest=...)``,
    :mod:`ceas_gym.learning.omniscient_attacks`)."""

    def __call__(self, updates: torch.Tensor, round_index: int, generator: torch.Generator) -> torch.Tensor:
        """Return attacked updates ``(B, P)`` for round ``round_index`` (rounds count from 0)."""
        return updates

    def poison_labels(self, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Return the labels a data-level attacker trains on (unchanged here)."""
        return labels

    def apply_groups(
        self,
        updates: torch.Tensor,
        sizes: Sequence[int],
        round_indices: Sequence[int],
        generators: Sequence[torch.Generator],
    ) -> torch.Tensor:
        """Attack several networks' rows at once: group ``g`` is the next ``sizes[g]`` rows of ``updates``.

        The result equals calling the attack on each group with its own round and generator, in group order (so
        each generator draws what it would draw alone). This default does exactly that; attacks whose arithmetic
        is row-wise override it with one tensor operation over all groups (their draws still come group by group).

        Args:
            updates: ``(sum(sizes), P)`` rows, group after group.
            sizes: Rows per group (>= 0).
            round_indices: Round of each group (rounds count from 0).
            generators: Generator of each group.

        Returns:
            ``(sum(sizes), P)`` attacked rows.
        """
        return map_groups(updates, sizes, self.__call__, round_indices, generators)


def map_groups(rows: torch.Tensor, sizes: Sequence[int], function: Any, *per_group: Sequence[Any]) -> torch.Tensor:
    """``function(group, *args_g)`` for each non-empty group of rows (the next ``sizes[g]``), concatenated in order.

    Args:
        rows: ``(sum(sizes), P)`` rows, group after group.
        sizes: Rows per group (>= 0); an empty group calls nothing (so draws nothing from its generator).
        function: Called as ``function(group, *[arguments[g] for arguments in per_group])``; returns the group's rows.
        per_group: Sequences with one argument per group.
    """
    pieces = [
        function(group, *arguments)
        for group, *arguments in zip(rows.split(list(sizes)), *per_group, strict=True)
        if group.shape[0]
    ]
    return torch.cat(pieces) if pieces else rows.clone()


def grouped_standard_normal(
    like: torch.Tensor, sizes: Sequence[int], generators: Sequence[torch.Generator]
) -> torch.Tensor:
    """``N(0, 1)`` samples shaped like ``like``; group ``g`` (its next ``sizes[g]`` rows) from ``generators[g]``.

    Each group's block of one buffer on the generators' device is filled in place (the numbers
    :func:`standard_normal` draws for the group alone), and the buffer moves to ``like``'s device in one copy.
    """
    device = generators[0].device if len(generators) else like.device
    noise = torch.empty(like.shape, dtype=like.dtype, device=device)
    for block, generator in zip(noise.split(list(sizes)), generators, strict=True):
        if block.shape[0]:  # an empty group draws nothing from its generator
            block.normal_(generator=generator)
    return noise.to(like.device)


ATTACKS: Registry[type[Attack]] = Registry("attack")


def make_attack(name: str, **kwargs: Any) -> Attack:
    """Return an instance of the attack registered as ``name`` built with ``kwargs``."""
    return ATTACKS.get(name)(**kwargs)


def flip_labels(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Return ``C - 1 - labels`` (label ``i`` becomes ``C - 1 - i``); for two classes this swaps 0 and 1.

    Raises:
        ValueError: If a label lies outside ``[0, num_classes)``.
    """
    check_int("num_classes", num_classes, 2)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}]")
    return num_classes - 1 - labels


class RowwiseAttack(Attack):
    """An attack computed row by row from the updates and, where it draws any, standard-normal noise.

    A row's result depends only on that row and on ``N(0, 1)`` noise of the row's shape (``draws_noise``).
    Subclasses implement :meth:`rowwise`; a single call and a call over many groups (:meth:`Attack.apply_groups`,
    one draw per group from its generator) then share that one expression.
    """

    draws_noise: bool = True
    """Whether :meth:`rowwise` takes standard-normal noise shaped like the updates."""

    def rowwise(self, updates: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """Return the attacked rows ``(B, P)`` given the updates and the noise (None when ``draws_noise`` is off)."""
        raise NotImplementedError

    def __call__(self, updates: torch.Tensor, round_index: int, generator: torch.Generator) -> torch.Tensor:
        """Return :meth:`rowwise` of the updates, with noise from ``generator`` when the attack draws any."""
        return self.rowwise(updates, standard_normal(updates, generator) if self.draws_noise else None)

    def apply_groups(
        self,
        updates: torch.Tensor,
        sizes: Sequence[int],
        round_indices: Sequence[int],
        generators: Sequence[torch.Generator],
    ) -> torch.Tensor:
        """:meth:`Attack.apply_groups` as one :meth:`rowwise` over all rows (one draw per group)."""
        noise = grouped_standard_normal(updates, sizes, generators) if self.draws_noise else None
        return self.rowwise(updates, noise)


@ATTACKS.register("gaussian")
class GaussianAttack(RowwiseAttack):
    """Add ``N(0, (relative_std * sigma_W)^2)`` noise, ``sigma_W`` the std of each update row.

    Args:
        relative_std: Noise std as a multiple of the row's std (CEAS: 0.6).
    """

    def __init__(self, relative_std: float = 0.6) -> None:
        check_range("GaussianAttack.relative_std", relative_std, 0.0, None)
        self.relative_std = relative_std

    def rowwise(self, updates: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """Return ``W + relative_std * sigma_W * xi``, ``xi ~ N(0, I)``."""
        sigma = updates.std(dim=-1, unbiased=False, keepdim=True)
        return updates + self.relative_std * sigma * noise


@ATTACKS.register("gaussian-fixed")
class GaussianFixedAttack(RowwiseAttack):
    """Add ``N(0, std^2)`` noise of a fixed standard deviation (Liu et al.: 0.1).

    Args:
        std: Noise standard deviation, in the units of the update (radians for circuit angles).
    """

    def __init__(self, std: float = 0.1) -> None:
        check_range("GaussianFixedAttack.std", std, 0.0, None)
        self.std = std

    def rowwise(self, updates: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """Return ``W + std * xi``, ``xi ~ N(0, I)``."""
        return updates + self.std * noise


class _ScaleAttack(RowwiseAttack):
    """Multiply every update by a constant factor."""

    default_factor = 1.0
    draws_noise = False

    def __init__(self, factor: float | None = None) -> None:
        factor = self.default_factor if factor is None else factor
        check_range(f"{type(self).__name__}.factor", factor, -1e6, 1e6)
        self.factor = factor

    def rowwise(self, updates: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """Return ``factor * W``."""
        return self.factor * updates


@ATTACKS.register("reversal")
class ReversalAttack(_ScaleAttack):
    """Weight reversal ``W <- -1.05 W`` (CEAS Sec. IV); ``factor`` overrides -1.05."""

    default_factor = -1.05


@ATTACKS.register("scaling")
class ScalingAttack(_ScaleAttack):
    """Scaling ``W <- 1.6 W`` (CEAS Sec. IV); ``factor`` overrides 1.6."""

    default_factor = 1.6


@ATTACKS.register("sign-flip")
class SignFlipAttack(_ScaleAttack):
    """Sign flipping ``W <- -W`` (the bit-flipping attack of Liu et al.)."""

    default_factor = -1.0


@ATTACKS.register("label-flip")
class LabelFlipAttack(Attack):
    """Data-level label flipping ``i -> C - 1 - i``; updates pass unchanged."""

    data_level = True

    def poison_labels(self, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Return ``C - 1 - labels``."""
        return flip_labels(labels, num_classes)


SCHEDULES = ("cycle", "random")


@ATTACKS.register("switching")
class SwitchingAttack(Attack):
    """An adaptive attacker that changes between update-level attacks over time.

    Args:
        attacks: Names (default keyword arguments) or instances of update-level attacks.
        schedule: ``"cycle"`` or ``"random"``.
        period: Rounds between switches (>= 1).
        seed: Seed of the random schedule.
    """

    def __init__(
        self,
        attacks: Sequence[str | Attack] = ("gaussian", "reversal", "scaling"),
        schedule: str = "cycle",
        period: int = 1,
        seed: int = 0,
    ) -> None:
        if isinstance(attacks, str) or len(attacks) == 0:
            raise ConfigError("SwitchingAttack.attacks must be a non-empty list of attack names or instances")
        check_choice("SwitchingAttack.schedule", schedule, SCHEDULES)
        check_int("SwitchingAttack.period", period, 1)
        check_int("SwitchingAttack.seed", seed, 0)
        built = [make_attack(item) if isinstance(item, str) else item for item in attacks]
        for item in built:
            if item.data_level or isinstance(item, SwitchingAttack):
                raise ConfigError(
                    f"SwitchingAttack.attacks: {type(item).__name__} is not an update-level attack; "
                    f"allowed: {', '.join(name for name in ATTACKS.names() if name not in ('label-flip', 'switching'))}"
                )
        self.attacks = built
        self.needs_honest = any(item.needs_honest for item in built)
        self.schedule = schedule
        self.period = period
        self.seed = seed

    def active_index(self, round_index: int) -> int:
        """Return the index (into ``attacks``) of the attack used in round ``round_index``."""
        check_int("round_index", round_index, 0)
        epoch = round_index // self.period
        if self.schedule == "cycle":
            return epoch % len(self.attacks)
        return int(np.random.default_rng([self.seed, epoch]).integers(len(self.attacks)))

    def __call__(self, updates: torch.Tensor, round_index: int, generator: torch.Generator) -> torch.Tensor:
        """Apply the attack active in ``round_index``."""
        return self.attacks[self.active_index(round_index)](updates, round_index, generator)

    def apply_groups(
        self,
        updates: torch.Tensor,
        sizes: Sequence[int],
        round_indices: Sequence[int],
        generators: Sequence[torch.Generator],
        honest: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hand all groups to the active attack when every group is in the same phase; else group by group.

        ``honest`` (``(groups, n, P)``) reaches the attacks that need it (omniscient ones); the others ignore it.
        """
        active = {self.active_index(int(round_index)) for round_index in round_indices}
        if len(active) == 1:
            return self._apply(self.attacks[active.pop()], updates, sizes, round_indices, generators, honest)

        def one_group(rows: torch.Tensor, round_index: int, generator: torch.Generator, block: Any) -> torch.Tensor:
            chosen = self.attacks[self.active_index(int(round_index))]
            return self._apply(chosen, rows, [rows.shape[0]], [round_index], [generator], block)

        blocks = [None] * len(sizes) if honest is None else list(honest.split(1))
        return map_groups(updates, sizes, one_group, round_indices, generators, blocks)

    @staticmethod
    def _apply(
        attack: Attack,
        updates: torch.Tensor,
        sizes: Sequence[int],
        round_indices: Sequence[int],
        generators: Sequence[torch.Generator],
        honest: torch.Tensor | None,
    ) -> torch.Tensor:
        """``attack.apply_groups``, handing ``honest`` only to an attack that needs it (others do not take it)."""
        if attack.needs_honest:
            return attack.apply_groups(updates, sizes, round_indices, generators, honest=honest)
        return attack.apply_groups(updates, sizes, round_indices, generators)


__all__ = [
    "ATTACKS",
    "Attack",
    "GaussianAttack",
    "GaussianFixedAttack",
    "LabelFlipAttack",
    "ReversalAttack",
    "RowwiseAttack",
    "ScalingAttack",
    "SignFlipAttack",
    "SwitchingAttack",
    "flip_labels",
    "grouped_standard_normal",
    "make_attack",
    "map_groups",
]
