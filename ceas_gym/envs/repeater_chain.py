"""``RepeaterChain-v0``: swap scheduling in a homogeneous quantum-repeater chain with memory cutoffs.

The model (all times in rounds; one round = one environment step):

* **Chain.** ``n_nodes`` nodes ``0 .. n-1`` joined by ``n - 1`` elementary links; link ``l`` joins nodes ``l`` and
  ``l + 1``. Every node has one memory qubit per side. A stored Bell pair joins two nodes ``i < j`` and *spans*
  the links ``i .. j-1``; stored pairs never overlap (their spans are disjoint intervals), because a link spanned
  by a pair is not attempted (see *Generate*). The chain state is therefore a set of disjoint segments
  ``(i, j, age)``; this is the "segments" state of the standard repeater-chain MDP (Iñesta, Vardoyan, Scavuzzo and
  Wehner, "Optimal entanglement distribution policies in homogeneous repeater chains with cutoffs",
  npj Quantum Inf. 9, 46 (2023)).
* **Generate.** Every link not spanned by a stored pair attempts once per round and succeeds independently with
  probability ``p``. A new pair has age 0 and Werner fidelity ``F0``.
* **Age and cutoff.** Every stored pair ages by one round per round; a pair whose age exceeds ``t_cut`` is
  discarded, so a pair is usable at ages ``0 .. t_cut`` (``t_cut + 1`` rounds in all). A link emptied by the
  cutoff attempts again in the same round (ageing comes before generation).
* **Decoherence.** A stored pair is a Werner state that depolarises with memory coherence time ``T`` (rounds):
  a fresh pair has ``F(age) = 1/4 + (F0 - 1/4) exp(-age / T)``; in general every round multiplies the Werner
  parameter ``w = (4F - 1) / 3`` by ``exp(-1 / T)``. ``T = inf`` means no decay.
* **Swap.** The agent chooses the intermediate nodes that swap. A swap at node ``i`` is *feasible* only if ``i``
  holds a pair to each side, i.e. ``i`` is the right end of one stored pair and the left end of another; a swap
  asked of any other node is ignored (no effect, counted in ``info["ignored_swaps"]``). Each feasible swap
  succeeds independently with probability ``p_s``. Swaps at neighbouring swapping nodes chain: the pairs joined
  by a run of swapping nodes form one *group*; if every swap in the group succeeds the group becomes one pair
  between its outer ends, otherwise every pair of the group is lost (a failed Bell-state measurement destroys
  both pairs it acts on, and whatever they were being joined to). The new pair's **age is the age of its oldest
  constituent** (so the cutoff bounds the storage time of every qubit in it) and its Werner parameter is the
  product of the constituents' parameters, i.e. for two pairs ``F = F1 F2 + (1 - F1)(1 - F2) / 3``.
* **Delivery.** The goal is a pair between node 0 and node ``n - 1``; it is delivered (and the episode
  terminates) as soon as it exists after the swaps of a round.

**Event order.** Round ``k`` is: (a) age all stored pairs and apply the cutoff; (b) generate on every link not
spanned by a pair; (c) the agent sees the chain and chooses swaps; (d) swaps; if the end-to-end pair exists it is
delivered. ``reset`` runs (a)-(b) of round 1 on an empty chain and returns the chain before (c); each ``step``
runs (c)-(d) of the current round and, unless delivery ended the episode, (a)-(b) of the next round. So the
number of steps of an episode is the delivery time in rounds counted from the empty chain, and the agent always
decides with full knowledge of the round's generation outcome. With this order, ``n = 3``, ``p_s = 1`` and
``t_cut = 2``, swap-asap (which is then optimal) has expected delivery time
``T(p) = (2p^3 - 6p^2 + 4p + 1) / (2p^4 - 6p^3 + 5p^2)`` rounds (``T(1) = 1``, ``T(0.5) = 2.8``).

**Randomness.** Every step draws exactly ``n - 2`` uniforms for swap outcomes and then ``n - 1`` uniforms for
generation from the env's ``np_random`` (whether used or not), so trajectories are reproducible from the seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ceas_gym.config import ConfigError, from_dict, replace
from ceas_gym.envs.actions import as_action_array
from ceas_gym.envs.episode import EpisodeGuard
from ceas_gym.envs.repeater_chain_model import (
    ChainState,
    RepeaterChainConfig,
    chain_state_from_observation,
    fidelity_from_werner,
    node_pair_index,
    validate_chain_state,
    werner_fidelity,
    werner_from_fidelity,
    werner_swap_fidelity,
)

__all__ = [
    "ChainState",
    "RepeaterChainConfig",
    "RepeaterChainEnv",
    "chain_state_from_observation",
    "node_pair_index",
    "validate_chain_state",
    "werner_fidelity",
    "werner_swap_fidelity",
]


class RepeaterChainEnv(EpisodeGuard, gym.Env[dict[str, np.ndarray], np.ndarray]):
    """Schedule entanglement swaps in a repeater chain to deliver one end-to-end Bell pair as fast as possible.

    ## Description

    A homogeneous chain of ``n_nodes`` quantum repeaters. Every round each elementary link not spanned by a
    stored pair attempts entanglement generation (success probability ``p``); stored pairs age and are
    discarded past the cutoff ``t_cut``; the agent chooses which intermediate nodes perform an entanglement swap
    (success probability ``p_s``). The episode ends when nodes ``0`` and ``n_nodes - 1`` share a pair. The full
    model, the event order within a round and the conventions (age of a swapped pair = age of its oldest
    constituent; a failed swap loses its whole group) are in the module docstring and ``docs/repeater_chain.md``.

    ## Action Space

    ``MultiBinary(n_nodes - 2)``: entry ``k`` is 1 if intermediate node ``k + 1`` should swap. A swap at a node
    that does not hold a pair to each side is ignored; :meth:`action_masks` marks those swaps for masked policies
    (sb3-contrib's ``MaskablePPO``). A 2-node chain has no intermediate node; its action is a single bit that is
    ignored (Gymnasium has no empty ``MultiBinary``).

    ## Observation Space

    A flat ``Dict`` of ``float32`` ``Box`` arrays, one entry per node pair ``(i, j)``, ``i < j``, in row-major
    upper-triangle order (:func:`node_pair_index`). The stored pairs and their ages are the Markov state of the
    delivery-time MDP; fidelities are carried for information and for fidelity-aware policies.

    | Key             | Shape                        | Min  | Max     | Meaning                                     |
    |-----------------|------------------------------|------|---------|---------------------------------------------|
    | `pair_age`      | `(n_nodes (n_nodes - 1)/2,)` | -1   | `t_cut` | age in rounds of the pair (i, j), -1 if none |
    | `pair_fidelity` | `(n_nodes (n_nodes - 1)/2,)` | 0    | 1       | Werner fidelity of the pair (i, j), 0 if none |

    ## Rewards

    -1 per step, including the step that delivers, so the return is minus the delivery time in rounds.

    ## Starting State

    The empty chain after the first round's generation: each link independently holds a fresh pair (age 0,
    fidelity ``F0``) with probability ``p``.

    ## Episode End

    1. Termination: the end-to-end pair (0, ``n_nodes - 1``) exists after a step's swaps (it is delivered;
       ``info["delivered_fidelity"]`` is its fidelity).
    2. Truncation: ``max_steps`` steps without delivery.

    ## Arguments

    ``RepeaterChainEnv(config=None, render_mode=None, **overrides)``: ``config`` is a
    :class:`RepeaterChainConfig` or a mapping (strict: unknown keys raise :class:`~ceas_gym.config.ConfigError`);
    ``overrides`` replace single fields, e.g. ``gym.make("ceas_gym/RepeaterChain-v0", n_nodes=5, p=0.3)``.
    ``render_mode`` is ``None`` or ``"ansi"`` (a one-line picture of the chain).

    ## Version History

    * v0: Initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        config: RepeaterChainConfig | Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        if config is None:
            config = RepeaterChainConfig()
        elif isinstance(config, Mapping):
            config = from_dict(RepeaterChainConfig, config)
        elif not isinstance(config, RepeaterChainConfig):
            raise ConfigError(f"RepeaterChainEnv.config: expected RepeaterChainConfig or a mapping, got {config!r}")
        if overrides:
            config = replace(config, **overrides)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"RepeaterChainEnv.render_mode = {render_mode!r} is not allowed; choose one of None, 'ansi'"
            )
        self.config: RepeaterChainConfig = config
        self.render_mode = render_mode

        n, n_pairs = config.n_nodes, config.n_node_pairs
        # Gymnasium has no empty MultiBinary: a 2-node chain (no intermediate node) takes one bit that is ignored.
        self.action_space = spaces.MultiBinary(max(n - 2, 1))
        self.observation_space = spaces.Dict(
            {
                "pair_age": spaces.Box(-1.0, float(config.t_cut), shape=(n_pairs,), dtype=np.float32),
                "pair_fidelity": spaces.Box(0.0, 1.0, shape=(n_pairs,), dtype=np.float32),
            }
        )
        self._pair_index = node_pair_index(n)
        self._decay = math.exp(-1.0 / config.coherence_rounds)
        self._werner0 = (4.0 * config.fidelity0 - 1.0) / 3.0
        # Stored pairs indexed by left node (only 0 .. n-2 can be a left end): right node (-1: none), age, Werner w.
        self._right = np.full(n - 1, -1, dtype=np.int64)
        self._age = np.zeros(n - 1, dtype=np.int64)
        self._werner = np.zeros(n - 1, dtype=np.float64)
        self._steps = 0

    # ------------------------------------------------------------------ state access
    def chain_state(self) -> ChainState:
        """Return the stored pairs ``(left, right, age)`` sorted by left node (the MDP state)."""
        left = np.flatnonzero(self._right >= 0)
        return tuple((int(i), int(self._right[i]), int(self._age[i])) for i in left)

    def pair_fidelities(self) -> dict[tuple[int, int], float]:
        """Return the Werner fidelity of every stored pair, keyed by ``(left, right)``."""
        left = np.flatnonzero(self._right >= 0)
        fidelity = fidelity_from_werner(self._werner[left])
        return {(int(i), int(self._right[i])): float(f) for i, f in zip(left, fidelity, strict=True)}

    def set_chain_state(
        self, pairs: Iterable[tuple[int, int, int]], fidelities: Iterable[float] | None = None
    ) -> dict[str, np.ndarray]:
        """Overwrite the chain state (for testing, solvers and what-if analysis); returns the new observation.

        The episode runs on from the state set here, also after one had ended (delivered or truncated).

        Args:
            pairs: Stored pairs ``(left, right, age)``; spans must be disjoint and ages in ``0 .. t_cut``.
            fidelities: Fidelity of each pair in the order of ``sorted(pairs)``; by default an elementary
                pair's decay law ``F(age)`` is used for every pair.
        """
        state = validate_chain_state(pairs, self.config)
        left = np.array([pair[0] for pair in state], dtype=np.int64)
        right = np.array([pair[1] for pair in state], dtype=np.int64)
        age = np.array([pair[2] for pair in state], dtype=np.int64)
        if fidelities is None:
            fidelity = werner_fidelity(age, self.config.fidelity0, self.config.coherence_rounds)
        else:
            fidelity = np.asarray(list(fidelities), dtype=np.float64)
            if fidelity.shape != left.shape or np.any((fidelity < 0) | (fidelity > 1)):
                raise ValueError(f"fidelities: need {left.size} values in [0, 1], got {fidelity.tolist()}")
        self._right.fill(-1)
        self._right[left] = right
        self._age[left] = age
        self._werner[left] = werner_from_fidelity(fidelity)
        self._start_episode()  # stepping continues from the state set here
        return self._observation()

    # ------------------------------------------------------------------ dynamics
    def _age_and_cut(self) -> int:
        """Age every stored pair one round and discard those past the cutoff; returns the number discarded."""
        stored = self._right >= 0
        self._age[stored] += 1
        self._werner[stored] *= self._decay
        expired = stored & (self._age > self.config.t_cut)
        self._right[expired] = -1
        return int(expired.sum())

    def _generate(self) -> int:
        """One attempt on every link not spanned by a stored pair; returns the number of new pairs."""
        n = self.config.n_nodes
        left = np.flatnonzero(self._right >= 0)
        span_change = np.zeros(n, dtype=np.int64)
        span_change[left] += 1
        span_change[self._right[left]] -= 1
        spanned = np.cumsum(span_change)[:-1] > 0
        success = self.np_random.random(n - 1) < self.config.p
        new = np.flatnonzero(success & ~spanned)
        self._right[new] = new + 1
        self._age[new] = 0
        self._werner[new] = self._werner0
        return int(new.size)

    def _swap_feasible(self) -> np.ndarray:
        """Nodes holding a stored pair to each side (where a swap can happen). ``(n_nodes,)`` bool."""
        n = self.config.n_nodes
        left = np.flatnonzero(self._right >= 0)
        has_left = np.zeros(n, dtype=bool)
        has_left[self._right[left]] = True
        has_right = np.zeros(n, dtype=bool)
        has_right[left] = True
        return has_left & has_right

    def action_masks(self) -> np.ndarray:
        """Which value of each action bit is meaningful now, for sb3-contrib's ``MaskablePPO``.

        Returns:
            ``(2 x bits,)`` bool, ``[0 allowed, 1 allowed]`` per bit (sb3-contrib's layout for ``MultiBinary`` and
            ``MultiDiscrete([2] * bits)``): 0 is always allowed; 1 only at a node holding a pair to each side
            (elsewhere the swap would be ignored). The ignored bit of a 2-node chain allows 0 only.
        """
        n = self.config.n_nodes
        bits = self.action_space.shape[0]
        swap_allowed = np.zeros(bits, dtype=bool)
        swap_allowed[: n - 2] = self._swap_feasible()[1 : n - 1]
        return np.stack([np.ones(bits, dtype=bool), swap_allowed], axis=1).ravel()

    def _swap(self, wants: np.ndarray) -> dict[str, int]:
        """Perform the requested swaps (``wants``: bool per node, length ``n_nodes``) with group semantics."""
        n = self.config.n_nodes
        outcome = self.np_random.random(n - 2) < self.config.p_s
        swap_ok = np.zeros(n, dtype=bool)
        swap_ok[1 : n - 1] = outcome
        left = np.flatnonzero(self._right >= 0)
        right = self._right[left]
        ignored = int((wants & ~self._swap_feasible()).sum())
        if left.size < 2:
            return {"swaps_attempted": 0, "swaps_succeeded": 0, "ignored_swaps": ignored, "pairs_lost": 0}
        # Pair m joins pair m + 1 when they meet at a node that swaps (disjoint sorted spans meet iff equal ends).
        meet = right[:-1] == left[1:]
        joins = meet & wants[right[:-1]]
        join_failed = joins & ~swap_ok[right[:-1]]
        starts = np.flatnonzero(np.concatenate(([True], ~joins)))
        group_right = right[np.concatenate((starts[1:], [left.size])) - 1]
        group_age = np.maximum.reduceat(self._age[left], starts)
        group_werner = np.multiply.reduceat(self._werner[left], starts)
        group_failed = np.add.reduceat(np.concatenate((join_failed, [False])).astype(np.int64), starts) > 0
        group_size = np.diff(np.concatenate((starts, [left.size])))
        self._right.fill(-1)
        kept = ~group_failed
        group_left = left[starts]
        self._right[group_left[kept]] = group_right[kept]
        self._age[group_left[kept]] = group_age[kept]
        self._werner[group_left[kept]] = group_werner[kept]
        return {
            "swaps_attempted": int(joins.sum()),
            "swaps_succeeded": int((joins & swap_ok[right[:-1]]).sum()),
            "ignored_swaps": ignored,
            "pairs_lost": int(group_size[group_failed].sum()),
        }

    def _observation(self) -> dict[str, np.ndarray]:
        left = np.flatnonzero(self._right >= 0)
        index = self._pair_index[left, self._right[left]]
        age = np.full(self.config.n_node_pairs, -1.0, dtype=np.float32)
        fidelity = np.zeros(self.config.n_node_pairs, dtype=np.float32)
        age[index] = self._age[left]
        fidelity[index] = np.clip(fidelity_from_werner(self._werner[left]), 0.0, 1.0)
        return {"pair_age": age, "pair_fidelity": fidelity}

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start from an empty chain and run the first round's generation.

        Args:
            seed: Seed for the env's ``np_random``.
            options: Not used; must be None or empty.

        Returns:
            The observation and ``info`` (see :meth:`step`).
        """
        super().reset(seed=seed)
        if options:
            raise ValueError(f"RepeaterChainEnv.reset: options are not supported, got keys {sorted(options)}")
        self._right.fill(-1)
        self._steps = 0
        generated = self._generate()
        info = {"round": 1, "delivered": False, "delivered_fidelity": 0.0, "pairs_generated": generated}
        self._start_episode()
        return self._observation(), info

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Swap at the chosen nodes; deliver or run the next round's ageing, cutoff and generation.

        Args:
            action: ``(n_nodes - 2,)`` array of 0/1, entry ``k`` for node ``k + 1`` (``(1,)``, ignored, if
                ``n_nodes == 2``).

        Returns:
            ``(observation, reward, terminated, truncated, info)``; ``info`` holds ``round`` (1-based round of
            the returned observation), ``delivered``, ``delivered_fidelity`` (0 unless delivered),
            ``swaps_attempted``, ``swaps_succeeded``, ``ignored_swaps``, ``pairs_lost`` (in failed swaps),
            ``pairs_expired`` (cutoff) and ``pairs_generated``.
        """
        self._check_can_step()
        n = self.config.n_nodes
        entries = f"{self.action_space.shape[0]} entries of 0 or 1"
        flags = as_action_array(action, self.action_space.shape, str(self.action_space.dtype), True, entries)
        if not np.all((flags == 0) | (flags == 1)):
            raise ValueError(f"action: expected {entries}, got {flags.tolist()}")
        wants = np.zeros(n, dtype=bool)
        wants[1 : n - 1] = flags[: n - 2].astype(bool)
        self._steps += 1
        info: dict[str, Any] = self._swap(wants)
        delivered = bool(self._right[0] == n - 1)
        info["delivered"] = delivered
        info["delivered_fidelity"] = float(fidelity_from_werner(self._werner[0])) if delivered else 0.0
        observation = self._observation()
        if delivered:
            info.update(round=self._steps, pairs_expired=0, pairs_generated=0)
        else:
            info["pairs_expired"] = self._age_and_cut()
            info["pairs_generated"] = self._generate()
            info["round"] = self._steps + 1
            observation = self._observation()
        truncated = not delivered and self._steps >= self.config.max_steps
        self._end_episode_if(delivered or truncated)
        return observation, -1.0, delivered, truncated, info

    def render(self) -> str | None:
        """Return a one-line picture of the chain (``render_mode="ansi"``), e.g. ``o==3==o=====o     o--1--o``.

        Nodes are ``o``; a stored pair is drawn over the links it spans with its age on its first link (``=`` for
        a swapped pair, ``-`` for an elementary one); an empty link is blank. Fidelities follow after ``|``.
        """
        if self.render_mode is None:
            gym.logger.warn("RepeaterChainEnv.render() called without render_mode; pass render_mode='ansi'")
            return None
        links = ["     "] * self.config.n_links
        for left, right, age in self.chain_state():
            fill = "-" if right - left == 1 else "="
            links[left:right] = [fill * 5] * (right - left)
            links[left] = str(age).center(5, fill)
        fidelities = self.pair_fidelities()
        detail = ", ".join(f"({i},{j}) F={f:.3f}" for (i, j), f in fidelities.items())
        return "o" + "".join(link + "o" for link in links) + (f"  | {detail}" if detail else "")
