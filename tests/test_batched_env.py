"""The batched vector environment follows E single environments exactly, and plugs into gymnasium and SB3."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from batch_equality import assert_same_value
from gymnasium import spaces

import ceas_gym  # noqa: F401
from agents.baselines import EarliestExpiringFirst
from ceas_gym.config import ConfigError
from ceas_gym.consensus import CONSENSUS_PROTOCOLS
from ceas_gym.envs.batched_ceas import BatchedEntanglementSchedulingEnv
from ceas_gym.envs.batched_sb3 import BatchedVecEnv, make_batched_vec_env
from ceas_gym.envs.ceas import EntanglementSchedulingEnv

SEEDS = [5, 6, 7]
SHORT = {"max_rounds": 6}  # episodes end inside the test, so autoreset is exercised
SINGLE_INFO_KEYS = (
    "round", "accuracy", "loss", "utilisation", "isolation_rate", "false_quarantine_rate", "active_nodes",
    "exchanges_granted_fraction", "requests_missed", "pairs_expired", "wasted", "attempts", "generated",
    "consumed", "mean_delivered_fidelity", "checkpoint", "committed",
)  # fmt: skip


def assert_same_observation(batched: dict, singles: list[dict]) -> None:
    """Copy ``i`` of the batch against single observation ``i`` (float32-rounded keys: batch_equality.py)."""
    for key in singles[0]:
        for copy, single in enumerate(singles):
            assert_same_value(key, single[key], batched[key][copy], copy)


def run_side_by_side(steps: int, seeds: list[int] = SEEDS, batch_streams: str = "per-copy", **overrides) -> None:
    """Step E single envs (EEF actions) and the batched env with the same actions; compare every output."""
    singles = [EntanglementSchedulingEnv(preset="small", **SHORT, **overrides) for _ in seeds]
    policies = [EarliestExpiringFirst(env) for env in singles]
    batched = BatchedEntanglementSchedulingEnv(
        len(seeds), preset="small", batch_streams=batch_streams, **SHORT, **overrides
    )
    assert singles[0].instance.byzantine.any()  # attacks (with their noise draws) are part of the comparison
    states = [env.reset(seed=seed) for env, seed in zip(singles, seeds, strict=True)]
    observation, _ = batched.reset(seed=seeds)
    assert_same_observation(observation, [state[0] for state in states])
    episodes_ended = 0
    for _ in range(steps):
        actions = [policy.act(*state) for policy, state in zip(policies, states, strict=True)]
        observation, rewards, terminated, truncated, info = batched.step(np.stack(actions))
        next_states = []
        for copy, (env, action) in enumerate(zip(singles, actions, strict=True)):
            single_observation, reward, single_terminated, single_truncated, single_info = env.step(action)
            assert rewards[copy] == reward
            assert (terminated[copy], truncated[copy]) == (single_terminated, single_truncated)
            for key in SINGLE_INFO_KEYS:
                assert_same_value(key, single_info[key], info[key][copy], copy)
            if single_truncated:
                episodes_ended += 1
                assert_same_observation({k: v[None] for k, v in info["final_obs"][copy].items()}, [single_observation])
                assert info["final_info"]["accuracy"][copy] == single_info["accuracy"]
                single_observation, single_info = env.reset()  # no seed: the stream continues, as in autoreset
            next_states.append((single_observation, single_info))
        assert_same_observation(observation, [state[0] for state in next_states])
        states = next_states
    assert episodes_ended == steps // SHORT["max_rounds"] * len(seeds)


def test_copies_follow_single_environments_exactly_through_autoreset() -> None:
    run_side_by_side(steps=14)


def test_copies_follow_single_environments_under_another_attack_and_without_transport_noise() -> None:
    run_side_by_side(steps=7, learning={"attack": "scaling", "transport_noise": False})


@pytest.mark.parametrize("attack", ["alie", "ipm"])
def test_copies_follow_single_environments_under_omniscient_attacks(attack: str) -> None:
    """Each copy's attackers read that copy's honest vectors only, so copy i is still single env i."""
    run_side_by_side(steps=4, learning={"attack": attack})


def test_copies_follow_single_environments_with_link_outages() -> None:
    """Each copy draws its links' outages from its own stream, so copy i is still single env i."""
    run_side_by_side(steps=8, outages={"rate": 0.3, "mean_rounds": 2.0})


