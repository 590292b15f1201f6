"""E copies of a CEAS environment stepped in lock-step as one tensor computation (a ``gymnasium.vector.VectorEnv``).

:class:`BatchedEntanglementSchedulingEnv` runs ``num_envs`` copies of ``EntanglementScheduling-v0`` / ``-Small-v0``
(same configuration, so the same network instance) as one network of ``num_envs x N`` nodes made of disconnected
copies (:func:`~ceas_gym.envs.instance.disjoint_union`):

* the link layer holds one pair inventory over ``num_envs x E`` links (one array operation per round step);
* local training, attacks, stamps, the QFI refresh, the probe predictions and the test evaluation run as one batched
  torch computation over ``num_envs x N`` nodes (each copy on its own data);
* gossip runs over the union graph (its mixing and pair requests are per link and per node, so the copies do not
  mix); BFT bookkeeping (rolling divergence, quantile threshold, checkpoints) stays per copy, on ``(N,)`` arrays.

Randomness stays per copy: each copy has its own ``np_random`` (seeded like a single environment's) and its own
torch generator, and draws exactly the numbers a single environment draws, in the same order (generation successes,
data, initial parameters, attack noise, transport noise). With the same seeds and actions the copies follow the
trajectories of ``num_envs`` single environments (``tests/test_batched_env.py`` checks observations, rewards and
infos: the discrete state exactly, and the loss, stamps and ``mean_delivered_fidelity`` to float32 rounding, since a
batch of one and a batch of E run products of different shapes, whose kernels a CPU picks by shape).
Those per-round draws are a Python loop over the copies; with ``batch_streams="shared"`` (an option of this class,
not of :class:`CEASEnvConfig`) all copies take them from the first copy's generators in one call each instead:
faster with hundreds of copies, still seeded and deterministic, but the copies no longer reproduce single
environments (resets still draw each copy's data and initial parameters from its own stream).

Autoreset: ``AutoresetMode.SAME_STEP`` (declared in ``metadata``): a copy whose episode ends is reset within the
same :meth:`step`, its last observation and info go to ``info["final_obs"]`` / ``info["final_info"]`` (masked by
``info["_final_obs"]``), and the returned observation is the first of its new episode. The copies are reseeded
on autoreset from their own ``np_random`` streams (a reset without a seed continues the stream, as a single env's
does). Use :class:`~ceas_gym.envs.batched_sb3.BatchedVecEnv` to train stable-baselines3 on it, or
``gymnasium.make_vec(env_id, num_envs=64, vectorization_mode="vector_entry_point")`` for the two CEAS ids. Only the
``ceas`` protocol is batched (``random-selection`` and ``qba`` raise a ConfigError); rendering is not supported.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ceas_gym.config import ConfigError, check_choice
from ceas_gym.consensus.bft import BatchedBFTMonitor, bernoulli_kl, is_checkpoint_round
from ceas_gym.consensus.ceas_protocol import CEASProtocol
from ceas_gym.consensus.gossip import gossip_round
from ceas_gym.consensus.pairs import InventoryPairs
from ceas_gym.consensus.protocol import weighted_consensus
from ceas_gym.consensus.trust import update_trust
from ceas_gym.envs.actions import decode_schedule
from ceas_gym.envs.batched_rows import evaluate_rows, per_copy_fidelity, predict_rows
from ceas_gym.envs.ceas import EntanglementSchedulingEnv
from ceas_gym.envs.ceas_config import CEASEnvConfig
from ceas_gym.envs.ceas_outputs import RoundStats, round_infos, round_reward
from ceas_gym.envs.instance import disjoint_union
from ceas_gym.envs.link_layer import LinkLayer
from ceas_gym.envs.vector_helpers import copy_seeds, reset_mask, select_rows
from ceas_gym.learning.attacks import grouped_standard_normal
from ceas_gym.learning.data import make_federated_data
from ceas_gym.learning.sampling import standard_normal
from ceas_gym.learning.stamps import fidelity_stamp, qfi_trace_score
from ceas_gym.learning.training import local_train
from ceas_gym.learning.transport import receive

BATCH_STREAMS = ("per-copy", "shared")
"""Choices of :class:`BatchedEntanglementSchedulingEnv`'s ``batch_streams``."""


