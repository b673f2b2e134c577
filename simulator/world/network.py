"""Network and compute time: how long a device-round takes in simulated seconds.

Bandwidth is the device's own median times a per-slot lognormal factor, times a
diurnal factor, and zero during an outage slot. Uplink and downlink are
separate. A transfer uses the bandwidth of the slot in which it starts (a
simplification: a transfer that spans slots does not change speed mid-way).
Compute time is counted FLOPs over the device's FLOP/s. What a message moves
on the wire, and in how many request rounds, is the scenario's transport
(``simulator.world.transport``).

A slot's factors are drawn for the whole fleet at once (``Links``), from a
generator keyed by the slot: the cost of asking who is reachable is then one
vector per slot, not one generator per device, which is what lets a round
sample among 100,000 devices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.catalog.seeding import rng_for
from simulator.scenario.schema import NetworkTrace
from simulator.world.fleet import DeviceProfile
from simulator.world.transport import NOTHING, MessageSize, Transport

DAY_S = 86_400.0


class Links:
    """The fleet's links over simulated time: each device's bandwidth factor per slot.

    Pure function of (trace, fleet size, seed, slot); the last few slots are
    kept, since a round asks about the same slot for many devices.
    """

    def __init__(self, trace: NetworkTrace, devices: int, seed: int, outages: bool = True):
        self.trace = trace
        self.devices = devices
        self.seed = seed
        # False when a behaviour trace says when each device is offline: no drawn outages.
        self.outages = outages
        self._slots: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _slot(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """(outage flags, lognormal level) of every device in ``slot``."""
        hit = self._slots.get(slot)
        if hit is None:
            if len(self._slots) >= 16:
                self._slots.pop(next(iter(self._slots)))
            rng = rng_for(self.seed, "bandwidth", slot)
            down = rng.random(self.devices) < self.trace.outage_probability
            if not self.outages:
                down[:] = False  # drawn all the same: the level's draws stay as they were
            level = np.exp(self.trace.sigma * rng.standard_normal(self.devices))
            hit = self._slots[slot] = (down, level)
        return hit

    def _diurnal(self, time_s: float) -> float:
        return 1.0 - self.trace.diurnal_amplitude * math.cos(2 * math.pi * time_s / DAY_S)

    def factor(self, device: int, time_s: float) -> float:
        """Multiplier on the device's median bandwidth at ``time_s`` (0.0 during an outage)."""
        down, level = self._slot(int(time_s // self.trace.slot_s))
        return 0.0 if down[device] else float(level[device] * self._diurnal(time_s))

    def up(self, time_s: float) -> np.ndarray:
        """Which devices have a link at ``time_s`` (not in an outage slot)."""
        down, _ = self._slot(int(time_s // self.trace.slot_s))
        return ~down


def compute_s(flops: float, compute_flops: float) -> float:
    """Seconds of on-device compute for ``flops`` floating-point operations."""
    return flops / compute_flops if flops > 0 else 0.0


@dataclass(frozen=True)
class RoundTiming:
    """Where a device's round time went, in simulated seconds, and the bytes its radio moved.

    ``download_bytes`` and ``upload_bytes`` are what the device received and
    sent over the phase, both transfers together (under the ``payload``
    transport: the message's and the reply's records).
    """

    download_s: float
    compute_s: float
    upload_s: float
    latency_s: float
    download_bytes: int = 0
    upload_bytes: int = 0

    @property
    def total_s(self) -> float:
        return self.download_s + self.compute_s + self.upload_s + self.latency_s


def round_timing(
    profile: DeviceProfile,
    links: Links,
    transport: Transport,
    start_s: float,
    download: MessageSize | None,
    flops: float,
    upload: MessageSize,
) -> RoundTiming:
    """One device-round phase: download (None: no message came), compute, upload, latency.

    Each transfer moves at the bandwidth of the slot it starts in, its forward
    bytes in its own direction and its backward bytes (requests,
    acknowledgements) in the other; latency is the transport's round trips.
    """
    received = NOTHING if download is None else transport.download(download)
    sent = transport.upload(upload)
    factor = links.factor(profile.index, start_s)
    download_s = received.seconds(profile.downlink_bps * factor, profile.uplink_bps * factor)
    compute = compute_s(flops, profile.compute_flops)
    upload_start = start_s + download_s + compute
    if math.isfinite(upload_start):
        factor = links.factor(profile.index, upload_start)
        upload_s = sent.seconds(profile.uplink_bps * factor, profile.downlink_bps * factor)
    else:
        upload_s = math.inf
    return RoundTiming(
        download_s,
        compute,
        upload_s,
        profile.rtt_s * transport.round_trips(received, sent),
        download_bytes=received.forward_bytes + sent.backward_bytes,
        upload_bytes=sent.forward_bytes + received.backward_bytes,
    )
