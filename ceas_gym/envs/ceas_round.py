"""The CEAS round, written once: E copies of a CEAS network stepped as one batched computation.

:class:`CEASRound` is the only implementation of a CEAS round. The single environment
(:class:`~ceas_gym.envs.ceas.EntanglementSchedulingEnv`) is a batch of one of it, the vector environment
(:class:`~ceas_gym.envs.batched_ceas.BatchedEntanglementSchedulingEnv`) a batch of E. The E copies (same
configuration, so the same network instance) are one network of ``E x N`` nodes made of disconnected copies
(:func:`~ceas_gym.envs.instance.disjoint_union`). A round, for every copy at once:

1. **Generate**: each link's attempts succeed binomially (each copy from its own stream); successes are stored in
   the union's pair inventory (one array operation).
2. **Local training and attacks**: K local steps for every node of every copy (one batched torch computation, each
   copy on its own data); Byzantine rows submit their attack (:mod:`ceas_gym.envs.learning_setup`).
3. **Stamps**: fidelity stamps phi_k, the QFI refreshed in the copies whose round is due.
4. **Consensus** (:mod:`ceas_gym.envs.round_consensus`): the protocol's phase mixes the submissions, consuming
   pairs from the inventory; it returns each node's parameters and each copy's consensus model.
5. **Evaluate**: every honest node's own model on a fixed subset of its copy's test set (the outcome,
   ``info["accuracy"]``), and the exact phi-weighted aggregate on the whole test set (a diagnostic no node holds).
6. **Age**: stored pairs age one round and expire past their cutoff.
7. **Report**: the info dict and the reward of every copy (:mod:`ceas_gym.envs.ceas_outputs`).

Randomness is per copy (:mod:`ceas_gym.envs.round_streams`): with the same seeds and actions, copy ``i`` of a
batch follows a batch of one seeded like it (``tests/test_batched_env.py``: the discrete state exactly, the
float32 quantities to float32 rounding, since batches of different shapes run products of different shapes).
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from ceas_gym.config import ConfigError
from ceas_gym.consensus.pairs import InventoryPairs, PairProvider, UnlimitedPairs
from ceas_gym.envs.batched_rows import evaluate_rows
from ceas_gym.envs.ceas_config import CEASEnvConfig
from ceas_gym.envs.ceas_outputs import RoundStats, node_metrics, round_infos, round_reward
from ceas_gym.envs.generator import InstanceGenerator
from ceas_gym.envs.instance import SchedulingInstance, disjoint_union
from ceas_gym.envs.learning_setup import LearningSetup
from ceas_gym.envs.link_layer import LinkLayer
from ceas_gym.envs.observation import box, link_state_spaces
from ceas_gym.envs.round_consensus import Probes, RoundInputs
from ceas_gym.envs.round_phases import make_round_consensus
from ceas_gym.envs.round_streams import CopyStreams
from ceas_gym.learning.data import make_federated_data
from ceas_gym.learning.shared_test_set import SharedTestSet
from ceas_gym.learning.stamps import fidelity_stamp, qfi_trace_score
from ceas_gym.learning.training import local_train
from ceas_gym.network.outages import next_outages


class CEASRound:
    """E copies of a CEAS network and their round (see the module docstring).

    Args:
        config: The environment configuration.
        copies: Number of copies E, >= 1.
        shared_streams: Draw every per-round number from the first copy's generators (see
            :mod:`~ceas_gym.envs.round_streams`).

    Raises:
        ConfigError: On a protocol setting the network cannot meet (e.g. ``bft.min_active`` above N).
    """

    def __init__(self, config: CEASEnvConfig, copies: int = 1, shared_streams: bool = False) -> None:
        self.config = config
        self.copies = copies
        roles = config.roles
        generator = InstanceGenerator(
            config.topology,
            config.links,
            byzantine_fraction=roles.byzantine_fraction,
            role_hardware=(roles.honest_hardware, roles.byzantine_hardware),
            byzantine_link_eta=roles.byzantine_link_eta,
        )
        self.instance: SchedulingInstance = generator(np.random.default_rng(config.instance_seed))
        n, links = self.instance.num_nodes, self.instance.num_links
        self.num_nodes, self.num_links = n, links
        self.union = disjoint_union(self.instance, copies)
        self.layer = LinkLayer(self.union, queue_capacity=1, fidelity_floor=config.links.fidelity_floor)
        settings = dict(config.protocol_config.get(config.protocol, {}))
        self.consensus, self.protocol = make_round_consensus(
            config.protocol, n, self.instance.edges, settings, self.instance.byzantine, self.union.edges, copies
        )
        bft = getattr(getattr(self.protocol, "config", None), "bft", None)
        if bft is not None and bft.min_active > n:
            raise ConfigError(
                f"protocol_config.{config.protocol}.bft.min_active = {bft.min_active} exceeds the network's "
                f"{n} nodes (topology.num_nodes); allowed: 1 to {n}"
            )
        self.setup = LearningSetup(config.learning, self.instance.node_hardware, self.instance.byzantine)
        self.model = self.setup.model
        self.learning = config.learning
        self.device = self.setup.device
        self.shrink = self.setup.shrink.repeat(copies)
        self.channel_infidelity = self.setup.channel_infidelity.repeat(copies)
        if self.instance.byzantine.all():
            raise ConfigError(
                f"roles.byzantine_fraction = {roles.byzantine_fraction} leaves no honest node among "
                f"{n}; the outcome is the honest nodes' models, so at least one must be honest"
            )
        byzantine = np.tile(self.instance.byzantine, (copies, 1))
        self._byzantine_sizes = byzantine.sum(1).tolist()
        self._all_byzantine = torch.as_tensor(np.flatnonzero(byzantine.ravel()), device=self.device)
        self._all_honest = torch.as_tensor(np.flatnonzero(~byzantine.ravel()), device=self.device)
        self.streams = CopyStreams(copies, shared=shared_streams)
        self.lifetime_bins = int(config.links.cutoff_max)
        self.observation_space = self._observation_space()
        self._allocate_state()

    # ------------------------------------------------------------------------------------------ state
    def _allocate_state(self) -> None:
        e, n, links = self.copies, self.num_nodes, self.num_links
        dtype, device, data = self.model.dtype, self.device, self.learning.data
        self.params = torch.zeros(e * n, self.model.num_parameters, dtype=dtype, device=device)
        self.train_features = torch.zeros(e * n, data.samples_per_node, data.num_features, dtype=dtype, device=device)
        self.train_labels = torch.zeros(e * n, data.samples_per_node, dtype=torch.long, device=device)
        self.test_features = torch.zeros(e, data.test_samples, data.num_features, dtype=dtype, device=device)
        self.test_labels = torch.zeros(e, data.test_samples, dtype=torch.long, device=device)
        self.pair_fidelity = torch.ones(e * n, dtype=torch.float64)
        self.qfi_score = torch.ones(e * n, dtype=torch.float64)
        self.round_index = np.zeros(e, dtype=np.int64)
        self.accuracy = np.full(e, 0.5)
        self.loss = np.full(e, float(np.log(2.0)))
        self.ideal_accuracy = np.full(e, 0.5)
        self.ideal_aggregate = torch.zeros(e, self.model.num_parameters, dtype=dtype, device=device)
        """Each copy's consensus model of the last round (the protocol's exact aggregate; no node holds it)."""
        self.stamps = np.ones((e, n))
        self.granted_fraction = np.ones((e, links))
        self.link_down = np.zeros((e, links), dtype=bool)
        """Links down this round per copy (``outages``); all up at the start of an episode."""
        self.generated_total = np.zeros(e, dtype=np.int64)
        self.consumed_total = np.zeros(e, dtype=np.int64)
        self.probes = Probes(self.model, self.test_features[:, : self.learning.probe_samples])
        self._demand: tuple[np.ndarray, np.ndarray] | None = None
        self._node_metrics: dict[str, np.ndarray] = {}
        self._node_subset = self.learning.node_test_samples or data.test_samples
        self._node_test = self._node_test_sets()

    def _node_test_sets(self) -> SharedTestSet:
        """The honest nodes' test subsets: each copy's first ``node_test_samples``, shared by its honest nodes."""
        subset, honest = self._node_subset, int((~self.instance.byzantine).sum())
        return SharedTestSet(self.model, self.test_features[:, :subset], self.test_labels[:, :subset], honest)

    def demand(self) -> tuple[np.ndarray, np.ndarray]:
        """Pairs the coming round requests per link ``(E, L)`` and their deadline ``(E, L)``.

        Computed once per state: the observation that shows it and the round that then requests it share it.
        """
        if self._demand is None:
            self._demand = self.consensus.demand(self.round_index)
        return self._demand

    def success_probability(self) -> np.ndarray:
        """This round's per-attempt success of every link of every copy, 0 where a link is down. ``(E, L)``."""
        probability = np.broadcast_to(self.instance.success_probability, (self.copies, self.num_links))
        return np.where(self.link_down, 0.0, probability)

    @property
    def active(self) -> np.ndarray:
        """Active (not quarantined) nodes per copy. ``(E, N)`` bool."""
        return np.asarray(self.consensus.active, dtype=bool).copy()

    @property
    def trust(self) -> np.ndarray:
        """Trust scores per copy. ``(E, N)`` float."""
        return np.asarray(self.consensus.trust, dtype=np.float64).copy()

    def reset(self, copies: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """Start a new episode in the listed copies, each drawing from its ``rngs`` entry (its new stream).

        The order of draws is a single copy's: the torch seed, then the data, then the initial parameters.
        """
        if len(copies) == 0:  # an all-False reset mask: nothing to draw, and no rows to evaluate
            return
        n, links = self.num_nodes, self.num_links
        dtype = self.model.dtype
        for copy, rng in zip(copies, rngs, strict=True):
            nodes = slice(copy * n, (copy + 1) * n)
            self.layer.inventory.clear_links(np.arange(copy * links, (copy + 1) * links))
            generator = self.streams.start_episode(copy, rng)
            data = make_federated_data(self.learning.data, self.instance.byzantine, rng, device=self.device)
            self.train_features[nodes] = data.train.features.to(dtype)
            self.train_labels[nodes] = data.train.labels
            self.test_features[copy] = data.test_features.to(dtype)
            self.test_labels[copy] = data.test_labels
            self.params[nodes] = self.model.init_parameters(n, generator, self.learning.init)
            self.pair_fidelity[nodes] = 1.0
        copies = np.asarray(copies, dtype=np.intp)
        self.consensus.reset(copies)
        self._demand = None
        for state in (self.round_index, self.generated_total, self.consumed_total):
            state[copies] = 0
        self.stamps[copies] = 1.0
        self.granted_fraction[copies] = 1.0
        self.link_down[copies] = False
        # One probe tensor per episode, so the circuit's encoding cache serves it every round.
        self.probes = Probes(self.model, self.test_features[:, : self.learning.probe_samples])
        self._node_test = self._node_test_sets()  # this episode's test subsets, shared by its honest nodes
        self._start_node_metrics(copies)

    # ------------------------------------------------------------------------------------------ round
    def step(self, attempts: np.ndarray, freshest: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One round of every copy (see the module docstring).

        Args:
            attempts: Generation attempts per link of every copy. ``(E, L)`` int (decoded actions).
            freshest: Serve freshest pairs first, per link of every copy. ``(E, L)`` bool.

        Returns:
            ``(rewards (E,), infos)``: the infos as ``(E,)`` arrays (:func:`~ceas_gym.envs.ceas_outputs.round_infos`).
        """
        e, n, links = self.copies, self.num_nodes, self.num_links
        attempts, freshest = np.asarray(attempts).ravel(), np.asarray(freshest).ravel()
        successes = self.streams.binomial(attempts, self.success_probability().ravel())
        _, overflow = self.layer.inventory.add(successes)
        submitted = self._local_round()
        stamps = self._stamps(submitted)
        requested, _ = self.demand()
        transport = None
        if self.learning.transport_noise:
            receiver = self.learning.transport_receiver

            def transport(copy_of_message: np.ndarray):
                return self.streams.transport(copy_of_message, receiver)

        outcome = self.consensus.run(
            RoundInputs(
                submitted=submitted,
                stamps=stamps,
                provider=self._pair_provider(freshest),
                round_index=self.round_index.copy(),
                streams=self.streams,
                probes=self.probes,
                transport=transport,
            )
        )
        self._demand = None  # the consensus changed the protocol's state (quarantine, stakes, ledger)
        self._adopt(outcome.params, outcome.received_fidelity)
        expired = self.layer.inventory.age_one_round()

        previous_accuracy = self.accuracy.copy()
        self.ideal_aggregate = outcome.consensus.detach()
        self.ideal_accuracy, _ = evaluate_rows(
            self.model, outcome.consensus, self.test_features, self.test_labels, outcome.consensus_unitary
        )
        self.stamps = stamps.detach().cpu().numpy().reshape(e, n)
        self._evaluate_nodes()
        pairs_per_edge = outcome.pairs_per_edge.reshape(e, links)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.granted_fraction = np.where(
                requested > 0, np.clip(pairs_per_edge / np.maximum(requested, 1e-12), 0.0, 1.0), 1.0
            )
        generated = successes.reshape(e, links).sum(1)
        consumed = pairs_per_edge.sum(1)
        self.generated_total += generated
        self.consumed_total += consumed
        self.round_index += 1
        stats = RoundStats(
            attempts=attempts.reshape(e, links).sum(1),
            generated=generated,
            expired=expired.reshape(e, links).sum(1),
            overflow=overflow.reshape(e, links).sum(1),
            attempted=outcome.attempted,
            granted=outcome.granted,
            consumed=consumed,
            mean_delivered_fidelity=outcome.mean_delivered_fidelity,
            checkpoint=outcome.checkpoint,
            committed=outcome.committed,
        )
        if self.config.outages.enabled:  # the next round's link states, announced in the next observation
            self.link_down = next_outages(self.link_down, self.streams.uniforms(links), self.config.outages)
        infos = self.infos(stats)
        rewards = round_reward(self.config.reward, self.accuracy, previous_accuracy, infos, self.config.budget)
        return rewards, infos

    def _pair_provider(self, freshest: np.ndarray) -> PairProvider:
        """The union's stored pairs, or with ``communication="perfect"`` every exchange granted at fidelity 1."""
        if self.config.communication == "perfect":
            return UnlimitedPairs(1.0)
        return InventoryPairs(self.layer.inventory, freshest)

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
            final_loss=False,  # the round never reads the post-training loss
        ).parameters
        self._trained = trained
        if not self._all_byzantine.numel():
            return trained
        index = self._all_byzantine  # grouped by copy, in each copy's node order
        rounds = self.round_index.tolist()
        generators = self.streams.round_generators()
        attack = self.setup.attack
        by_weights = self.learning.attack_target == "weights"
        extra = {}
        if attack.needs_honest:  # omniscient attacks see their copy's honest vectors
            honest = self._all_honest
            vectors = trained[honest] if by_weights else trained[honest] - start[honest]
            extra["honest"] = vectors.reshape(self.copies, -1, vectors.shape[-1])
        if by_weights:
            attacked = attack.apply_groups(trained[index], self._byzantine_sizes, rounds, generators, **extra)
        else:
            update = trained[index] - start[index]
            attacked = start[index] + attack.apply_groups(update, self._byzantine_sizes, rounds, generators, **extra)
        submitted = trained.clone()
        submitted[index] = attacked.to(submitted.dtype)
        return submitted

    def _stamps(self, submitted: torch.Tensor) -> torch.Tensor:
        """Fidelity stamps ``(E x N,)`` float64; the QFI is refreshed in the copies whose round is due."""
        n = self.num_nodes
        due = np.flatnonzero(self.round_index % self.learning.qfi_every == 0)
        if due.size:
            rows = torch.as_tensor((due[:, None] * n + np.arange(n)).ravel())
            angles, _, _ = self.model.split(submitted[rows])
            probes = self.test_features[torch.as_tensor(due), : self.learning.qfi_probe_samples]
            probes = probes.repeat_interleave(n, dim=0)
            self.qfi_score[rows] = qfi_trace_score(self.model.circuit, angles, probes).cpu().double()
        return fidelity_stamp(self.qfi_score, self.channel_infidelity, self.pair_fidelity, self.learning.stamps)

    def _start_node_metrics(self, copies: np.ndarray) -> None:
        """The metrics of freshly reset copies, whose nodes all hold the same initial row: one evaluation per copy."""
        index = torch.as_tensor(copies)
        first_rows = self.params[index * self.num_nodes]
        self.ideal_accuracy[copies], _ = evaluate_rows(
            self.model, first_rows, self.test_features[index], self.test_labels[index]
        )
        accuracy, loss = self._node_test.evaluate(self.model, first_rows[:, None, :], index)
        # every honest node of a fresh copy holds the first row: its metrics are those of that one model
        fresh = node_metrics(
            accuracy.double().cpu().numpy(),
            loss.double().cpu().numpy(),
            first_rows.detach().double().cpu().numpy()[:, None, :],
            np.ones((len(copies), 1)),
        )
        self.accuracy[copies], self.loss[copies] = fresh.pop("accuracy"), fresh.pop("loss")
        for key, values in fresh.items():
            self._node_metrics.setdefault(key, np.full(self.copies, np.nan))[copies] = values

    def _evaluate_nodes(self) -> None:
        """Score the models the honest nodes hold (:func:`node_metrics`), each on its copy's test subset."""
        e, honest = self.copies, ~self.instance.byzantine
        rows = self.params[self._all_honest].reshape(e, int(honest.sum()), -1)
        accuracy, loss = self._node_test.evaluate(self.model, rows)
        metrics = node_metrics(
            accuracy.double().cpu().numpy(),
            loss.double().cpu().numpy(),
            rows.detach().double().cpu().numpy(),
            self.stamps[:, honest],
        )
        self.accuracy, self.loss = metrics.pop("accuracy"), metrics.pop("loss")
        self._node_metrics = metrics

    def _adopt(self, params: torch.Tensor, received_fidelity: np.ndarray) -> None:
        """Take the parameters after consensus (Byzantine rows keep their clean model) and the received fidelity."""
        params = params.detach().to(self.model.dtype)
        if self._all_byzantine.numel():
            params = params.clone()
            params[self._all_byzantine] = self._trained[self._all_byzantine]
        self.params = params
        received = torch.as_tensor(received_fidelity, dtype=torch.float64)
        self.pair_fidelity = torch.where(torch.isnan(received), self.pair_fidelity, received.clamp(1e-6, 1.0))

    # ---------------------------------------------------------------------------------------- outputs
    def _observation_space(self) -> spaces.Dict:
        links, nodes = self.num_links, self.num_nodes
        return spaces.Dict(
            {
                **link_state_spaces(self.instance, self.lifetime_bins),
                "demand_pairs": box(0.0, max(self.consensus.max_demand(), 1.0), (links,)),
                "demand_deadline": box(0.0, 2.0, (links,)),
                "granted_fraction": box(0.0, 1.0, (links,)),
                "trust": box(0.0, 1.0, (nodes,)),
                "stamp": box(0.0, 1.0, (nodes,)),
                "quarantined": box(0.0, 1.0, (nodes,)),
                "round": box(0.0, 1.0, (1,)),
                "checkpoint_next": box(0.0, 1.0, (1,)),
                "accuracy": box(0.0, 1.0, (1,)),
                "loss": box(0.0, 10.0, (1,)),
            }
        )

    def observation(self) -> dict[str, np.ndarray]:
        """Every copy's observation, ``(E, ...)`` float32 per key, in the observation space's key order."""
        e, links = self.copies, self.num_links
        inventory = self.layer.inventory
        demand, deadline = self.demand()
        instance = self.instance
        observation = {
            "inventory": inventory.lifetime_histogram(self.lifetime_bins).reshape(e, links, -1),
            "mean_fidelity": inventory.mean_fidelity().astype(np.float32).reshape(e, links),
            "decay_rate": np.tile(instance.decay_rate.astype(np.float32), (e, 1)),
            "success_probability": self.success_probability().astype(np.float32),
            "cutoff": np.tile(instance.cutoff.astype(np.float32), (e, 1)),
            "demand_pairs": np.asarray(demand, dtype=np.float32),
            "demand_deadline": np.where(demand > 0, deadline, 2).astype(np.float32),
            "granted_fraction": self.granted_fraction.astype(np.float32),
            "trust": self.trust.astype(np.float32),
            "stamp": self.stamps.astype(np.float32),
            "quarantined": (~self.active).astype(np.float32),
            "round": (self.round_index / self.config.max_rounds).astype(np.float32)[:, None],
            "checkpoint_next": self.consensus.checkpoint_next(self.round_index).astype(np.float32)[:, None],
            "accuracy": self.accuracy.astype(np.float32)[:, None],
            "loss": np.minimum(self.loss, 10.0).astype(np.float32)[:, None],
        }
        return {key: observation[key] for key in self.observation_space.spaces}

    def infos(self, stats: RoundStats | None = None) -> dict[str, np.ndarray]:
        """The info keys as ``(E,)`` arrays; ``stats=None`` gives a round with no counts (after a reset)."""
        infos = round_infos(
            stats if stats is not None else RoundStats.empty(self.copies),
            round_index=self.round_index,
            node={"accuracy": self.accuracy, "loss": self.loss, **self._node_metrics},
            ideal_accuracy=self.ideal_accuracy,
            generated_total=self.generated_total,
            consumed_total=self.consumed_total,
            active=self.active,
            byzantine=self.instance.byzantine,
        )
        return infos
