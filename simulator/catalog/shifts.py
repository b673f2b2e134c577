"""The one table of shift kinds: what each does, what its severity means.

The scenario schema takes its allowed names from here, and the drift code
dispatches on ``effect``, so a kind cannot be valid in a file and unknown to
the world. Adding a covariate kind is a corruption function in
``simulator.catalog.corruptions`` and one row here.

``effect`` says what a kind moves: ``covariate`` corrupts inputs (through
``corrupt``), ``prior`` moves each device's class prior toward a new one
(label shift), ``concept`` relabels classes (concept shift), ``interest``
turns users' interests (recommendation: ``simulator.world.interests``).
``fraction`` kinds take a severity in [0, 1]; ``task`` says which task's
data a kind can move (images for classification, click streams for
recommendation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simulator.catalog.corruptions import (
    Corruption,
    add_noise,
    blur,
    brightness,
    contrast,
    inversion,
    occlusion,
    rotate,
)

Effect = Literal["covariate", "prior", "concept", "interest"]
Task = Literal["classification", "recommendation"]


@dataclass(frozen=True)
class ShiftKind:
    """One kind of shift: its name, what it moves, and its severity's unit."""

    name: str
    effect: Effect
    severity: str
    fraction: bool = False
    corrupt: Corruption | None = None
    task: Task = "classification"
    most: float | None = None  # the largest meaningful severity, if below the general cap


SHIFT_KINDS: dict[str, ShiftKind] = {
    kind.name: kind
    for kind in (
        ShiftKind("rotation", "covariate", "degrees, counter-clockwise", corrupt=rotate),
        ShiftKind(
            "noise", "covariate", "standard deviation of added Gaussian noise", corrupt=add_noise
        ),
        ShiftKind(
            "blur", "covariate", "standard deviation of a Gaussian blur, pixels", corrupt=blur
        ),
        ShiftKind(
            "contrast",
            "covariate",
            "fraction of contrast removed (1 = flat grey at the image mean)",
            fraction=True,
            corrupt=contrast,
        ),
        ShiftKind("brightness", "covariate", "amount added to every pixel", corrupt=brightness),
        ShiftKind(
            "occlusion",
            "covariate",
            "side of a blanked square, as a fraction of the image side",
            fraction=True,
            corrupt=occlusion,
        ),
        ShiftKind(
            "inversion",
            "covariate",
            "blend toward the inverted image (1 = fully inverted)",
            fraction=True,
            corrupt=inversion,
        ),
        ShiftKind(
            "label",
            "prior",
            "how far each device's class prior moves toward a new one (0..1)",
            fraction=True,
        ),
        ShiftKind(
            "permutation",
            "concept",
            "fraction of classes relabelled by a cyclic swap (0..1)",
            fraction=True,
        ),
        ShiftKind(
            "interest",
            "interest",
            "degrees every user's interest turns (0..180; 90 = unrelated to before)",
            task="recommendation",
            most=180.0,
        ),
    )
}

SHIFT_NAMES: tuple[str, ...] = tuple(SHIFT_KINDS)
COVARIATE_NAMES: tuple[str, ...] = tuple(
    name for name, kind in SHIFT_KINDS.items() if kind.effect == "covariate"
)
FRACTION_NAMES: tuple[str, ...] = tuple(name for name, kind in SHIFT_KINDS.items() if kind.fraction)
INTEREST_NAMES: tuple[str, ...] = tuple(
    name for name, kind in SHIFT_KINDS.items() if kind.effect == "interest"
)


def severity_problem(name: str, severity: float) -> str | None:
    """Why ``severity`` is out of range for kind ``name`` (beyond the general cap), or None."""
    kind = SHIFT_KINDS[name]
    if kind.fraction and severity > 1:
        return f"severity of a {name} shift is a fraction: at most 1"
    if kind.most is not None and severity > kind.most:
        return f"severity of {name} shifts is at most {kind.most:g} ({kind.severity})"
    return None


def corruption(name: str) -> Corruption:
    """The input corruption of a covariate kind."""
    kind = SHIFT_KINDS[name]
    if kind.corrupt is None:
        raise ValueError(f"shift kind {name!r} does not corrupt inputs")
    return kind.corrupt