BUILT_IN_PROTOCOLS = sorted(CONSENSUS_PROTOCOLS.names())  # collected before any test registers a plug-in


@pytest.mark.parametrize("protocol", BUILT_IN_PROTOCOLS)
def test_copies_follow_single_environments_for_every_registered_protocol(protocol: str) -> None:
    """Every protocol runs in the batched round (batched phase or per copy), copy ``i`` the single env ``i``."""
    run_side_by_side(steps=7, protocol=protocol)


@pytest.mark.parametrize("protocol", BUILT_IN_PROTOCOLS)
def test_make_vec_gives_the_batched_environment_for_every_protocol(protocol: str) -> None:
    envs = gym.make_vec(
        "ceas_gym/EntanglementScheduling-Small-v0", num_envs=2, vectorization_mode="vector_entry_point",
        protocol=protocol,
    )  # fmt: skip
    assert isinstance(envs.unwrapped, BatchedEntanglementSchedulingEnv)
    assert envs.unwrapped.config.protocol == protocol
    observation, _ = envs.reset(seed=0)
    observation, rewards, *_ = envs.step(envs.action_space.sample())
    assert envs.observation_space.contains(observation) and rewards.shape == (2,)


def test_shared_streams_with_one_copy_are_the_single_environment() -> None:
    """One copy drawing from the first copy's generators is the single environment, through an autoreset."""
    run_side_by_side(steps=7, seeds=[11], batch_streams="shared")


def _shared_stream_run(batch_streams: str, steps: int = 6) -> tuple[list[np.ndarray], list[dict]]:
    batched = BatchedEntanglementSchedulingEnv(3, preset="small", batch_streams=batch_streams, **SHORT)
    observation, _ = batched.reset(seed=SEEDS)
    actions = np.random.default_rng(0).random((steps, 3, *batched.single_action_space.shape)).astype(np.float32)
    rewards, observations = [], [observation]
    for step_actions in actions:
        observation, reward, *_ = batched.step(step_actions)
        rewards.append(reward)
        observations.append(observation)
    return rewards, observations


def test_shared_streams_are_deterministic_and_draw_other_numbers_than_per_copy_streams() -> None:
    rewards, observations = _shared_stream_run("shared")
    again_rewards, again_observations = _shared_stream_run("shared")
    assert all(np.array_equal(a, b) for a, b in zip(rewards, again_rewards, strict=True))
    for first, second in zip(observations, again_observations, strict=True):
        assert all(np.array_equal(first[key], second[key]) for key in first)
    per_copy_rewards, per_copy_observations = _shared_stream_run("per-copy")
    # Same seeds, so the resets (data, initial parameters) agree; the per-round draws of copies 1 and 2 do not.
    assert all(np.array_equal(observations[0][key], per_copy_observations[0][key]) for key in observations[0])
    assert not all(
        np.array_equal(observation["inventory"][1:], other["inventory"][1:])
        for observation, other in zip(observations[1:], per_copy_observations[1:], strict=True)
    )
    assert not np.array_equal(np.stack(rewards)[:, 1:], np.stack(per_copy_rewards)[:, 1:])


def test_an_unknown_batch_streams_value_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"batch_streams.*per-copy.*shared"):
        BatchedEntanglementSchedulingEnv(2, preset="small", batch_streams="global")


def test_different_seeds_give_different_copies_and_an_int_seed_counts_up() -> None:
    batched = BatchedEntanglementSchedulingEnv(2, preset="small")
    observation, _ = batched.reset(seed=[1, 2])
    assert not np.array_equal(batched.train_features[:10].numpy(), batched.train_features[10:].numpy())
    actions = np.full((2, *batched.single_action_space.shape), 0.5, dtype=np.float32)
    observation, *_ = batched.step(actions)
    assert observation["accuracy"][0] != observation["accuracy"][1]
    counted = BatchedEntanglementSchedulingEnv(2, preset="small")
    counted.reset(seed=4)  # copy i gets 4 + i
    listed = BatchedEntanglementSchedulingEnv(2, preset="small")
    listed.reset(seed=[4, 5])
    assert np.array_equal(counted.train_features.numpy(), listed.train_features.numpy())


