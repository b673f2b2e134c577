"""Value rules shared by a method's parameters and the scenario's sections.

YAML and ``--set`` hand over typed values, and pydantic would take ``true``
as the number 1: ``lr: true`` or ``rounds.count: true`` would then run a
method nobody asked for. Both the scenario's models and every method's
parameter model refuse a boolean (or a quoted number, which YAML reads as
text) wherever a number is expected, by the rule here (one place, so the two
can never disagree).
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, ValidationInfo, field_validator


def numbers_only(annotation: Any, items: bool = False) -> bool:
    """Whether a field takes numbers but no boolean (``true`` would count as 1 there);
    with ``items``, whether it is a list or tuple whose items do."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return numbers_only(typing.get_args(annotation)[0], items)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        found = any(numbers_only(o, items) for o in options)
        return found if items else found and bool not in options
    if items:
        return origin in (list, tuple) and any(numbers_only(a) for a in typing.get_args(annotation))
    return annotation in (int, float)


def takes_text(annotation: Any) -> bool:
    """Whether a field accepts text anywhere in its type (then a quoted number may be meant)."""
    if annotation is str:
        return True
    if typing.get_origin(annotation) is typing.Literal:
        return any(isinstance(a, str) for a in typing.get_args(annotation))
    return any(takes_text(a) for a in typing.get_args(annotation))


class NoBooleanNumbers(BaseModel):
    """A model whose number fields (and lists of numbers) refuse booleans and quoted text.

    ``rounds.count: "5"`` would otherwise be read as 5: a quoted value is text
    in YAML, and a scenario says what it means.
    """

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, (bool, str)):
            found, items = value, False
        elif isinstance(value, (list, tuple)):
            found = next((v for v in value if isinstance(v, (bool, str))), None)
            items = True
        else:
            return value  # the common case: no field lookup at all
        field = cls.model_fields.get(info.field_name or "")
        if found is None or field is None or not numbers_only(field.annotation, items):
            return value
        what = "numbers" if items else "a number"
        if isinstance(found, bool):
            raise ValueError(f"expected {what}, found the boolean {str(found).lower()}")
        if not takes_text(field.annotation):
            hint = " (write it without quotes)" if _numeric(found) else ""
            raise ValueError(f"expected {what}, found the text {found!r}{hint}")
        return value


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
