"""Plug-in discovery through entry points, ``module:EnvId`` ids and the example plug-in's registrations."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import ceas_gym  # noqa: F401
from ceas_gym import plugins
from ceas_gym.config import ConfigError
from ceas_gym.consensus.protocol import CONSENSUS_PROTOCOLS
from ceas_gym.learning.aggregators import AGGREGATORS
from ceas_gym.learning.attacks import ATTACKS, make_attack
from ceas_gym.network.demand import DEMAND_SOURCES
from ceas_gym.network.hardware import HARDWARE_PROFILES
from ceas_gym.network.topology import TOPOLOGIES
from ceas_gym.plugins import PluginError, PluginWarning, load_plugins, resolve_env_id
from ceas_gym.registry import UnknownNameError

PLUGIN_ROOT = Path(__file__).resolve().parent / "plugin_example"
REPOSITORY = PLUGIN_ROOT.parents[1]
ENV_ID = "ceas_plugin_example/EntanglementScheduling-Lite-Line-v0"
PLUGIN_MODULES = ("ceas_plugin_example", "ceas_plugin_broken", "modonly_plugin")


EXTENSION_REGISTRIES = (TOPOLOGIES, HARDWARE_PROFILES, ATTACKS, AGGREGATORS, DEMAND_SOURCES, CONSENSUS_PROTOCOLS)


@pytest.fixture(autouse=True)
def isolated_registries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo every registration a test makes (extension registries and gym ids), so other test files see none."""
    for registry in EXTENSION_REGISTRIES:
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    known_ids = set(gym.registry)
    yield
    for env_id in set(gym.registry) - known_ids:
        del gym.registry[env_id]
    for module in PLUGIN_MODULES:  # a later import runs the plug-in's registrations again
        sys.modules.pop(module, None)


