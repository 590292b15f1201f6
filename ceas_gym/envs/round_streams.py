"""The random streams of E copies of a CEAS round: per-copy draws that reproduce single copies, or shared ones.

Every copy owns a ``numpy.random.Generator`` (its ``np_random``: generation successes, data, participants, QDS
key bits) and a ``torch.Generator`` (initial parameters, attack noise, transport noise), seeded at reset from its
``np_random`` as a single environment seeds its own. With per-copy streams (the default) every draw of a round is
made copy after copy from that copy's generators, in the order a single copy makes it, so copy ``i`` of a batch
reproduces a batch of one seeded like it. With shared streams every draw comes from the first copy's generators in
one call (faster with hundreds of copies; copies stay seeded and deterministic but no longer reproduce single
copies). Resets always draw each copy's data and parameters from its own stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ceas_gym.consensus.gossip import Perturb
from ceas_gym.learning.attacks import grouped_standard_normal
from ceas_gym.learning.sampling import standard_normal
from ceas_gym.learning.transport import receive

BATCH_STREAMS = ("per-copy", "shared")
"""Choices of the batched environment's ``batch_streams``."""


class CopyStreams:
    """The ``np_random`` and torch generator of each of ``copies`` copies (see the module docstring).

    Args:
        copies: Number of copies E, >= 1.
        shared: Draw every per-round number from the first copy's generators.
    """

    def __init__(self, copies: int, shared: bool = False) -> None:
        self.copies = copies
        self.shared = shared
        self.np_randoms: list[np.random.Generator] = [np.random.default_rng() for _ in range(copies)]
        self.generators = [torch.Generator(device="cpu") for _ in range(copies)]

    def start_episode(self, copy: int, rng: np.random.Generator) -> torch.Generator:
        """Make ``rng`` copy ``copy``'s stream and seed its torch generator from it (one draw); return that."""
        self.np_randoms[copy] = rng
        generator = self.generators[copy]
        generator.manual_seed(int(rng.integers(0, 2**63 - 1)))
        return generator

    def np_random(self, copy: int) -> np.random.Generator:
        """The generator copy ``copy`` draws its per-round numbers from."""
        return self.np_randoms[0 if self.shared else copy]

    def generator(self, copy: int) -> torch.Generator:
        """The torch generator copy ``copy`` draws its per-round noise from."""
        return self.generators[0 if self.shared else copy]

    def round_generators(self) -> list[torch.Generator]:
        """One torch generator per copy for this round's grouped draws."""
        return [self.generator(copy) for copy in range(self.copies)]

    def binomial(self, attempts: np.ndarray, probability: np.ndarray) -> np.ndarray:
        """Successes of ``attempts`` ``(E x L,)`` trials at ``probability`` ``(E x L,)``, ``(E x L,)`` int64.

        Per copy, one draw of its ``L`` links from its stream (NumPy cannot draw from many generators in one call).
        """
        if self.shared:
            return self.np_randoms[0].binomial(attempts, probability).astype(np.int64)
        rows = np.split(attempts, self.copies)
        chances = np.split(probability, self.copies)
        draws = [rng.binomial(row, p) for rng, row, p in zip(self.np_randoms, rows, chances, strict=True)]
        return np.concatenate(draws).astype(np.int64)

    def uniforms(self, per_copy: int) -> np.ndarray:
        """``per_copy`` uniform draws in [0, 1) for every copy, ``(E, per_copy)``: one draw per copy from its stream."""
        if self.shared:
            return self.np_randoms[0].random((self.copies, per_copy))
        return np.stack([rng.random(per_copy) for rng in self.np_randoms])

    def transport(self, copy_of_message: np.ndarray, receiver: str) -> Perturb:
        """The transport-noise hook for messages belonging to copies ``copy_of_message`` ``(M,)``.

        Each copy's noise is drawn for its messages in their order (what that copy alone draws), then scattered
        back to the messages' positions where the copies' messages are interleaved (gossip's senders, then
        receivers).
        """
        grouped_in_order = self.shared or self.copies == 1 or bool(np.all(np.diff(copy_of_message) >= 0))
        order = None if grouped_in_order else np.argsort(copy_of_message, kind="stable")
        sizes = np.bincount(copy_of_message, minlength=self.copies).tolist()

        def perturb(messages: torch.Tensor, fidelity: torch.Tensor) -> torch.Tensor:
            if self.shared or self.copies == 1:
                noise = standard_normal(messages, self.generators[0])
            else:
                noise = grouped_standard_normal(messages, sizes, self.generators)
            if order is not None:  # scatter each copy's block back to its messages' positions
                scattered = torch.empty_like(noise)
                scattered[torch.as_tensor(order, device=noise.device)] = noise
                noise = scattered
            return receive(messages, fidelity.to(messages.dtype), noise, receiver)

        return perturb

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["generators"] = [generator.get_state() for generator in self.generators]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        saved = state.pop("generators")
        self.__dict__.update(state)
        self.generators = [torch.Generator(device="cpu") for _ in saved]
        for generator, generator_state in zip(self.generators, saved, strict=True):
            generator.set_state(generator_state)
