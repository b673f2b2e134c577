"""Value types shared by the scenario's sections: strict models, positive floats, fractions."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


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


class Strict(BaseModel):
    """Base for every scenario section: unknown keys are errors, values are frozen.

    No float may be infinite or NaN: every quantity in a scenario is a finite
    amount (an infinite period or severity means nothing and would never end).
    A boolean is never a number: ``rounds.count: true`` is refused, not run
    as one round.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool):
            found, items = value, False
        elif isinstance(value, (list, tuple)):
            found, items = next((v for v in value if isinstance(v, bool)), None), True
        else:
            return value  # the common case: no field lookup at all
        field = cls.model_fields.get(info.field_name or "")
        if found is not None and field is not None and numbers_only(field.annotation, items):
            what = "numbers" if items else "a number"
            raise ValueError(f"expected {what}, found the boolean {str(found).lower()}")
        return value