def test_reset_mask_resets_only_the_chosen_copy() -> None:
    batched = BatchedEntanglementSchedulingEnv(3, preset="small")
    batched.reset(seed=[0, 1, 2])
    actions = np.full((3, *batched.single_action_space.shape), 0.5, dtype=np.float32)
    before, *_ = batched.step(actions)
    observation, _ = batched.reset(seed=[None, 9, None], options={"reset_mask": np.array([False, True, False])})
    single_observation, _ = EntanglementSchedulingEnv(preset="small").reset(seed=9)
    assert_same_observation({key: value[1:2] for key, value in observation.items()}, [single_observation])
    for copy in (0, 2):
        assert np.array_equal(observation["inventory"][copy], before["inventory"][copy])
    assert list(batched.round_index) == [1, 0, 1]
    # a mask that selects no copy changes nothing (the sharded environment sends such masks to its workers)
    unchanged, _ = batched.reset(options={"reset_mask": np.zeros(3, dtype=bool)})
    assert_same_observation(unchanged, [{key: value[copy] for key, value in observation.items()} for copy in range(3)])
    assert list(batched.round_index) == [1, 0, 1]


def test_flattened_observations_match_the_single_flattening() -> None:
    batched = BatchedEntanglementSchedulingEnv(2, preset="small", flatten_observation=True)
    single = EntanglementSchedulingEnv(preset="small", flatten_observation=True)
    observation, _ = batched.reset(seed=[3, 4])
    assert batched.single_observation_space == single.observation_space
    single_flat = single.reset(seed=3)[0]
    unflatten = single.dict_observation_space
    assert_same_observation(
        {key: value[None] for key, value in spaces.unflatten(unflatten, observation[0]).items()},
        [spaces.unflatten(unflatten, single_flat)],
    )
    assert observation.shape == batched.observation_space.shape


def test_gymnasium_make_vec_builds_it_with_same_step_autoreset() -> None:
    vector = gym.make_vec(
        "ceas_gym/EntanglementScheduling-Small-v0", num_envs=2, vectorization_mode="vector_entry_point", max_rounds=3
    )
    assert isinstance(vector, BatchedEntanglementSchedulingEnv)
    assert vector.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    assert isinstance(vector.observation_space, spaces.Dict)
    vector.reset(seed=0)
    truncations = [vector.step(vector.action_space.sample())[3] for _ in range(3)]
    assert [bool(t.all()) for t in truncations] == [False, False, True]


