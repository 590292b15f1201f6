"""Command-line help is plain text: the docstrings' reST markup does not reach the terminal."""

from __future__ import annotations

import re

import pytest

from ceas_gym.help_text import plain_text


def test_roles_literals_and_double_colons_become_plain_text() -> None:
    doc = "Uses :class:`~ceas_gym.envs.ceas.EntanglementSchedulingEnv` and :mod:`training.run_folder`.\n" \
        "Set ``n_steps`` and :func:`make <agents.registry.make_policy>`.\n\nExample::\n\n    ceas-train"  # fmt: skip
    assert plain_text(doc) == (
        "Uses EntanglementSchedulingEnv and training.run_folder.\nSet n_steps and make.\n\nExample:\n\n    ceas-train"
    )
    assert plain_text(None) == ""


MARKUP = re.compile(r"``|:[a-z]+:`|::\n")


@pytest.mark.parametrize(
    ("module", "name"),
    [("training.train", "build_parser"), ("evaluation.cli", "build_parser"), ("evaluation.bench", "build_parser")],
)
def test_the_tools_help_has_no_rest_markup(module: str, name: str) -> None:
    import importlib

    parser = getattr(importlib.import_module(module), name)()
    text = parser.format_help()
    assert not MARKUP.search(text), MARKUP.search(text)
    assert len(text) > 500  # the description (the module docstring) is there
