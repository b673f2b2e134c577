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

import math
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


def _merge_only(resolvers: dict) -> dict:
    return {
        key: [(tag, rx) for tag, rx in found if tag == "tag:yaml.org,2002:merge"]
        for key, found in resolvers.items()
    }


class CoreLoader(yaml.SafeLoader):
    """The safe loader with the 1.2 core schema's resolvers in place of 1.1's."""

    yaml_implicit_resolvers = _merge_only(yaml.SafeLoader.yaml_implicit_resolvers)


class CoreDumper(yaml.SafeDumper):
    """The safe dumper quoting exactly the strings the 1.2 core schema would read as
    something else (``08``, ``1e3``, ``true``), so what it writes ``load_yaml`` reads back."""

    yaml_implicit_resolvers = _merge_only(yaml.SafeDumper.yaml_implicit_resolvers)


for _tag, _pattern, _first in _RESOLVERS:
    CoreLoader.add_implicit_resolver(_tag, _pattern, _first)
    CoreDumper.add_implicit_resolver(_tag, _pattern, _first)

_PATTERNS = {tag: pattern for tag, pattern, _ in _RESOLVERS}


def _checked(loader: CoreLoader, node: yaml.ScalarNode, tag: str) -> str:
    """The scalar's text, refused when an explicit tag asks for what it does not look like
    (``!!int 1:30``, ``!!bool yes``)."""
    text = str(loader.construct_scalar(node))
    if not _PATTERNS[tag].match(text):
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a YAML 1.2 {tag.rsplit(':', 1)[-1]}", node.start_mark
        )
    return text


def _int(loader: CoreLoader, node: yaml.ScalarNode) -> int:
    text = _checked(loader, node, "tag:yaml.org,2002:int")
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if body.startswith("0o"):
        return sign * int(body[2:], 8)
    if body.startswith("0x"):
        return sign * int(body[2:], 16)
    return sign * int(body, 10)


def _bool(loader: CoreLoader, node: yaml.ScalarNode) -> bool:
    return _checked(loader, node, "tag:yaml.org,2002:bool").lower() == "true"


def _float(loader: CoreLoader, node: yaml.ScalarNode) -> float:
    text = _checked(loader, node, "tag:yaml.org,2002:float").lower()
    if text.endswith("inf"):
        return -math.inf if text.startswith("-") else math.inf
    return math.nan if text.endswith("nan") else float(text)


def _mapping(loader: CoreLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """A mapping whose keys each appear once: a second ``rounds:`` block would otherwise
    replace the first without a word."""
    seen: set = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            key = loader.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


CoreLoader.construct_mapping = _mapping  # type: ignore[method-assign]
CoreLoader.add_constructor("tag:yaml.org,2002:int", _int)
CoreLoader.add_constructor("tag:yaml.org,2002:bool", _bool)
CoreLoader.add_constructor("tag:yaml.org,2002:float", _float)


def dump_yaml(document: Any, **options: Any) -> str:
    """``document`` as YAML that ``load_yaml`` reads back to the same values."""
    return yaml.dump(document, Dumper=CoreDumper, **options)


def load_yaml(text: str) -> Any:
    """Decode ``text`` as YAML data with 1.2 core scalars (raises ``yaml.YAMLError``)."""
    try:
        return yaml.load(text, Loader=CoreLoader)  # noqa: S506 - CoreLoader is a SafeLoader
    except RecursionError:  # the parser recurses per level: a thousand brackets end it
        raise yaml.YAMLError("nested too deeply to be a scenario value") from None
