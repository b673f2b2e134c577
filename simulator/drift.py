"""Data shift over simulated time: which shifts touch a device, how strongly, and how.

A shift is a pure function of (device, simulated time, seed): ``severity_at``
gives its strength at a time (zero before onset, a linear ramp for a gradual
onset), ``transform`` applies a batch of shifts to images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

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


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate a batch ``(N, 1, H, W)`` about its centre; corners fill with 0 (background)."""
    if degrees == 0:
        return images
    theta = torch.deg2rad(torch.tensor(degrees, dtype=images.dtype))
    cos, sin = torch.cos(theta), torch.sin(theta)
    matrix = torch.stack(
        [torch.stack([cos, -sin, torch.zeros(())]), torch.stack([sin, cos, torch.zeros(())])]
    )
    grid = F.affine_grid(
        matrix.expand(images.shape[0], 2, 3), list(images.shape), align_corners=False
    )
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


def add_noise(images: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Add Gaussian pixel noise with standard deviation ``std``, clipped back to [0, 1]."""
    if std == 0:
        return images
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
    return (images + std * noise).clamp(0.0, 1.0)


def transform(
    images: torch.Tensor, shifts: list[ActiveShift], seed: int, *key: int | str
) -> torch.Tensor:
    """Apply the active shifts in order; noise is seeded by ``(seed, *key)``."""
    generator = torch.Generator().manual_seed(torch_seed_for(seed, "noise", *key))
    with torch.no_grad():
        for shift in shifts:
            if shift.kind == "rotation":
                images = rotate(images, shift.severity)
            elif shift.kind == "noise":
                images = add_noise(images, shift.severity, generator)
            else:  # the schema only admits known kinds
                raise ValueError(f"unknown shift kind {shift.kind!r}")
    return images
