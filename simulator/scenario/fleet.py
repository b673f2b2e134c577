"""The fleet's part of a scenario: device classes, their links, injected faults.

Units are in the names: FLOP/s (``_flops``), kbit/s (``_kbps``), milliseconds
(``_ms``), joules (``joules_``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from simulator.catalog.energy import DEFAULT_JOULES_PER_FLOP, RADIO_NAMES
from simulator.scenario.presets import expand_preset
from simulator.scenario.types import Fraction, PositiveFloat, Strict

RadioName = Literal[RADIO_NAMES]  # type: ignore[valid-type]


class LogNormal(Strict):
    """A per-device figure drawn once: ``median * exp(sigma * N(0, 1))``."""

    median: PositiveFloat
    sigma: Annotated[float, Field(ge=0, le=3)] = 0.0


class DeviceClass(Strict):
    """A kind of device (a phone tier on a kind of link) and its share of the fleet.

    ``preset: NAME`` fills in the shipped figures of ``simulator.scenario.presets``
    (name included); any field given beside it overrides the preset.
    """

    @model_validator(mode="before")
    @classmethod
    def _from_preset(cls, data: Any) -> Any:
        return expand_preset(data)

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    share: PositiveFloat
    compute_flops: LogNormal
    uplink_kbps: LogNormal
    downlink_kbps: LogNormal
    rtt_ms: LogNormal
    availability: Fraction = 1.0
    crash_rate: Fraction = 0.0
    # Energy: the radio's figures come from ``simulator.catalog.energy``; compute
    # energy is this many joules per FLOP.
    radio: RadioName = "4g"
    joules_per_flop: PositiveFloat = DEFAULT_JOULES_PER_FLOP


class NetworkTrace(Strict):
    """How a device's bandwidth varies over simulated time around its own median."""

    slot_s: PositiveFloat = 60.0
    sigma: Annotated[float, Field(ge=0, le=3)] = 0.3
    diurnal_amplitude: Annotated[float, Field(ge=0, lt=1)] = 0.0
    outage_probability: Fraction = 0.0


class TransportSpec(Strict):
    """What a message costs beyond its records' bytes (``simulator.world.transport``).

    ``payload``: nothing beyond them, one round trip per device-round (the
    default, and what published tables used). ``flower-http``: Flower 1.41's
    SuperNode over HTTP/1.1 as measured on shaped links: headers, one request
    per object, acknowledgements, a round trip per request round.
    ``request_s`` replaces that runtime's measured processing seconds per
    request round (a SuperLink with more headroom answers faster).
    """

    runtime: Literal["payload", "flower-http"] = "payload"
    request_s: Annotated[float, Field(ge=0, le=60)] | None = None

    @model_validator(mode="after")
    def _requests_need_a_runtime(self) -> TransportSpec:
        if self.request_s is not None and self.runtime == "payload":
            raise ValueError(
                "request_s applies to a runtime that moves requests; set runtime: flower-http "
                "or remove request_s"
            )
        return self


class Faults(Strict):
    """Injected device faults: the probability, per device-round, of each.

    ``hang``: the device stalls past the deadline; ``drop``: its reply is lost;
    ``malformed``: its reply misses a record or has a wrongly shaped array;
    ``nonfinite``: its update holds NaN. (Crashes are each class's ``crash_rate``.)
    """

    hang: Fraction = 0.0
    drop: Fraction = 0.0
    malformed: Fraction = 0.0
    nonfinite: Fraction = 0.0

    @model_validator(mode="after")
    def _at_most_one(self) -> Faults:
        if self.hang + self.drop + self.malformed + self.nonfinite > 1:
            raise ValueError("fault probabilities must add up to at most 1")
        return self


# FedScale's capacity trace gives one inference latency per device, not the model it
# was measured on; this reference (MobileNetV2 at 224 px, about 300 M multiply-adds,
# 2 FLOPs each) turns the latency into FLOP/s. Set it to the model your trace measured.
REFERENCE_FLOPS_PER_SAMPLE = 6.0e8


class FleetTraces(Strict):
    """Device profiles from measured traces in FedScale's layout (``simulator.world.traces``).

    ``capacity`` sets a device's compute (``reference_flops_per_sample`` over
    its measured per-sample latency) and its links (the measured kbit/s up,
    times ``downlink_ratio`` down: 1.0 by default, FedScale's own convention
    of one figure for both directions); ``behaviour`` replaces the class's
    availability and outages by the device's measured online windows.
    Either may be left out; the device's class fills in the rest (RTT,
    energy, crash rate, and whatever no trace gives). A relative path written
    in a scenario file names a file beside it; one given with ``--set`` is
    resolved against the current folder. The files are read and checked
    before a run (``simulator.world.preflight``), not when the scenario is
    validated.
    """

    capacity: Annotated[str, Field(min_length=1)] | None = None
    behaviour: Annotated[str, Field(min_length=1)] | None = None
    mapping: Literal["modulo", "shuffle"] = "modulo"
    downlink_ratio: PositiveFloat = 1.0
    reference_flops_per_sample: PositiveFloat = REFERENCE_FLOPS_PER_SAMPLE

    @field_validator("capacity", "behaviour")
    @classmethod
    def _absolute(cls, path: str | None) -> str | None:
        if path is None:
            return None
        try:
            return str(Path(path).expanduser().resolve())
        except (OSError, RuntimeError) as err:
            raise ValueError(f"cannot resolve {path!r} ({err})") from None

    @model_validator(mode="after")
    def _something_traced(self) -> FleetTraces:
        if self.capacity is None and self.behaviour is None:
            raise ValueError("give capacity, behaviour or both (or remove fleet.traces)")
        return self


def class_counts(classes: list[DeviceClass], devices: int) -> list[int]:
    """Split ``devices`` among classes by share, largest remainders first (sums exactly)."""
    shares = np.array([c.share for c in classes], dtype=float)
    exact = shares / shares.sum() * devices
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: devices - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


class Fleet(Strict):
    devices: Annotated[int, Field(ge=1, le=1_000_000)]
    classes: Annotated[list[DeviceClass], Field(min_length=1)]
    network: NetworkTrace = NetworkTrace()
    transport: TransportSpec = TransportSpec()
    faults: Faults = Faults()
    traces: FleetTraces | None = None

    @model_validator(mode="after")
    def _unique_class_names(self) -> Fleet:
        names = [c.name for c in self.classes]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"device class names must be unique; repeated: {duplicated}")
        total = sum(c.share for c in self.classes)
        if abs(total - 1) > 1e-6:
            raise ValueError(
                f"classes: shares add up to {total:g}; they are fractions of the fleet and "
                "must add up to 1"
            )
        for i, count in enumerate(class_counts(self.classes, self.devices)):
            if count == 0:  # a shift or schedule aimed at the class would touch nobody
                share = self.classes[i].share
                raise ValueError(
                    f"classes[{i}].share: {share:g} of {self.devices} devices gives "
                    f"{self.classes[i].name} no device; raise its share or fleet.devices"
                )
        return self
