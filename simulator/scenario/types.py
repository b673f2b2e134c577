"""Value types shared by the scenario's sections: strict models, positive floats, fractions."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


def numbers_only(annotation: Any) -> bool:
    """Whether a field takes numbers but no boolean (``true`` would count as 1 there)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return numbers_only(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        return bool not in options and any(numbers_only(o) for o in options)
    return annotation in (int, float)


def numbers_only_items(annotation: Any) -> bool:
    """Whether a field is a list whose items take numbers but no boolean."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return numbers_only_items(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(numbers_only_items(o) for o in typing.get_args(annotation))
    return origin in (list, tuple) and any(numbers_only(a) for a in typing.get_args(annotation))


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
        field = cls.model_fields.get(info.field_name) if info.field_name is not None else None
        if field is None:
            return value
        if isinstance(value, bool) and numbers_only(field.annotation):
            raise ValueError(f"expected a number, found the boolean {str(value).lower()}")
        if isinstance(value, (list, tuple)) and numbers_only_items(field.annotation):
            found = next((v for v in value if isinstance(v, bool)), None)
            if found is not None:
                raise ValueError(f"expected numbers, found the boolean {str(found).lower()}")
        return value
