"""``policy_kwargs`` of a hyper-parameter file, read by parsing, never by evaluating.

Two spellings are accepted, both as rl-baselines3-zoo users write them:

* a YAML mapping, with classes named by string::

      policy_kwargs:
        net_arch: {pi: [64, 64], vf: [64, 64]}
        activation_fn: nn.ReLU

* a string in the zoo's ``dict(...)`` form, ``"dict(net_arch=[64, 64], activation_fn=nn.Tanh)"``.

The string is parsed into a Python syntax tree and only these nodes are turned into values: ``dict(k=v, ...)``
calls (keywords only), ``{...}`` with string keys, lists, tuples, numbers, strings, booleans, ``None``, a sign on a
number, and dotted names from :data:`ALLOWED_CLASSES` (``nn.ReLU``, ``th.nn.Tanh``, ``torch.optim.Adam``, ...).
Anything else (attribute access on other objects, subscripts, other calls, operators, lambdas) is a
:class:`PolicyKwargsError` naming what was found and what is allowed. Nothing in the file is executed: a
hyper-parameter file from someone else can name a class from the list, and no other code.

In a mapping, the values of :data:`CLASS_KEYS` must be dotted names from the same list.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from torch import nn, optim

__all__ = ["ALLOWED_CLASSES", "CLASS_KEYS", "PolicyKwargsError", "parse_policy_kwargs"]


class PolicyKwargsError(ValueError):
    """A ``policy_kwargs`` entry that is not one of the accepted forms."""


_ACTIVATIONS = (
    "ReLU", "Tanh", "ELU", "LeakyReLU", "GELU", "SiLU", "Sigmoid", "SELU", "Softplus", "Mish", "Hardtanh",
    "Hardswish", "Identity",
)  # fmt: skip
_OPTIMIZERS = ("Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adamax", "NAdam", "RAdam")


def _allowed_classes() -> dict[str, type]:
    classes: dict[str, type] = {}
    for name in _ACTIVATIONS:
        for prefix in ("nn", "th.nn", "torch.nn"):
            classes[f"{prefix}.{name}"] = getattr(nn, name)
    for name in _OPTIMIZERS:
        for prefix in ("th.optim", "torch.optim", "optim"):
            classes[f"{prefix}.{name}"] = getattr(optim, name)
    from stable_baselines3.common.torch_layers import CombinedExtractor, FlattenExtractor

    for extractor in (CombinedExtractor, FlattenExtractor):
        classes[extractor.__name__] = extractor
        classes[f"stable_baselines3.common.torch_layers.{extractor.__name__}"] = extractor
    return classes


ALLOWED_CLASSES: dict[str, type] = _allowed_classes()
"""Dotted names a ``policy_kwargs`` entry may use, and the classes they stand for."""

CLASS_KEYS = frozenset({"activation_fn", "optimizer_class", "features_extractor_class"})
"""Keys whose value in a YAML mapping is a class named by a string of :data:`ALLOWED_CLASSES`."""


def _allowed_summary() -> str:
    activations = ", ".join(f"nn.{name}" for name in _ACTIVATIONS)
    optimizers = ", ".join(f"th.optim.{name}" for name in _OPTIMIZERS)
    return f"activations {activations}; optimizers {optimizers}; extractors CombinedExtractor, FlattenExtractor"


def _dotted_name(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attribute accesses on a name, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _class_named(name: str, where: str) -> type:
    if name not in ALLOWED_CLASSES:
        raise PolicyKwargsError(
            f"policy_kwargs: {where} names {name!r}, which is not allowed; allowed: {_allowed_summary()}"
        )
    return ALLOWED_CLASSES[name]


def _value(node: ast.AST, where: str) -> Any:
    """The value of one node of the parsed string, by the rules of the module docstring."""
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, bool | int | float | str)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _value(node.operand, where)
        if isinstance(operand, bool) or not isinstance(operand, int | float):
            raise PolicyKwargsError(f"policy_kwargs: {where}: a sign applies to numbers only")
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.List | ast.Tuple):
        items = [_value(item, f"{where}[{i}]") for i, item in enumerate(node.elts)]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        result = {}
        for key, item in zip(node.keys, node.values, strict=True):
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                raise PolicyKwargsError(f"policy_kwargs: {where}: mapping keys must be strings")
            result[key.value] = _value(item, f"{where}.{key.value}")
        return result
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id == "dict") or node.args:
            raise PolicyKwargsError(
                f"policy_kwargs: {where}: the only call allowed is dict(key=value, ...) with keyword arguments"
            )
        if any(keyword.arg is None for keyword in node.keywords):
            raise PolicyKwargsError(f"policy_kwargs: {where}: dict(**...) is not allowed; write the keys out")
        return {keyword.arg: _value(keyword.value, f"{where}.{keyword.arg}") for keyword in node.keywords}
    name = _dotted_name(node)
    if name is not None:
        return _class_named(name, where)
    raise PolicyKwargsError(
        f"policy_kwargs: {where}: {type(node).__name__} is not allowed; allowed are dict(...), {{...}}, lists, "
        "tuples, numbers, strings, booleans, None and the class names of training.policy_kwargs.ALLOWED_CLASSES"
    )


def _resolve_mapping(mapping: Mapping[str, Any], where: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise PolicyKwargsError(f"policy_kwargs: {where}: keys must be strings, got {key!r}")
        if key in CLASS_KEYS:
            if isinstance(value, str):
                value = _class_named(value, f"{where}{key}")
            elif not (isinstance(value, type) and value in ALLOWED_CLASSES.values()):
                raise PolicyKwargsError(
                    f"policy_kwargs: {where}{key} = {value!r}: expected a class name such as 'nn.ReLU'; "
                    f"allowed: {_allowed_summary()}"
                )
        elif isinstance(value, Mapping):
            value = _resolve_mapping(value, f"{where}{key}.")
        result[key] = value
    return result


def parse_policy_kwargs(value: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Turn a ``policy_kwargs`` entry into the keyword arguments of the policy.

    Args:
        value: A mapping (class names as strings for :data:`CLASS_KEYS`), a string in the zoo's ``dict(...)`` form,
            or None for no keyword arguments.

    Returns:
        The keyword arguments, classes resolved from :data:`ALLOWED_CLASSES`.

    Raises:
        PolicyKwargsError: On syntax that is not one of the accepted forms, a class name that is not allowed, or a
            result that is not a mapping; nothing of the entry is executed.
    """
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return _resolve_mapping(value, "")
    if not isinstance(value, str):
        raise PolicyKwargsError(f"policy_kwargs = {value!r}: expected a mapping or a 'dict(...)' string")
    try:
        tree = ast.parse(value.strip(), mode="eval")
    except SyntaxError as error:
        raise PolicyKwargsError(f"policy_kwargs = {value!r}: not valid syntax ({error.msg})") from None
    result = _value(tree.body, "the entry")
    if not isinstance(result, dict):
        raise PolicyKwargsError(f"policy_kwargs = {value!r}: must be a mapping, e.g. dict(net_arch=[64, 64])")
    return result
