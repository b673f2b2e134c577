"""The fleet: one profile per device, drawn from the scenario's device classes.

A profile is fixed for the run (a phone does not change tier); what varies
over simulated time (bandwidth, outages, being online) lives in
``simulator.network`` and ``simulator.availability`` and is computed from the
profile, the device index and the time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.scenario.schema import DeviceClass, Scenario
from simulator.world.seeding import rng_for


@dataclass(frozen=True)
class DeviceProfile:
    """What one simulated device is. Units are SI: FLOP/s, bit/s, seconds."""

    index: int
    device_class: str
    compute_flops: float
    uplink_bps: float
    downlink_bps: float
    rtt_s: float
    availability: float
    crash_rate: float


def _draw(rng: np.random.Generator, median: float, sigma: float) -> float:
    return float(median * np.exp(sigma * rng.standard_normal()))


def class_counts(classes: list[DeviceClass], devices: int) -> list[int]:
    """Split ``devices`` among classes by share, largest remainders first (sums exactly)."""
    shares = np.array([c.share for c in classes], dtype=float)
    exact = shares / shares.sum() * devices
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: devices - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def build_fleet(scenario: Scenario, seed: int) -> list[DeviceProfile]:
    """Draw every device's profile; a pure function of (scenario, seed)."""
    classes = scenario.fleet.classes
    counts = class_counts(classes, scenario.fleet.devices)
    labels = np.repeat(np.arange(len(classes)), counts)
    rng_for(seed, "fleet-classes").shuffle(labels)
    fleet = []
    for index, class_index in enumerate(labels.tolist()):
        spec = classes[class_index]
        rng = rng_for(seed, "fleet-profile", index)
        fleet.append(
            DeviceProfile(
                index=index,
                device_class=spec.name,
                compute_flops=_draw(rng, spec.compute_flops.median, spec.compute_flops.sigma),
                uplink_bps=1e3 * _draw(rng, spec.uplink_kbps.median, spec.uplink_kbps.sigma),
                downlink_bps=1e3 * _draw(rng, spec.downlink_kbps.median, spec.downlink_kbps.sigma),
                rtt_s=1e-3 * _draw(rng, spec.rtt_ms.median, spec.rtt_ms.sigma),
                availability=spec.availability,
                crash_rate=spec.crash_rate,
            )
        )
    return fleet


def is_online(profile: DeviceProfile, round_index: int, seed: int) -> bool:
    """Whether the device checks in for a round (Bernoulli with its availability)."""
    if profile.availability >= 1.0:
        return True
    return bool(rng_for(seed, "online", profile.index, round_index).random() < profile.availability)


def crashes(profile: DeviceProfile, round_index: int, seed: int) -> bool:
    """Whether the device fails mid-round (Bernoulli with its crash rate)."""
    if profile.crash_rate <= 0.0:
        return False
    return bool(rng_for(seed, "crash", profile.index, round_index).random() < profile.crash_rate)
