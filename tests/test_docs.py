"""Run every ``python`` code block of docs/plugins.md, each on its own in a temporary folder."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest

import ceas_gym  # noqa: F401
from ceas_gym import plugins
from ceas_gym.consensus.protocol import CONSENSUS_PROTOCOLS
from ceas_gym.learning.aggregators import AGGREGATORS
from ceas_gym.learning.attacks import ATTACKS
from ceas_gym.network.demand import DEMAND_SOURCES
from ceas_gym.network.hardware import HARDWARE_PROFILES
from ceas_gym.network.topology import TOPOLOGIES

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
EXTENSION_REGISTRIES = {
    "TOPOLOGIES": TOPOLOGIES,
    "HARDWARE_PROFILES": HARDWARE_PROFILES,
    "ATTACKS": ATTACKS,
    "AGGREGATORS": AGGREGATORS,
    "DEMAND_SOURCES": DEMAND_SOURCES,
    "CONSENSUS_PROTOCOLS": CONSENSUS_PROTOCOLS,
}
PLUGIN_MODULES = ("ceas_plugin_example",)


def python_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


BLOCKS = python_blocks(TUTORIAL.read_text())


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Run in a temporary folder and undo the block's registrations, sys.path entries and plug-in imports."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(plugins, "_LOADED", set())
    for registry in EXTENSION_REGISTRIES.values():
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    known_ids = set(gym.registry)
    yield
    for env_id in set(gym.registry) - known_ids:
        del gym.registry[env_id]
    for module in PLUGIN_MODULES:
        sys.modules.pop(module, None)


def test_block_extraction_by_hand() -> None:
    text = "intro\n```python\nx = 1\n```\n```toml\n[a]\n```\n```python\ny = 2\nz = 3\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = 2\nz = 3\n"]


def test_tutorial_covers_every_extension_point() -> None:
    text = TUTORIAL.read_text()
    for name in EXTENSION_REGISTRIES:
        assert f"`{name}`" in text, f"docs/plugins.md does not document {name}"
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_tutorial_block_runs(index: int) -> None:
    code = compile(BLOCKS[index], f"docs/plugins.md (python block {index + 1})", "exec")
    exec(code, {"__name__": f"docs_plugins_block_{index + 1}"})
