"""Errors a user can act on, and the one place pydantic's messages are made readable.

``UserError`` is any input problem (a scenario, a run folder, an option); the
CLI prints it as one line. ``ScenarioError`` names the file and key path.
"""

from __future__ import annotations

import difflib
import re
import typing
from typing import Any

from pydantic import ValidationError


class UserError(Exception):
    """An error caused by input; the CLI prints it as one line and exits non-zero."""


class ScenarioError(UserError):
    """A scenario file or override is invalid. The message names file, key path and fix."""


def key_path(loc: tuple[int | str, ...]) -> str:
    """Turn pydantic's location tuple into ``fleet.classes[1].uplink_kbps.median``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", str(part)):
            out += f".{part}" if out else str(part)
        else:  # a key with spaces, dots or control characters: show it quoted, on one line
            out += f"[{str(part)!r}]"
    return out or "<top level>"


def _describe_found(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_INNER_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[\d+\])?(\.[A-Za-z_][A-Za-z0-9_]*(\[\d+\])?)*: ")


def closest(word: str, valid: list[str]) -> str:
    """`` (did you mean 'persona'?)`` for a near miss among ``valid``, else nothing."""
    close = difflib.get_close_matches(word, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _keys_at(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """The keys a model accepts at ``loc`` (following fields, lists and optionals)."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _model_in(field.annotation)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    """The pydantic model an annotation holds (``X``, ``X | None``, ``list[X]``), if one."""
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return annotation
    for inner in typing.get_args(annotation):
        found = _model_in(inner)
        if found is not None:
            return found
    return None


def _one_error(error: dict[str, Any], model: Any = None) -> str:
    loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    found = error.get("input")
    if kind == "missing":
        return f"{key_path(loc)}: required key is missing"
    if kind == "extra_forbidden":
        valid = _keys_at(model, loc[:-1]) if model is not None and loc else []
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1) if valid else []
        hint = f"did you mean {close[0]!r}?" if close else "check its spelling and indentation"
        return f"{key_path(loc)}: unknown key ({hint})"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        return f"{key_path(loc)}: expected one of {expected}; found {_describe_found(found)}"
    if kind == "value_error":
        # Our own validators already phrase the path and the fix.
        message = str(ctx.get("error", error.get("msg", "")))
        prefix = key_path(loc)
        if prefix == "<top level>":
            return message
        # A section's validator that names a key inside it ("classes[1].share: ...")
        # reads as one key path: "fleet.classes[1].share: ...".
        joined = "." if _INNER_KEY.match(message) else ": "
        return f"{prefix}{joined}{message}"
    message = error.get("msg", "invalid value")
    message = message[0].lower() + message[1:] if message else message
    return f"{key_path(loc)}: expected {message.removeprefix('input should be ')}; found " + (
        _describe_found(found)
    )


def format_validation_error(err: ValidationError, source: str, model: Any = None) -> str:
    """One line per problem, each prefixed with the file, e.g.
    ``lowbandwidth.yaml: rounds.count: expected greater than or equal to 1; found 0``.
    """
    lines = [f"{source}: {_one_error(e, model)}" for e in err.errors(include_url=False)]
    return "\n".join(lines)


def resume_refusal(given: list[tuple[str, object]], folder_kind: str) -> str | None:
    """The refusal of a ``--resume`` given other options (the folder holds them), or None.

    ``given`` pairs each option's name with its value; ``folder_kind`` is
    ``run`` or ``sweep``.
    """
    named = [flag for flag, value in given if value]
    if not named:
        return None
    return f"--resume takes no {', '.join(named)}: the {folder_kind} folder holds them"
