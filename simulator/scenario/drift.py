"""How data drifts, in a scenario: shifts with onsets, and a time x group context schedule."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from simulator.catalog.shifts import (
    COVARIATE_NAMES,
    INTEREST_NAMES,
    SHIFT_NAMES,
    severity_problem,
)
from simulator.scenario.types import Fraction, PositiveFloat, Strict

# In the kind's own unit (degrees, pixels, ...); nothing means more than a thousand of them.
Severity = Annotated[float, Field(ge=0, le=1000)]
CovariateKind = Literal[COVARIATE_NAMES]  # type: ignore[valid-type]
KnownKind = Literal[COVARIATE_NAMES + INTEREST_NAMES]  # type: ignore[valid-type]
ShiftKindName = Literal[SHIFT_NAMES]  # type: ignore[valid-type]


class AppliesTo(Strict):
    """Which devices a shift touches: all, a seeded random fraction, or one device class."""

    all: bool = False
    fraction: Fraction | None = None
    group: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> AppliesTo:
        chosen = [self.all, self.fraction is not None, self.group is not None]
        if sum(chosen) != 1:
            raise ValueError("set exactly one of 'all: true', 'fraction' or 'group'")
        return self


class SeverityChecked(Strict):
    """A section naming a shift ``kind`` whose ``severity`` must lie in that kind's range
    (its unit and bounds are in ``simulator.catalog.shifts``)."""

    @model_validator(mode="after")
    def _severity_in_range(self) -> SeverityChecked:
        problem = severity_problem(self.kind, self.severity)  # type: ignore[attr-defined]
        if problem is not None:
            raise ValueError(problem)
        return self


class Shift(SeverityChecked):
    """A shift that starts at ``onset_s`` and reaches full severity after ``ramp_s``.

    Covariate kinds corrupt images; ``severity`` is in the kind's own unit (see
    ``simulator.catalog.shifts``). ``label`` (class-prior drift) moves each
    device's class prior toward a new one by ``severity`` (0..1).
    ``permutation`` (concept shift) relabels a ``severity`` fraction of the
    classes (a cyclic swap among them); during a ramp, a growing share of
    samples follows the new labels. With ``every_s`` and ``lasts_s`` the shift
    recurs: it is in force for ``lasts_s`` out of every ``every_s`` seconds
    after its onset (a context that returns).
    """

    kind: ShiftKindName
    severity: Severity
    onset_s: Annotated[float, Field(ge=0)]
    ramp_s: Annotated[float, Field(ge=0)] = 0.0
    every_s: PositiveFloat | None = None
    lasts_s: PositiveFloat | None = None
    applies_to: AppliesTo = AppliesTo(all=True)

    @model_validator(mode="after")
    def _consistent(self) -> Shift:
        if (self.every_s is None) != (self.lasts_s is None):
            raise ValueError("a recurring shift needs both every_s and lasts_s")
        if self.every_s is not None and self.lasts_s is not None and self.lasts_s > self.every_s:
            raise ValueError("lasts_s cannot be longer than every_s")
        return self


class KnownContext(SeverityChecked):
    """A covariate (or interest) shift the cloud knows before deployment (it has data under it)."""

    kind: KnownKind
    severity: Severity


class ContextShift(SeverityChecked):
    """One shift of a named context, in force at full severity while the context is."""

    kind: ShiftKindName
    severity: Severity


CLEAN = "clean"  # the context with no shift


class Segment(Strict):
    """From ``from_s`` on (until the next segment), the context each device group meets."""

    from_s: Annotated[float, Field(ge=0)]
    groups: Annotated[list[str], Field(min_length=1)]


class Schedule(Strict):
    """A time x group context schedule (the change-point matrices of FedDrift).

    Devices fall into ``groups``: that many seeded groups of (near) equal size,
    or ``classes``: one group per device class, in the fleet's order. Each
    segment names the context of every group from its ``from_s`` on; before
    the first segment every group is ``clean``. Contexts are lists of shifts
    (any kind); a context that returns later is the same context again, so a
    method that remembers it can recognise it.
    """

    groups: Annotated[int, Field(ge=1, le=1000)] | Literal["classes"] = 4
    contexts: dict[str, Annotated[list[ContextShift], Field(min_length=1)]]
    segments: Annotated[list[Segment], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> Schedule:
        if CLEAN in self.contexts:
            raise ValueError(f"contexts: {CLEAN!r} is the context with no shift; pick another name")
        starts = [segment.from_s for segment in self.segments]
        if any(b <= a for a, b in zip(starts, starts[1:], strict=False)):
            raise ValueError(f"segments: from_s must increase; got {starts}")
        valid = sorted([CLEAN, *self.contexts])
        for i, segment in enumerate(self.segments):
            unknown = [name for name in segment.groups if name not in valid]
            if unknown:
                raise ValueError(
                    f"segments[{i}].groups: unknown context {unknown[0]!r}; "
                    f"valid contexts: {', '.join(valid)}"
                )
            if isinstance(self.groups, int) and len(segment.groups) != self.groups:
                raise ValueError(
                    f"segments[{i}].groups: {len(segment.groups)} contexts for {self.groups} groups"
                )
        return self