class BatchedEntanglementSchedulingEnv(VectorEnv):
    """``num_envs`` CEAS environments in lock-step (see the module docstring).

    Args:
        num_envs: Number of copies E, >= 1.
        preset: ``"small"`` or ``"paper"`` (as the single environment).
        config: An explicit :class:`CEASEnvConfig` instead of the preset.
        max_episode_steps: Truncate episodes after this many rounds if fewer than ``max_rounds`` (what
            ``gymnasium.make``'s ``TimeLimit`` does for a single environment; ``make_vec`` passes the registered value).
        batch_streams: Where the per-round draws (generation successes, attack and transport noise) come from:
            ``"per-copy"``, each copy's own generators, so copy ``i`` reproduces a single environment seeded like it
            (the default); or ``"shared"``, the first copy's generators for all copies, one call per draw instead of
            one per copy (faster with many copies; copies stay seeded and independent but no longer reproduce single
            environments). An option of the batch only: a single environment has one stream.
        **overrides: :class:`CEASEnvConfig` fields, as for the single environment.

    Raises:
        ConfigError: On ``num_envs < 1``, an unknown ``batch_streams``, a protocol other than ``ceas`` or a render
            mode.
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int,
        preset: str = "small",
        config: CEASEnvConfig | None = None,
        max_episode_steps: int | None = None,
        batch_streams: str = "per-copy",
        **overrides: Any,
    ) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ConfigError(f"num_envs = {num_envs!r}: expected an integer >= 1")
        check_choice("batch_streams", batch_streams, BATCH_STREAMS)
        self.batch_streams = batch_streams
        if overrides.get("render_mode") is not None:
            raise ConfigError("render_mode: the batched environment does not render; use a single environment")
        overrides.pop("render_mode", None)
        template = EntanglementSchedulingEnv(preset=preset, config=config, **overrides)
        if template.config.protocol != "ceas":
            raise ConfigError(
                f"protocol = {template.config.protocol!r}: the batched environment runs the 'ceas' protocol only"
            )
        self.template = template
        self.config: CEASEnvConfig = template.config
        if max_episode_steps is not None and (not isinstance(max_episode_steps, int) or max_episode_steps < 1):
            raise ConfigError(f"max_episode_steps = {max_episode_steps!r}: expected an integer >= 1 or None")
        horizon = self.config.max_rounds
        self.horizon = horizon if max_episode_steps is None else min(horizon, max_episode_steps)
        self.num_envs = num_envs
        self.instance = template.instance
        self.num_nodes, self.num_links = template.num_nodes, template.num_links
        self.lifetime_bins = template.lifetime_bins
        self.single_observation_space = template.observation_space
        self.single_action_space = template.action_space
        self.dict_observation_space: spaces.Dict = template.dict_observation_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode = None

        self.union = disjoint_union(self.instance, num_envs)
        self.layer = LinkLayer(self.union, queue_capacity=1, fidelity_floor=self.config.links.fidelity_floor)
        protocol: CEASProtocol = template.protocol  # type: ignore[assignment]
        self.protocol_config = protocol.config
        self.mixing_steps = protocol.mixing_steps
        self.monitor = BatchedBFTMonitor(protocol.config.bft, self.num_nodes, num_envs)

        training = template.training  # the single env's learning layer: model, noise and attack (stateless parts)
        self.model = training.model
        self.learning = self.config.learning
        self.attack = training.attack
        self.device = training.device
        self.shrink = training.shrink.repeat(num_envs)
        self.channel_infidelity = training.channel_infidelity.repeat(num_envs)
        byzantine = np.tile(self.instance.byzantine, (num_envs, 1))
        self._byzantine_rows = [np.flatnonzero(row) + e * self.num_nodes for e, row in enumerate(byzantine)]
        self._all_byzantine = torch.as_tensor(np.flatnonzero(byzantine.ravel()), device=self.device)
        self._env_of_link = np.repeat(np.arange(num_envs), self.num_links)

        self.np_randoms: list[np.random.Generator] = [seeding.np_random(None)[0] for _ in range(num_envs)]
        self.generators = [torch.Generator(device="cpu") for _ in range(num_envs)]
        self.shared_streams = batch_streams == "shared"
        self._allocate_state()

    # ------------------------------------------------------------------------------------------ state
    def _allocate_state(self) -> None:
        e, n, links = self.num_envs, self.num_nodes, self.num_links
        p = self.model.num_parameters
        dtype = self.model.dtype
        data = self.learning.data
        self.params = torch.zeros(e * n, p, dtype=dtype, device=self.device)
        device = self.device  # the learning layer's tensors live there; bookkeeping stays on the CPU
        self.train_features = torch.zeros(e * n, data.samples_per_node, data.num_features, dtype=dtype, device=device)
        self.train_labels = torch.zeros(e * n, data.samples_per_node, dtype=torch.long, device=device)
        self.test_features = torch.zeros(e, data.test_samples, data.num_features, dtype=dtype, device=device)
        self.test_labels = torch.zeros(e, data.test_samples, dtype=torch.long, device=device)
        self.pair_fidelity = torch.ones(e * n, dtype=torch.float64)
        self.qfi_score = torch.ones(e * n, dtype=torch.float64)
        self.trust = np.full((e, n), self.protocol_config.trust.initial)
        self.round_index = np.zeros(e, dtype=np.int64)
        self.accuracy = np.full(e, 0.5)
        self.loss = np.full(e, float(np.log(2.0)))
        self.stamps = np.ones((e, n))
        self.granted_fraction = np.ones((e, links))
        self.generated_total = np.zeros(e, dtype=np.int64)
        self.consumed_total = np.zeros(e, dtype=np.int64)

    @property
    def active(self) -> np.ndarray:
        """Active (not quarantined) nodes per copy. ``(num_envs, N)`` bool."""
        return self.monitor.active.copy()

    def _reset_copies(self, copies: np.ndarray, seeds: list[int | None]) -> None:
        """Reset the listed copies as a single environment's ``reset(seed)`` does, in the same order of draws."""
        if len(copies) == 0:  # an all-False reset mask: nothing to draw, and no rows to evaluate
            return
        n, links = self.num_nodes, self.num_links
        data_config = self.learning.data
        for copy, seed in zip(copies, seeds, strict=True):
            if seed is not None:
                self.np_randoms[copy] = seeding.np_random(int(seed))[0]
            rng = self.np_randoms[copy]
            nodes = slice(copy * n, (copy + 1) * n)
            self.layer.inventory.clear_links(np.arange(copy * links, (copy + 1) * links))
            self.trust[copy] = self.protocol_config.trust.initial
            generator = self.generators[copy]
            generator.manual_seed(int(rng.integers(0, 2**63 - 1)))
            data = make_federated_data(data_config, self.instance.byzantine, rng, device=self.device)
            dtype = self.model.dtype
            self.train_features[nodes] = data.train.features.to(dtype)
            self.train_labels[nodes] = data.train.labels
            self.test_features[copy] = data.test_features.to(dtype)
            self.test_labels[copy] = data.test_labels
            self.params[nodes] = self.model.init_parameters(n, generator, self.learning.init)
            self.pair_fidelity[nodes] = 1.0
            self.round_index[copy] = 0
            self.stamps[copy] = 1.0
            self.granted_fraction[copy] = 1.0
            self.generated_total[copy] = 0
            self.consumed_total[copy] = 0
        self.monitor.reset(np.asarray(copies, dtype=np.intp))
        # One tensor per episode for the probe rows (each copy's probe set once per row it scores), so the
        # circuit's encoding cache serves it every round instead of re-encoding the same samples.
        probes = self.test_features[:, : self.learning.probe_samples]
        self._probe_rows = probes.repeat_interleave(n + 1, dim=0)
        index = torch.as_tensor(np.asarray(copies))
        first_rows = self.params[index * n]
        result = evaluate_rows(self.model, first_rows, self.test_features[index], self.test_labels[index])
        self.accuracy[copies] = result[0]
        self.loss[copies] = result[1]

    # ---------------------------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every copy; ``seed`` = ``s`` seeds copy ``i`` with ``s + i``, a list seeds each copy.

        ``options={"reset_mask": mask}`` resets only the copies where the ``(num_envs,)`` bool mask is True.
        """
        seeds = copy_seeds(seed, self.num_envs)
        copies = np.arange(self.num_envs)
        mask = reset_mask(options, self.num_envs)
        if mask is not None:
            copies = np.flatnonzero(mask)
            seeds = [seeds[i] for i in copies]
        self._reset_copies(copies, seeds)
        return self._observation(), self._infos(None)

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One round in every copy (the round order of the single environment), then autoreset the finished ones."""
        e, n, links = self.num_envs, self.num_nodes, self.num_links
        config = self.config
        try:
            shape = np.shape(actions)
        except ValueError:  # ragged: decode_schedule's check names what it expects
            shape = (e,)
        if not shape or shape[0] != e:
            raise ValueError(f"actions: expected {e} rows (one per copy), got shape {shape}")
        attempts, freshest = decode_schedule(
            actions, links, config.budget, config.serving_order, config.invalid_action, batch=e
        )
        attempts, freshest = attempts.ravel(), freshest.ravel()
        successes = self._generate_pairs(attempts)
        _, overflow = self.layer.inventory.add(successes)

        submitted = self._local_round()
        stamps = self._stamps(submitted)
        phi = stamps.to(device=submitted.device, dtype=submitted.dtype)  # as the protocol sees them (check_stamps)
        active_before = self.active
        both_active = active_before[:, self.instance.edges[:, 0]] & active_before[:, self.instance.edges[:, 1]]
        demand_per_link = float(self.mixing_steps * self.protocol_config.pairs_per_exchange)
        requested = np.where(both_active, demand_per_link, 0.0)
        provider = InventoryPairs(self.layer.inventory, freshest)
        gossip = gossip_round(
            self.union.edges,
            submitted,
            phi,
            active_before.ravel(),
            provider,
            mixing_steps=self.mixing_steps,
            pairs_per_exchange=self.protocol_config.pairs_per_exchange,
            perturb_for_step=self._perturb_for_step,
        )
        consensus = self._consensus(gossip.params, phi, active_before)
        new_params, checkpoint, committed = self._checkpoints(submitted, gossip, consensus, phi)

        params = new_params.detach().to(self.model.dtype)
        if self._all_byzantine.numel():
            params = params.clone()
            params[self._all_byzantine] = self._trained[self._all_byzantine]
        self.params = params
        received = torch.as_tensor(gossip.received_fidelity, dtype=torch.float64)
        self.pair_fidelity = torch.where(torch.isnan(received), self.pair_fidelity, received.clamp(1e-6, 1.0))
        expired = self.layer.inventory.age_one_round()

        previous_accuracy = self.accuracy.copy()
        accuracy, loss = evaluate_rows(
            self.model, consensus, self.test_features, self.test_labels, self._consensus_unitary
        )
        self.accuracy, self.loss = accuracy, loss
        self.stamps = stamps.detach().cpu().numpy().reshape(e, n)
        pairs_per_edge = (gossip.granted_per_edge * self.protocol_config.pairs_per_exchange).reshape(e, links)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.granted_fraction = np.where(
                requested > 0, np.clip(pairs_per_edge / np.maximum(requested, 1e-12), 0.0, 1.0), 1.0
            )
        generated = successes.reshape(e, links).sum(1)
        consumed = pairs_per_edge.sum(1)
        self.generated_total += generated
        self.consumed_total += consumed
        self.round_index += 1

        attempted = gossip.attempted_per_edge.reshape(e, links).sum(1)
        granted = gossip.granted_per_edge.reshape(e, links).sum(1)
        endpoints_fidelity = per_copy_fidelity(gossip, self.union.edges, e, links)
        stats = RoundStats(
            attempts=attempts.reshape(e, links).sum(1),
            generated=generated,
            expired=expired.reshape(e, links).sum(1),
            overflow=overflow.reshape(e, links).sum(1),
            attempted=attempted,
            granted=granted,
            consumed=consumed,
            mean_delivered_fidelity=endpoints_fidelity,
            checkpoint=checkpoint,
            committed=committed,
        )
        infos = self._infos(stats)
        rewards = round_reward(config.reward, self.accuracy, previous_accuracy, infos, config.budget)
        truncated = self.round_index >= self.horizon
        terminated = np.zeros(e, dtype=bool)
        observation = self._observation()
        if truncated.any():
            done = np.flatnonzero(truncated)
            infos["final_obs"] = select_rows(observation, done, e)
            infos["_final_obs"] = truncated.copy()
            infos["final_info"] = {key: value.copy() for key, value in infos.items() if not key.startswith("final")}
            infos["_final_info"] = truncated.copy()
            self._reset_copies(done, [None] * done.size)
            observation = self._observation()
        return observation, rewards, terminated, truncated, infos

    def _generate_pairs(self, attempts: np.ndarray) -> np.ndarray:
        """Successful generations per link of every copy, ``(num_envs x links,)``.

        With per-copy streams, one binomial draw per copy (a Python loop over copies): copy ``i`` must draw what a
        single environment seeded like it draws, and NumPy cannot draw from many generators in one call. With
        shared streams, one draw for all copies from the first copy's generator.
        """
        if self.shared_streams:
            return self.np_randoms[0].binomial(attempts, self.union.success_probability).astype(np.int64)
        rows = np.split(attempts, self.num_envs)
        draws = [
            rng.binomial(row, self.instance.success_probability) for rng, row in zip(self.np_randoms, rows, strict=True)
        ]
        return np.concatenate(draws).astype(np.int64)

    # ---------------------------------------------------------------------------------------- learning
    def _local_round(self) -> torch.Tensor:
        """K local steps for every node of every copy; Byzantine submissions attacked with each copy's generator."""
        start = self.params
        trained = local_train(
            self.model,
            start,
            self.train_features,
            self.train_labels,
            self.learning.training,
            self.shrink,
            final_loss=False,
        ).parameters
        self._trained = trained
        if not self._all_byzantine.numel():
            return trained
        submitted = trained.clone()
        index = self._all_byzantine  # grouped by copy, in each copy's node order
        sizes = [rows.size for rows in self._byzantine_rows]
        rounds = self.round_index.tolist()
        generators = [self.generators[0]] * self.num_envs if self.shared_streams else self.generators
        if self.learning.attack_target == "weights":
            attacked = self.attack.apply_groups(trained[index], sizes, rounds, generators)
        else:
            attacked = start[index] + self.attack.apply_groups(trained[index] - start[index], sizes, rounds, generators)
        submitted[index] = attacked.to(submitted.dtype)
        return submitted

    def _stamps(self, submitted: torch.Tensor) -> torch.Tensor:
        """Fidelity stamps ``(num_envs x N,)``; the QFI is refreshed in the copies whose round is due."""
        n = self.num_nodes
        due = np.flatnonzero(self.round_index % self.learning.qfi_every == 0)
        if due.size:
            rows = torch.as_tensor((due[:, None] * n + np.arange(n)).ravel())
            angles, _, _ = self.model.split(submitted[rows])
            probes = self.test_features[torch.as_tensor(due), : self.learning.qfi_probe_samples]
            probes = probes.repeat_interleave(n, dim=0)
            self.qfi_score[rows] = qfi_trace_score(self.model.circuit, angles, probes).cpu().double()
        return fidelity_stamp(self.qfi_score, self.channel_infidelity, self.pair_fidelity, self.learning.stamps)

    def _perturb_for_step(self, granted_ids: np.ndarray):
        """The transport-noise hook of one mixing step: noise drawn per copy, in each copy's single-env order.

        With shared streams, one draw for all messages from the first copy's generator.
        """
        if not self.learning.transport_noise:
            return None
        if self.shared_streams:

            def draw(messages: torch.Tensor) -> torch.Tensor:
                return standard_normal(messages, self.generators[0])

        else:
            copy_of_message = np.concatenate([self._env_of_link[granted_ids], self._env_of_link[granted_ids]])
            order = np.argsort(copy_of_message, kind="stable")  # groups each copy's messages, keeping their order
            sizes = np.bincount(copy_of_message, minlength=self.num_envs).tolist()

            def draw(messages: torch.Tensor) -> torch.Tensor:
                grouped = grouped_standard_normal(messages, sizes, self.generators)  # copy after copy
                noise = torch.empty_like(grouped)
                noise[torch.as_tensor(order, device=grouped.device)] = grouped
                return noise

        def perturb(messages: torch.Tensor, fidelity: torch.Tensor) -> torch.Tensor:
            return receive(messages, fidelity.to(messages.dtype), draw(messages), self.learning.transport_receiver)

        return perturb

    def _consensus(self, params: torch.Tensor, phi: torch.Tensor, active: np.ndarray) -> torch.Tensor:
        """Per copy ``sum phi_k theta_k / sum phi_k`` over its active nodes, ``(num_envs, P)``."""
        e, n = self.num_envs, self.num_nodes
        return weighted_consensus(params.reshape(e, n, -1), phi.reshape(e, n), active)

    def _checkpoints(
        self, submitted: torch.Tensor, gossip: Any, consensus: torch.Tensor, phi: torch.Tensor
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Divergence, trust, and each copy's BFT checkpoint (per copy: its monitor works on ``(N,)`` arrays)."""
        e, n = self.num_envs, self.num_nodes
        config = self.protocol_config
        rows = torch.cat([submitted.reshape(e, n, -1), consensus[:, None, :]], dim=1)  # (E, N + 1, P)
        probabilities, stacked = predict_rows(self.model, rows.reshape(e * (n + 1), -1), self._probe_rows)
        self._consensus_unitary = stacked.unflatten(0, (e, n + 1))[:, n]  # the test evaluation reuses it
        probabilities = probabilities.reshape(e, n + 1, -1).to(torch.float64)
        divergence = bernoulli_kl(probabilities[:, n], probabilities[:, :n], config.bft.probability_clip)
        divergence = divergence.cpu().numpy()
        fidelity = phi.detach().cpu().numpy().astype(np.float64).reshape(e, n)
        received = gossip.messages_received.reshape(e, n)
        new_params = gossip.params
        monitor = self.monitor
        monitor.record(divergence)
        allowance = monitor.threshold(fidelity) / np.maximum(1, monitor.window_fill)[:, None]
        self.trust = update_trust(self.trust, divergence <= allowance, config.trust.alpha)
        checkpoint = is_checkpoint_round(self.round_index, config.bft.checkpoint_every)
        votes = received > 0 if config.votes_need_exchange else None
        outcome = monitor.checkpoint(fidelity, votes=votes, trust=self.trust, networks=checkpoint)
        committed = outcome.committed
        readmitted = np.flatnonzero((outcome.readmitted & committed[:, None]).ravel())
        if readmitted.size:
            new_params = new_params.clone()
            new_params[torch.as_tensor(readmitted)] = consensus[torch.as_tensor(readmitted // n)]
        return new_params, checkpoint, committed

    # ---------------------------------------------------------------------------------------- outputs
    def _observation(self) -> Any:
        """The observation of every copy, stacked (``(num_envs, ...)`` per key, or flattened rows)."""
        e, links = self.num_envs, self.num_links
        inventory = self.layer.inventory
        active = self.active
        edges = self.instance.edges
        demand = np.where(
            active[:, edges[:, 0]] & active[:, edges[:, 1]],
            float(self.mixing_steps * self.protocol_config.pairs_per_exchange),
            0.0,
        )
        checkpoint_next = is_checkpoint_round(self.round_index, self.protocol_config.bft.checkpoint_every)
        observation = {
            "inventory": inventory.lifetime_histogram(self.lifetime_bins).reshape(e, links, -1),
            "mean_fidelity": inventory.mean_fidelity().astype(np.float32).reshape(e, links),
            "decay_rate": np.tile(self.instance.decay_rate.astype(np.float32), (e, 1)),
            "success_probability": np.tile(self.instance.success_probability.astype(np.float32), (e, 1)),
            "cutoff": np.tile(self.instance.cutoff.astype(np.float32), (e, 1)),
            "demand_pairs": demand.astype(np.float32),
            "demand_deadline": np.where(demand > 0, 1, 2).astype(np.float32),
            "granted_fraction": self.granted_fraction.astype(np.float32),
            "trust": self.trust.astype(np.float32),
            "stamp": self.stamps.astype(np.float32),
            "quarantined": (~active).astype(np.float32),
            "round": (self.round_index / self.config.max_rounds).astype(np.float32)[:, None],
            "checkpoint_next": checkpoint_next.astype(np.float32)[:, None],
            "accuracy": self.accuracy.astype(np.float32)[:, None],
            "loss": np.minimum(self.loss, 10.0).astype(np.float32)[:, None],
        }
        observation = {key: observation[key] for key in self.dict_observation_space.spaces}
        if self.config.flatten_observation:
            return np.concatenate([value.reshape(e, -1) for value in observation.values()], axis=1)
        return observation

    def _infos(self, stats: RoundStats | None) -> dict[str, Any]:
        """The single environment's info keys as ``(num_envs,)`` arrays (gymnasium's vector info layout)."""
        infos: dict[str, Any] = round_infos(
            stats if stats is not None else RoundStats.empty(self.num_envs),
            round_index=self.round_index,
            accuracy=self.accuracy,
            loss=self.loss,
            generated_total=self.generated_total,
            consumed_total=self.consumed_total,
            active=self.active,
            byzantine=self.instance.byzantine,
        )
        for key in list(infos):
            infos[f"_{key}"] = np.ones(self.num_envs, dtype=bool)
        return infos
