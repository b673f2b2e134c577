"""The time x group context schedule: which context a device meets, and when contexts change.

Devices fall into groups (seeded groups of near-equal size, or one group per
device class); each segment of the schedule names the context every group
meets from its start on. A context is a list of shifts at full severity. The
schedule is a pure function of (scenario, seed), like every other draw.
"""

from __future__ import annotations

import numpy as np

from simulator.catalog.seeding import rng_for
from simulator.scenario.drift import CLEAN
from simulator.scenario.schema import Scenario
from simulator.world.drift import ActiveShift
from simulator.world.fleet import DeviceProfile

SHIFTS_PER_CONTEXT = 64  # spacing of seed indices between contexts


class ContextSchedule:
    """Which context each device is in at any simulated time."""

    def __init__(self, scenario: Scenario, fleet: list[DeviceProfile], seed: int):
        self.schedule = scenario.schedule
        self.first_index = len(scenario.shifts)  # seed indices after the plain shifts
        self.group_of = np.zeros(len(fleet), dtype=np.int64)
        if self.schedule is None:
            return
        if self.schedule.groups == "classes":
            order = {c.name: i for i, c in enumerate(scenario.fleet.classes)}
            self.group_of = np.array([order[p.device_class] for p in fleet], dtype=np.int64)
        else:
            count, devices = self.schedule.groups, len(fleet)
            order = rng_for(seed, "schedule-groups").permutation(devices)
            self.group_of[order] = np.arange(devices) * count // max(devices, 1)
        self.names = list(self.schedule.contexts)

    def context(self, device: int, time_s: float) -> str:
        """The name of the context ``device`` is in at ``time_s`` (``clean`` before the first)."""
        if self.schedule is None:
            return CLEAN
        current = CLEAN
        for segment in self.schedule.segments:
            if segment.from_s > time_s:
                break
            current = segment.groups[int(self.group_of[device])]
        return current

    def active(self, profile: DeviceProfile, time_s: float) -> list[ActiveShift]:
        """The shifts of the device's current context, at full severity."""
        name = self.context(profile.index, time_s)
        if name == CLEAN or self.schedule is None:
            return []
        position = self.names.index(name)
        return [
            ActiveShift(
                shift.kind,
                shift.severity,
                self.first_index + SHIFTS_PER_CONTEXT * position + i,
                1.0,
                shift.severity,
            )
            for i, shift in enumerate(self.schedule.contexts[name])
        ]


def onsets(scenario: Scenario) -> list[float]:
    """Every time within the horizon at which some device's data starts to change.

    A shift's onset (each occurrence of a recurring one) and each segment of
    the schedule that changes some group's context.
    """
    horizon = scenario.rounds.horizon_s
    times: set[float] = set()
    for shift in scenario.shifts:
        start = shift.onset_s
        while start < horizon:
            times.add(start)
            if shift.every_s is None:
                break
            start += shift.every_s
    if scenario.schedule is not None:
        previous = None
        for segment in scenario.schedule.segments:
            if segment.from_s < horizon and segment.groups != previous:
                changed = previous is not None or any(g != CLEAN for g in segment.groups)
                if changed:
                    times.add(segment.from_s)
            previous = segment.groups
    return sorted(times)
