"""``--set KEY.PATH=VALUE``: change any scenario value from the command line.

The value is parsed as YAML (``10``, ``0.5``, ``true``, ``[1, 2]``, ``{a: 1}``)
and written into the raw document before validation, so an override is
checked exactly like the file.
"""

from __future__ import annotations

import argparse
import copy
import re
from typing import Any

import yaml

from simulator.catalog.errors import ScenarioError
from simulator.scenario.yaml12 import load_yaml


def add_set_option(parser: argparse.ArgumentParser, help: str) -> None:
    """The ``--set KEY.PATH=VALUE`` option (repeatable), spelt the same by every command."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE", help=help
    )


_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def parse_key_path(path: str) -> list[str | int]:
    """``fleet.classes[1].share`` -> ``['fleet', 'classes', 1, 'share']``."""
    parts: list[str | int] = []
    for chunk in path.split("."):
        match = _PART.fullmatch(chunk)
        if not match:
            raise ValueError(f"bad key path {path!r} (near {chunk!r})")
        parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return parts


def _set(document: dict[str, Any], parts: list[str | int], value: Any, text: str) -> None:
    node: Any = document
    for depth, part in enumerate(parts[:-1]):
        following = parts[depth + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise ValueError(f"{text}: index [{part}] is out of range")
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise ValueError(f"{text}: {part!r} is not inside a mapping")
        if part not in node or node[part] is None:
            node[part] = [] if isinstance(following, int) else {}
        node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last > len(node):
            raise ValueError(f"{text}: index [{last}] is out of range")
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ValueError(f"{text}: {last!r} is not inside a mapping")


def apply_overrides(
    document: dict[str, Any], overrides: list[str] | tuple[str, ...], source: str
) -> dict[str, Any]:
    """Return a copy of ``document`` with every ``KEY.PATH=VALUE`` applied in order."""
    result = copy.deepcopy(document)
    for text in overrides:
        if "=" not in text:
            raise ScenarioError(f"{source}: --set {text!r}: expected KEY.PATH=VALUE")
        key, raw = text.split("=", 1)
        try:
            value = load_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        try:
            _set(result, parse_key_path(key.strip()), value, f"--set {key.strip()}")
        except ValueError as err:
            raise ScenarioError(f"{source}: {err}") from None
    return result
