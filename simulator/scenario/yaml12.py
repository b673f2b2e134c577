"""YAML with the 1.2 core schema's plain scalars: what a value looks like is what it is.

PyYAML's safe loader follows YAML 1.1, where ``011`` is octal 9, ``1:30`` is
sexagesimal 90 and ``on``, ``yes`` or ``n`` are booleans, so ``--set
rounds.count=011`` silently runs 9 rounds. The 1.2 core schema keeps what a
reader expects: decimal integers (``011`` is 11), ``0o``/``0x`` prefixes,
floats including ``1e-3``, ``.inf`` and ``.nan``, ``true``/``false`` as the only
booleans and ``null``/``~`` as null; anything else is a string, which the
scenario's typed fields then refuse by name. Still the safe constructors:
tags that build Python objects are refused as before.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_RESOLVERS: list[tuple[str, re.Pattern[str], list[str]]] = [
    ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")),
    (
        "tag:yaml.org,2002:int",
        re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
        list("-+0123456789"),
    ),
    (
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+0123456789."),
    ),
    ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]),
]


class CoreLoader(yaml.SafeLoader):
    """The safe loader with the 1.2 core schema's resolvers in place of 1.1's."""

    yaml_implicit_resolvers: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {
        key: [(tag, rx) for tag, rx in resolvers if tag == "tag:yaml.org,2002:merge"]
        for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


for _tag, _pattern, _first in _RESOLVERS:
    CoreLoader.add_implicit_resolver(_tag, _pattern, _first)


def _int(loader: CoreLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if body.startswith("0o"):
        return sign * int(body[2:], 8)
    if body.startswith("0x"):
        return sign * int(body[2:], 16)
    return sign * int(body, 10)


def _bool(loader: CoreLoader, node: yaml.ScalarNode) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"


CoreLoader.add_constructor("tag:yaml.org,2002:int", _int)
CoreLoader.add_constructor("tag:yaml.org,2002:bool", _bool)


def load_yaml(text: str) -> Any:
    """Decode ``text`` as YAML data with 1.2 core scalars (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=CoreLoader)  # noqa: S506 - CoreLoader is a SafeLoader
