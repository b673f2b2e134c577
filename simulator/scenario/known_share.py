"""How much of what the fleet meets the cloud knows: ``pretrain.known_share`` as a setting.

Whether a cloud-side method helps depends on whether the cloud holds labeled
data under the contexts devices meet. To put that on a sweep axis, a scenario
may set ``pretrain.known_share`` (0..1): the cloud's family then keeps its
declared contexts that no device meets (what the cloud knows besides) and
gains the first ``floor(share x n + 1/2)`` (halves round up) of the ``n``
deployed single-shift contexts, in the order the scenario declares them
(schedule contexts, then top-level shifts). Share 0: the cloud knows none of
them; 1: all. A context made of two shifts at once can never be known
(``simulator.world.known``), so it is left out of ``n``.
"""

from __future__ import annotations

import math

from simulator.catalog.shifts import COVARIATE_NAMES, INTEREST_NAMES
from simulator.scenario.drift import KnownContext, Schedule, Shift

_KNOWABLE = frozenset(COVARIATE_NAMES + INTEREST_NAMES)

Key = tuple[str, float]


def deployed_contexts(schedule: Schedule | None, shifts: list[Shift]) -> list[Key]:
    """Every single-shift context devices meet, as (kind, severity), once each, in order.

    Label and concept shifts are left out: the cloud's family renders covariate
    and interest contexts only.
    """
    found: list[Key] = []
    if schedule is not None:
        for context in schedule.contexts.values():
            if len(context) == 1:
                found.append((context[0].kind, float(context[0].severity)))
    found += [(shift.kind, float(shift.severity)) for shift in shifts]
    unique: dict[Key, None] = {}
    for kind, severity in found:
        if kind in _KNOWABLE:
            unique.setdefault((kind, severity), None)
    return list(unique)


def _same(a: Key, b: Key) -> bool:
    return a[0] == b[0] and math.isclose(a[1], b[1], rel_tol=1e-9, abs_tol=1e-12)


def family_at_share(
    family: list[KnownContext], deployed: list[Key], share: float
) -> list[KnownContext]:
    """The cloud's family when it knows ``share`` of the deployed contexts.

    Idempotent: applied to its own result with the same share it returns the
    same list, so a scenario written back to a run folder and read again keeps
    its family.
    """
    elsewhere = [
        c for c in family if not any(_same((c.kind, float(c.severity)), d) for d in deployed)
    ]
    count = math.floor(share * len(deployed) + 0.5)
    known = [KnownContext(kind=kind, severity=severity) for kind, severity in deployed[:count]]
    return [*elsewhere, *known]