@pytest.fixture
def fresh_plugin_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which entry points were loaded, so every test sees its own first load."""
    monkeypatch.setattr(plugins, "_LOADED", set())


@pytest.fixture
def example_on_path(monkeypatch: pytest.MonkeyPatch, fresh_plugin_state: None) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN_ROOT))


@pytest.fixture
def broken_on_path(monkeypatch: pytest.MonkeyPatch, fresh_plugin_state: None) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN_ROOT / "broken"))


def test_load_plugins_finds_the_example_once(example_on_path: None) -> None:
    assert load_plugins() == ["example"]
    assert load_plugins() == []  # idempotent: nothing loaded twice
    assert ("ceas_gym.envs", "example", "ceas_plugin_example:register") in plugins.loaded_plugins()
    assert ENV_ID in gym.registry


def test_plugin_env_makes_and_passes_check_env(example_on_path: None) -> None:
    load_plugins()
    env = gym.make(ENV_ID)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.spec is not None and env.spec.max_episode_steps == 30
    # The env runs on the plug-in's own topology: a 4-node line has 3 links of 10 km.
    instance = env.unwrapped.instance
    assert instance.num_links == 3
    np.testing.assert_allclose(instance.length_km, [10.0, 10.0, 10.0])
    env.close()


def test_module_colon_id_imports_the_plugin(monkeypatch: pytest.MonkeyPatch, fresh_plugin_state: None) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN_ROOT))
    env = gym.make(f"ceas_plugin_example:{ENV_ID}")
    observation, _ = env.reset(seed=3)
    assert env.observation_space.contains(observation)
    assert resolve_env_id(f"ceas_plugin_example:{ENV_ID}", load=False) == ENV_ID


def test_plugin_topology_attack_protocol_are_registered(example_on_path: None) -> None:
    load_plugins()
    assert "example-line" in TOPOLOGIES
    graph = TOPOLOGIES.get("example-line")(5, np.random.default_rng(0), length_km=2.5)
    assert sorted(graph.edges) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert math.isclose(sum(length for *_, length in graph.edges.data("length_km")), 10.0)

    attack = make_attack("example-free-rider")
    updates = torch.randn(3, 7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(attack(updates, 0, torch.Generator()), torch.zeros(3, 7))
    assert "example-free-rider" in ATTACKS

    protocol_class = CONSENSUS_PROTOCOLS.get("example-single-gossip")
    edges = np.array([[0, 1], [1, 2], [2, 3]])
    protocol = protocol_class(4, edges, {})
    pairs, deadline = protocol.expected_demand(edges, 0)
    np.testing.assert_array_equal(pairs, [1.0, 1.0, 1.0])  # one mixing step x one pair per exchange per link
    np.testing.assert_array_equal(deadline, [1, 1, 1])
    assert protocol_class(4, edges, {"mixing_steps": 3}).mixing_steps == 3


def test_a_plugin_protocol_runs_per_copy_in_the_batched_round_and_its_copies_are_single_envs(
    example_on_path: None,
) -> None:
    from ceas_gym.envs.batched_ceas import BatchedEntanglementSchedulingEnv
    from ceas_gym.envs.ceas import EntanglementSchedulingEnv
    from ceas_gym.envs.round_consensus import PerCopyConsensus

    load_plugins()
    settings = {
        "protocol": "example-single-gossip",
        "protocol_config": {"example-single-gossip": {"bft": {"min_active": 5}}},
        "max_rounds": 4,
    }
    batched = BatchedEntanglementSchedulingEnv(2, preset="small", **settings)
    assert isinstance(batched.round.consensus, PerCopyConsensus)  # a subclass of ceas is not batched as ceas
    singles = [EntanglementSchedulingEnv(preset="small", **settings) for _ in range(2)]
    observation, _ = batched.reset(seed=[4, 5])
    for env, seed in zip(singles, (4, 5), strict=True):
        env.reset(seed=seed)
    actions = np.random.default_rng(0).random((3, 2, *batched.single_action_space.shape)).astype(np.float32)
    for step_actions in actions:
        observation, rewards, *_ = batched.step(step_actions)
        for copy, env in enumerate(singles):
            single_observation, reward, *_ = env.step(step_actions[copy])
            assert reward == rewards[copy]
            assert np.array_equal(single_observation["inventory"], observation["inventory"][copy])
            assert np.array_equal(single_observation["quarantined"], observation["quarantined"][copy])


def test_a_protocol_without_the_common_interface_is_refused_naming_what_it_lacks() -> None:
    from ceas_gym.envs.ceas import EntanglementSchedulingEnv

    class NoRound:
        name = "no-round"

        def __init__(self, num_nodes, edges, config) -> None:
            self.active = np.ones(num_nodes, dtype=bool)

        def reset(self) -> None: ...

    CONSENSUS_PROTOCOLS.add("no-round", NoRound)  # the autouse fixture undoes the registration
    with pytest.raises(ConfigError, match=r"'no-round': lacks run_round, expected_demand, trust"):
        EntanglementSchedulingEnv(preset="small", protocol="no-round")


def test_ceas_env_runs_with_plugin_protocol_and_attack(example_on_path: None) -> None:
    from ceas_gym.envs.ceas import EntanglementSchedulingEnv

    load_plugins()
    env = EntanglementSchedulingEnv(  # min_active of the BFT default (15) would exceed the preset's 10 nodes
        preset="small",
        protocol="example-single-gossip",
        protocol_config={"example-single-gossip": {"bft": {"min_active": 5}}},
        learning={"attack": "example-free-rider"},
    )
    assert env.protocol.mixing_steps == 1
    observation, _ = env.reset(seed=0)
    observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(observation)
    assert np.isfinite(reward) and not terminated and not truncated
    assert info["round"] == 1


def test_broken_plugin_raises_naming_plugin_and_entry_point(broken_on_path: None) -> None:
    with pytest.raises(PluginError, match=r"'broken'.*ceas_plugin_broken:register.*example failure") as caught:
        load_plugins()
    assert "ceas-plugin-broken" in str(caught.value)
    assert isinstance(caught.value.__cause__, RuntimeError)
    # A failed plug-in is not marked loaded: it fails again.
    with pytest.raises(PluginError):
        load_plugins()


def test_broken_plugin_warns_and_others_still_load(broken_on_path: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN_ROOT))
    with pytest.warns(PluginWarning, match="ceas_plugin_broken:register"):
        loaded = load_plugins(on_error="warn")
    assert loaded == ["example"]


def test_module_entry_point_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugin_state: None
) -> None:
    (tmp_path / "modonly_plugin.py").write_text(
        textwrap.dedent(
            """
            from ceas_gym.network.topology import TOPOLOGIES
            from ceas_gym.network.topology import ring

            TOPOLOGIES.add("modonly-ring", ring)
            """
        )
    )
    info = tmp_path / "modonly_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: modonly-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ceas_gym.envs]\nmodonly = modonly_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "modonly" in load_plugins()
    assert TOPOLOGIES.get("modonly-ring") is TOPOLOGIES.get("ring")


def test_registrations_of_a_test_are_undone() -> None:
    assert "example-single-gossip" not in CONSENSUS_PROTOCOLS
    assert "example-line" not in TOPOLOGIES
    assert ENV_ID not in gym.registry


def test_load_plugins_rejects_unknown_error_mode() -> None:
    with pytest.raises(ConfigError, match="on_error"):
        load_plugins(on_error="ignore")  # type: ignore[arg-type]


def test_resolve_env_id_accepts_registered_ids() -> None:
    assert resolve_env_id("ceas_gym/RepeaterChain-v0") == "ceas_gym/RepeaterChain-v0"
    assert resolve_env_id("CartPole-v1") == "CartPole-v1"


@pytest.mark.parametrize(
    ("env_id", "suggestion"),
    [
        ("RepeaterChain-v0", "ceas_gym/RepeaterChain-v0"),  # namespace left out
        ("ceas_gym/RepeaterChian-v0", "ceas_gym/RepeaterChain-v0"),  # typo
        ("ceas_gym/EntanglementScheduling-Lite-Tny-v0", "ceas_gym/EntanglementScheduling-Lite-Tiny-v0"),
    ],
)
def test_resolve_env_id_suggests_close_ids(env_id: str, suggestion: str) -> None:
    with pytest.raises(UnknownNameError, match="Did you mean") as caught:
        resolve_env_id(env_id)
    assert repr(suggestion) in str(caught.value)
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ConfigError)


def test_resolve_env_id_suggests_plugin_ids(example_on_path: None) -> None:
    with pytest.raises(UnknownNameError, match="EntanglementScheduling-Lite-Line-v0"):
        resolve_env_id("ceas_plugin_example/EntanglementScheduling-Lite-Lin-v0")


def test_resolve_env_id_reports_bad_module_and_unregistered_id(example_on_path: None) -> None:
    with pytest.raises(PluginError, match="no_such_module_xyz"):
        resolve_env_id("no_such_module_xyz:Foo-v0")
    with pytest.raises(UnknownNameError, match="did not register it"):
        resolve_env_id("ceas_plugin_example:ceas_plugin_example/Nothing-v0")
    with pytest.raises(UnknownNameError, match="non-empty"):
        resolve_env_id("")


def _python(code: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, paths), str(REPOSITORY)])}
    return subprocess.run(
        [sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, env=environment, check=False
    )


def test_import_ceas_gym_loads_plugins_and_only_warns_about_broken_ones() -> None:
    result = _python(
        f"import gymnasium as gym, ceas_gym; print({ENV_ID!r} in gym.registry)", PLUGIN_ROOT, PLUGIN_ROOT / "broken"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    assert "PluginWarning" in result.stderr and "ceas_plugin_broken:register" in result.stderr


def test_import_ceas_gym_without_plugins_stays_free_of_torch() -> None:
    result = _python("import sys, ceas_gym; print('torch' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("command", ["train", "eval", "bench"])
def test_every_command_accepts_module_colon_env_ids(command, tmp_path, capsys):
    """``module:EnvId`` passes each CLI's id check (the module is imported), and a bad module is a clear error."""
    from evaluation import bench, cli
    from training import train

    good = "ceas_gym.envs.registration:ceas_gym/EntanglementScheduling-Lite-Tiny-v0"
    bad = "no_such_plugin_module:Foo-v0"
    parsers = {"train": train.build_parser, "eval": cli.build_parser, "bench": bench.build_parser}
    parser = parsers[command]()
    check = {"train": train.check_env_id, "eval": None, "bench": lambda p, e: bench.check_env_ids(p, [e])}[command]
    if command == "eval":
        args = parser.parse_args(["--env", good, "--policies", "eef", "--out", str(tmp_path)])
        cli.check_arguments(parser, args)
        args.env = [bad]
        with pytest.raises(SystemExit):
            cli.check_arguments(parser, args)
    else:
        check(parser, good)
        with pytest.raises(SystemExit):
            check(parser, bad)
    assert "no_such_plugin_module" in capsys.readouterr().err
