"""Data shift over simulated time: which shifts touch a device, how strongly, and how.

A shift is a pure function of (device, simulated time, seed): ``severity_at``
gives its strength at a time (zero before onset, a linear ramp for a gradual
onset), ``transform`` applies a batch of shifts to images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simulator.corruptions import CORRUPTIONS
from simulator.fleet import DeviceProfile
from simulator.scenario import Shift
from simulator.seeding import rng_for, torch_seed_for


@dataclass(frozen=True)
class ActiveShift:
    """A shift's kind and its strength at one moment for one device."""

    kind: str
    severity: float


def touches(shift: Shift, shift_index: int, profile: DeviceProfile, seed: int) -> bool:
    """Whether ``shift`` applies to this device (all, a seeded fraction, or its class)."""
    target = shift.applies_to
    if target.all:
        return True
    if target.group is not None:
        return profile.device_class == target.group
    draw = rng_for(seed, "shift-member", shift_index, profile.index).random()
    return bool(draw < (target.fraction or 0.0))


def ramp(shift: Shift, time_s: float) -> float:
    """0 before onset, rising linearly to 1 over ``ramp_s`` (sudden when ``ramp_s`` is 0)."""
    if time_s < shift.onset_s:
        return 0.0
    if shift.ramp_s <= 0:
        return 1.0
    return min(1.0, (time_s - shift.onset_s) / shift.ramp_s)


def active_shifts(
    shifts: list[Shift], profile: DeviceProfile, time_s: float, seed: int
) -> list[ActiveShift]:
    """The shifts in force for a device at ``time_s``, in scenario order."""
    active = []
    for index, shift in enumerate(shifts):
        strength = ramp(shift, time_s)
        if strength > 0 and touches(shift, index, profile, seed):
            active.append(ActiveShift(shift.kind, shift.severity * strength))
    return active


def transform(
    images: torch.Tensor, shifts: list[ActiveShift], seed: int, *key: int | str
) -> torch.Tensor:
    """Apply the active shifts in order; random corruptions are seeded by ``(seed, *key)``."""
    generator = torch.Generator().manual_seed(torch_seed_for(seed, "noise", *key))
    with torch.no_grad():
        for shift in shifts:
            images = CORRUPTIONS[shift.kind](images, shift.severity, generator)
    return images
