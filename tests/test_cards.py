"""Environment cards (python -m ceas_gym): every registered id listed with its real spaces and parameters."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import gymnasium as gym
import pytest

from ceas_gym import registered_ids
from ceas_gym.__main__ import main
from ceas_gym.cards import describe_space, environment_card, key_parameters


def test_the_listing_has_one_row_per_registered_id_with_its_spaces(capsys) -> None:
    assert main([]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ceas_gym/")]
    assert [row.split(" | ")[0][2:] for row in rows] == registered_ids()
    for env_id, row in zip(registered_ids(), rows, strict=True):
        env = gym.make(env_id)
        assert describe_space(env.unwrapped.action_space) in row
        assert f"| {gym.spec(env_id).max_episode_steps} |" in row
        env.close()


def test_a_card_carries_the_docstring_sections_and_the_configuration() -> None:
    card = environment_card("ceas_gym/EntanglementScheduling-Small-v0")
    env = gym.make("ceas_gym/EntanglementScheduling-Small-v0")
    config = env.unwrapped.config
    assert (
        card.parameters["budget"] == config.budget
        and card.parameters["topology.num_nodes"] == config.topology.num_nodes
    )
    assert dict(card.observation_keys)["trust"] == describe_space(env.unwrapped.observation_space["trust"])
    text = card.text()
    for section in ("## Description", "## Action Space", "## Observation Space", "## Rewards", "## Episode End"):
        assert section in text
    assert f"budget = {config.budget!r}" in text


def test_an_unknown_id_exits_2_and_suggests_the_close_ones() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ceas_gym", "ceas_gym/RepeaterChian-v0"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "not a registered environment; did you mean ceas_gym/RepeaterChain-v0" in result.stderr


def test_key_parameters_reads_scalars_one_level_down() -> None:
    @dataclasses.dataclass
    class Inner:
        rate: float = 0.5
        deeper: tuple = ()

    @dataclasses.dataclass
    class Outer:
        name: str = "x"
        inner: Inner = dataclasses.field(default_factory=Inner)
        items: tuple = (1, 2)

    assert key_parameters(Outer()) == {"name": "x", "inner.rate": 0.5}
    assert key_parameters(None) == {}


@pytest.mark.parametrize(
    ("space", "text"),
    [
        (gym.spaces.Box(0.0, 1.0, (3,)), "Box(0, 1, (3,), float32)"),
        (gym.spaces.MultiBinary(2), "MultiBinary(2)"),
        (gym.spaces.Dict({"a": gym.spaces.Discrete(2)}), "Dict(1 keys)"),
    ],
)
def test_spaces_are_described_in_one_line(space, text) -> None:
    assert describe_space(space) == text
