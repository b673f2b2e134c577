"""Data shift over simulated time: which shifts touch a device, how strongly, and how.

A shift is a pure function of (device, simulated time, seed): ``ramp`` gives
its strength at a time (zero before onset, a linear ramp for a gradual onset,
zero between occurrences of a recurring one), ``transform`` corrupts images,
``shifted_prior`` moves a device's class prior (label shift) and ``relabel``
applies a concept shift to labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from simulator.catalog.seeding import rng_for, torch_seed_for
from simulator.catalog.shifts import SHIFT_KINDS, corruption
from simulator.scenario.schema import Shift
from simulator.world.fleet import DeviceProfile


@dataclass(frozen=True)
class ActiveShift:
    """A shift in force for one device at one moment.

    ``severity`` is the kind's severity scaled by ``strength`` (the ramp, 0..1);
    ``index`` is the shift's place in the scenario (it seeds its draws).
    """

    kind: str
    severity: float
    index: int = 0
    strength: float = 1.0
    full_severity: float = 0.0


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
    """0 before onset, rising linearly to 1 over ``ramp_s`` (sudden when ``ramp_s`` is 0).

    A recurring shift restarts its ramp at each occurrence and is 0 between them.
    """
    if time_s < shift.onset_s:
        return 0.0
    since = time_s - shift.onset_s
    if shift.every_s is not None and shift.lasts_s is not None:
        since = since % shift.every_s
        if since >= shift.lasts_s:
            return 0.0
    if shift.ramp_s <= 0:
        return 1.0
    return min(1.0, since / shift.ramp_s)


def active_shifts(
    shifts: list[Shift], profile: DeviceProfile, time_s: float, seed: int
) -> list[ActiveShift]:
    """The shifts in force for a device at ``time_s``, in scenario order."""
    active = []
    for index, shift in enumerate(shifts):
        strength = ramp(shift, time_s)
        if strength > 0 and touches(shift, index, profile, seed):
            active.append(
                ActiveShift(shift.kind, shift.severity * strength, index, strength, shift.severity)
            )
    return active


def transform(
    images: torch.Tensor, shifts: list[ActiveShift], seed: int, *key: int | str
) -> torch.Tensor:
    """Apply the active shifts in order; random corruptions are seeded by ``(seed, *key)``."""
    generator = torch.Generator().manual_seed(torch_seed_for(seed, "noise", *key))
    with torch.no_grad():
        for shift in shifts:
            if SHIFT_KINDS[shift.kind].effect == "covariate":
                images = corruption(shift.kind)(images, shift.severity, generator)
    return images


def shifted_prior(
    prior: np.ndarray, shifts: list[ActiveShift], device: int, seed: int, alpha: float
) -> np.ndarray:
    """A device's class prior under the label shifts in force (class-prior drift)."""
    for shift in shifts:
        if SHIFT_KINDS[shift.kind].effect == "prior":
            target = rng_for(seed, "label-shift", shift.index, device).dirichlet(
                np.full(len(prior), alpha)
            )
            prior = (1.0 - shift.severity) * prior + shift.severity * target
    return prior / prior.sum()


def concept_map(num_classes: int, fraction: float, index: int, seed: int) -> np.ndarray:
    """The relabelling of a concept shift: a cyclic swap among a seeded subset of classes."""
    count = max(2, int(round(fraction * num_classes))) if fraction > 0 else 0
    mapping = np.arange(num_classes)
    if count >= 2:
        chosen = rng_for(seed, "concept", index).choice(num_classes, count, replace=False)
        mapping[chosen] = np.roll(chosen, 1)
    return mapping


def relabel(
    labels: torch.Tensor,
    shifts: list[ActiveShift],
    num_classes: int,
    seed: int,
    *key: int | str,
) -> torch.Tensor:
    """Labels under the concept shifts in force; during a ramp a share of samples moves."""
    for shift in shifts:
        if SHIFT_KINDS[shift.kind].effect != "concept":
            continue
        mapping = torch.as_tensor(concept_map(num_classes, shift.full_severity, shift.index, seed))
        moved = rng_for(seed, "relabel", shift.index, *key).random(len(labels)) < shift.strength
        labels = torch.where(torch.as_tensor(moved), mapping[labels], labels)
    return labels