def test_sb3_adapter_reports_episodes_and_terminal_observations() -> None:
    venv = make_batched_vec_env("ceas_gym/EntanglementScheduling-Small-v0", 2, max_rounds=3)
    venv.seed(11)
    first = venv.reset()
    reference, _ = BatchedEntanglementSchedulingEnv(2, preset="small", max_rounds=3).reset(seed=[11, 12])
    assert_same_observation(first, [{k: v[c] for k, v in reference.items()} for c in range(2)])
    actions = np.full((2, *venv.action_space.shape), 0.5, dtype=np.float32)
    returns = np.zeros(2)
    for _ in range(2):
        _, rewards, dones, infos = venv.step(actions)
        returns += rewards
        assert not dones.any() and "episode" not in infos[0]
    observation, rewards, dones, infos = venv.step(actions)
    assert dones.all() and rewards.dtype == np.float32
    for copy in range(2):
        assert infos[copy]["TimeLimit.truncated"] is True
        assert infos[copy]["episode"]["l"] == 3
        assert infos[copy]["episode"]["r"] == pytest.approx(returns[copy] + rewards[copy])
        assert infos[copy]["terminal_observation"]["round"][0] == pytest.approx(1.0)
        assert observation["round"][copy][0] == 0.0  # already the next episode's first observation
    assert isinstance(venv, BatchedVecEnv) and venv.get_attr("num_nodes") == [10, 10]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_envs": 0}, "num_envs = 0"),
        ({"num_envs": 2, "max_episode_steps": 0}, "max_episode_steps = 0"),
        ({"num_envs": 2, "render_mode": "ansi"}, "does not render"),
        ({"num_envs": 2, "unknown_key": 1}, "unknown key 'unknown_key'"),
    ],
)
def test_bad_construction_raises_a_clear_error(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        BatchedEntanglementSchedulingEnv(preset="small", **kwargs)


def test_bad_seeds_and_actions_raise() -> None:
    batched = BatchedEntanglementSchedulingEnv(2, preset="small")
    with pytest.raises(ConfigError, match="expected an int or 2 seeds"):
        batched.reset(seed=[1, 2, 3])
    batched.reset(seed=0)
    with pytest.raises(ValueError, match="expected 2 rows"):
        batched.step(np.zeros((3, *batched.single_action_space.shape)))


# ------------------------------------------------------------------------------------------ building blocks
def test_disjoint_union_offsets_nodes_and_tiles_link_arrays() -> None:
    from ceas_gym.envs.instance import disjoint_union

    instance = EntanglementSchedulingEnv(preset="small").instance
    union = disjoint_union(instance, 3)
    n, links = instance.num_nodes, instance.num_links
    assert union.num_nodes == 3 * n and union.num_links == 3 * links
    assert np.array_equal(union.edges[links : 2 * links], instance.edges + n)
    assert np.array_equal(union.cutoff.reshape(3, links), np.tile(instance.cutoff, (3, 1)))
    assert union.node_hardware[n : 2 * n] == instance.node_hardware
    with pytest.raises(ValueError, match="copies = 0"):
        disjoint_union(instance, 0)


def test_clear_links_empties_only_the_listed_links() -> None:
    from ceas_gym.network.inventory import PairInventory

    inventory = PairInventory(
        capacity=np.array([3, 3, 3]),
        cutoff=np.array([4, 4, 4]),
        coherence_rounds=np.array([5.0, 5.0, 5.0]),
        fidelity0=np.array([0.95, 0.95, 0.95]),
        fidelity_floor=0.5,
    )
    inventory.add(np.array([2, 3, 1]))
    inventory.clear_links(np.array([1]))
    assert list(inventory.held) == [2, 0, 1]
    assert list(inventory.generated) == [2, 0, 1]


def test_batched_divergence_and_per_row_evaluation_equal_separate_calls() -> None:
    import torch

    from ceas_gym.consensus.bft import bernoulli_kl
    from ceas_gym.learning.training import evaluate

    generator = torch.Generator().manual_seed(0)
    nodes = torch.rand(2, 4, 6, generator=generator, dtype=torch.float64)
    consensus = torch.rand(2, 6, generator=generator, dtype=torch.float64)
    batched = bernoulli_kl(consensus, nodes)
    assert torch.equal(batched[1], bernoulli_kl(consensus[1], nodes[1]))
    env = EntanglementSchedulingEnv(preset="small")
    env.reset(seed=0)
    model, state = env.round.model, env.round  # the round holds the parameters and data (a batch of one)
    test_features, test_labels = state.test_features[0], state.test_labels[0]
    rows = state.params[:2]
    features = torch.stack([test_features, test_features.flip(0)])
    labels = torch.stack([test_labels, test_labels.flip(0)])
    together = evaluate(model, rows, features, labels)
    alone = evaluate(model, rows[1], features[1], labels[1])
    assert together.accuracy[1] == alone.accuracy[0] and together.loss[1] == alone.loss[0]


def test_gossip_takes_one_perturbation_hook_and_gives_the_step_factory_the_granted_links() -> None:
    import torch

    from ceas_gym.consensus.gossip import gossip_round
    from ceas_gym.consensus.pairs import PairProvider

    class AllGranted(PairProvider):
        def request(self, edge_ids, pairs_per_exchange):
            return np.ones(len(edge_ids), dtype=bool), np.full(len(edge_ids), 0.9)

    edges = np.array([[0, 1], [1, 2]])
    params = torch.arange(6, dtype=torch.float64).reshape(3, 2)
    seen: list[np.ndarray] = []

    def factory(granted_ids):
        seen.append(granted_ids.copy())
        return lambda messages, fidelity: messages

    arguments = (edges, params, np.ones(3), np.ones(3, dtype=bool), AllGranted())
    with pytest.raises(ConfigError, match="give at most one"):
        gossip_round(*arguments, mixing_steps=1, perturb=lambda m, f: m, perturb_for_step=factory)
    hooked = gossip_round(*arguments, mixing_steps=2, perturb_for_step=factory)
    plain = gossip_round(*arguments, mixing_steps=2)
    assert [ids.tolist() for ids in seen] == [[0, 1], [0, 1]]
    assert torch.equal(hooked.params, plain.params)
    assert hooked.fidelity_sum_per_edge.tolist() == pytest.approx([1.8, 1.8])


def test_ceas_train_runs_on_the_batched_environment(tmp_path, capsys) -> None:
    from training.train import main as train_main

    argv = ["--env", "ceas_gym/EntanglementScheduling-Small-v0", "-n", "128", "--n-envs", "4", "--vec-env", "batched"]
    argv += ["--hyperparams", "n_steps:32", "batch_size:64", "n_epochs:1", "--eval-freq", "0", "-f", str(tmp_path)]
    assert train_main([*argv, "--no-progress", "--verbose", "0"]) == 0
    run = tmp_path / "ppo" / "ceas_gym-EntanglementScheduling-Small-v0_1"
    assert (run / "ceas_gym-EntanglementScheduling-Small-v0.zip").is_file()
    with pytest.raises(SystemExit) as exit_:
        train_main(["--env", "ceas_gym/EntanglementScheduling-Lite-v0", "--vec-env", "batched", "-f", str(tmp_path)])
    assert exit_.value.code == 2 and "--vec-env batched: available for" in capsys.readouterr().err


def test_vec_env_comes_from_the_file_unless_the_flag_overrides_it(tmp_path, capsys) -> None:
    from training.train import build_parser, resolve_new_run

    parser = build_parser()
    small = ["--env", "ceas_gym/EntanglementScheduling-Small-v0"]
    assert resolve_new_run(parser, parser.parse_args(small))["hyperparams"]["vec_env"] == "batched"
    flagged = parser.parse_args([*small, "--vec-env", "dummy"])
    assert resolve_new_run(parser, flagged)["hyperparams"]["vec_env"] == "dummy"
    lite = parser.parse_args(["--env", "ceas_gym/EntanglementScheduling-Lite-v0"])
    assert resolve_new_run(parser, lite)["hyperparams"]["vec_env"] == "dummy"
    with pytest.raises(SystemExit):
        resolve_new_run(parser, parser.parse_args([*small, "--hyperparams", "vec_env:threads"]))
    assert "vec_env = 'threads': allowed are dummy, subproc, batched" in capsys.readouterr().err


def test_env_kwargs_in_the_file_reach_the_environment_and_the_flag_wins(tmp_path, capsys) -> None:
    from training.train import build_parser, resolve_new_run

    conf = tmp_path / "ppo.yml"
    conf.write_text(
        "default: {policy: MultiInputPolicy, n_envs: 1, n_timesteps: 64}\n"
        "ceas_gym/EntanglementScheduling-Small-v0: {env_kwargs: {max_rounds: 7, budget: 30}}\n",
        encoding="utf-8",
    )
    parser = build_parser()
    argv = ["--env", "ceas_gym/EntanglementScheduling-Small-v0", "--conf-file", str(conf)]
    config = resolve_new_run(parser, parser.parse_args([*argv, "--env-kwargs", "budget:20"]))
    assert config["env_kwargs"] == {"max_rounds": 7, "budget": 20}
    assert "env_kwargs" not in config["hyperparams"]
    conf.write_text("default: {n_envs: 1, n_timesteps: 64, env_kwargs: [1, 2]}\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        resolve_new_run(parser, parser.parse_args(argv))
    assert "env_kwargs = [1, 2]: expected a mapping" in capsys.readouterr().err


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize(("dtype", "tolerance"), [("complex128", 1e-6), ("complex64", 1e-3)])
def test_learning_layer_on_cuda_follows_the_cpu_batched_env(dtype, tolerance) -> None:
    """Tolerances as for the single environment (tests/test_ceas_env.py): float32 stamps differ by about 1e-4."""
    envs = [
        BatchedEntanglementSchedulingEnv(
            2, preset="small", **SHORT, learning={"device": device, "circuit": {"dtype": dtype}}
        )
        for device in ("cpu", "cuda")
    ]
    assert envs[1].params.device.type == "cuda" and envs[1].train_features.device.type == "cuda"
    for env in envs:
        env.reset(seed=[3, 4])
    actions = np.full((2, *envs[0].single_action_space.shape), 0.4, dtype=np.float32)
    for _ in range(8):  # through one autoreset (SHORT: 6 rounds)
        (cpu_obs, cpu_rewards, *_, cpu_info), (gpu_obs, gpu_rewards, *_, gpu_info) = (env.step(actions) for env in envs)
        np.testing.assert_allclose(gpu_info["accuracy"], cpu_info["accuracy"], atol=1e-6, rtol=0)
        np.testing.assert_allclose(gpu_rewards, cpu_rewards, atol=tolerance, rtol=0)
        for key in cpu_obs:
            np.testing.assert_allclose(gpu_obs[key], cpu_obs[key], atol=tolerance, rtol=0, err_msg=key)
