"""Network and compute time: how long a device-round takes in simulated seconds.

Bandwidth is the device's own median times a per-slot lognormal factor, times a
diurnal factor, and zero during an outage slot. Uplink and downlink are
separate. A transfer uses the bandwidth of the slot in which it starts (a
simplification: a transfer that spans slots does not change speed mid-way).
Compute time is counted FLOPs over the device's FLOP/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.scenario.schema import NetworkTrace
from simulator.world.fleet import DeviceProfile
from simulator.world.seeding import rng_for

DAY_S = 86_400.0


def bandwidth_factor(trace: NetworkTrace, device: int, time_s: float, seed: int) -> float:
    """Multiplier on the device's median bandwidth at ``time_s`` (0.0 during an outage)."""
    slot = int(time_s // trace.slot_s)
    rng = rng_for(seed, "bandwidth", device, slot)
    outage_draw, level_draw = rng.random(), rng.standard_normal()
    if outage_draw < trace.outage_probability:
        return 0.0
    diurnal = 1.0 - trace.diurnal_amplitude * math.cos(2 * math.pi * time_s / DAY_S)
    return float(np.exp(trace.sigma * level_draw) * diurnal)


def transfer_s(payload_bytes: int, bandwidth_bps: float) -> float:
    """Seconds to move ``payload_bytes`` at ``bandwidth_bps`` (infinite when the link is down)."""
    if payload_bytes <= 0:
        return 0.0
    if bandwidth_bps <= 0.0:
        return math.inf
    return 8.0 * payload_bytes / bandwidth_bps


def compute_s(flops: float, compute_flops: float) -> float:
    """Seconds of on-device compute for ``flops`` floating-point operations."""
    return flops / compute_flops if flops > 0 else 0.0


@dataclass(frozen=True)
class RoundTiming:
    """Where a device's round time went, in simulated seconds."""

    download_s: float
    compute_s: float
    upload_s: float
    latency_s: float

    @property
    def total_s(self) -> float:
        return self.download_s + self.compute_s + self.upload_s + self.latency_s


def round_timing(
    profile: DeviceProfile,
    trace: NetworkTrace,
    start_s: float,
    download_bytes: int,
    flops: float,
    upload_bytes: int,
    seed: int,
) -> RoundTiming:
    """Time of one device-round: download, compute, upload, plus one round trip of latency."""
    down_bps = profile.downlink_bps * bandwidth_factor(trace, profile.index, start_s, seed)
    download = transfer_s(download_bytes, down_bps)
    compute = compute_s(flops, profile.compute_flops)
    upload_start = start_s + download + compute
    if math.isfinite(upload_start):
        up_bps = profile.uplink_bps * bandwidth_factor(trace, profile.index, upload_start, seed)
        upload = transfer_s(upload_bytes, up_bps)
    else:
        upload = math.inf
    return RoundTiming(download, compute, upload, profile.rtt_s)
