"""Docstrings as command-line help: reST markup removed, so ``--help`` reads as plain text in a terminal.

The command-line tools take their ``--help`` description from their module docstrings, which are written for the
API docs (reST: ``literal``, :mod:`roles`, ``Example::`` blocks). :func:`plain_text` turns them into what a
terminal should show: ``:role:`~a.b.c``` becomes ``c``, ``:role:`a.b.c``` becomes ``a.b.c``, double backquotes
are dropped, and ``Example::`` ends with one colon.
"""

from __future__ import annotations

import re

__all__ = ["plain_text"]

_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`(~?)([^`<]+?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``([^`]+)``")
_DOUBLE_COLON = re.compile(r"(\S)::$", re.MULTILINE)


def plain_text(doc: str | None) -> str:
    """``doc`` without reST markup (see the module docstring); an empty string for None."""
    if not doc:
        return ""
    text = _ROLE.sub(lambda match: match.group(2).rsplit(".", 1)[-1] if match.group(1) else match.group(2), doc)
    text = _LITERAL.sub(r"\1", text)
    return _DOUBLE_COLON.sub(r"\1:", text)
