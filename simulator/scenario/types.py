"""Value types shared by the scenario's sections: strict models, positive floats, fractions."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from basemodel.values import NoBooleanNumbers

PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class Strict(NoBooleanNumbers):
    """Base for every scenario section: unknown keys are errors, values are frozen.

    No float may be infinite or NaN: every quantity in a scenario is a finite
    amount (an infinite period or severity means nothing and would never end).
    A boolean is never a number: ``rounds.count: true`` is refused, not run
    as one round.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
