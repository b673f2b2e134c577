"""Known and unknown contexts: whether the cloud holds labeled data for what a device meets.

Cloud-side learners (Persona's adapter, ``cloud-retrain``, a ``cloud-best``
starting model) can only prepare for the contexts the cloud has data under
(``pretrain.base`` and ``pretrain.family``); device-side learners need no such
preparation. A device's context at a moment is derived here, once, from the
shifts in force and the scenario's known contexts, so the summary and the
paired statistics can split post-shift accuracy by it without anyone typing
the split twice.
"""

from __future__ import annotations

import math

from simulator.scenario.schema import KnownContext
from simulator.world.drift import ActiveShift

KNOWN, UNKNOWN = "known", "unknown"


def _matches(shift: ActiveShift, context: KnownContext) -> bool:
    return shift.kind == context.kind and math.isclose(
        shift.severity, float(context.severity), rel_tol=1e-9, abs_tol=1e-12
    )


def context_kind(shifts: list[ActiveShift], known: list[KnownContext]) -> str | None:
    """``known`` when every shift in force is a context the cloud holds data under,
    ``unknown`` when any is not (another kind, another severity, a ramp's in-between
    strength, two shifts at once), ``None`` for clean data (no shift: not a context)."""
    if not shifts:
        return None
    if len(shifts) == 1 and any(_matches(shifts[0], c) for c in known):
        return KNOWN
    return UNKNOWN
