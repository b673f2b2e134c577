"""The fleet's part of a scenario: device classes, their links, injected faults.

Units are in the names: FLOP/s (``_flops``), kbit/s (``_kbps``), milliseconds
(``_ms``), joules (``joules_``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from simulator.scenario.presets import expand_preset
from simulator.scenario.types import Fraction, PositiveFloat, Strict
from simulator.world.energy import DEFAULT_JOULES_PER_FLOP, RADIO_NAMES

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
    # Energy: the radio's figures come from ``simulator.world.energy``; compute
    # energy is this many joules per FLOP.
    radio: RadioName = "4g"
    joules_per_flop: PositiveFloat = DEFAULT_JOULES_PER_FLOP


class NetworkTrace(Strict):
    """How a device's bandwidth varies over simulated time around its own median."""

    slot_s: PositiveFloat = 60.0
    sigma: Annotated[float, Field(ge=0, le=3)] = 0.3
    diurnal_amplitude: Annotated[float, Field(ge=0, lt=1)] = 0.0
    outage_probability: Fraction = 0.0


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


class Fleet(Strict):
    devices: Annotated[int, Field(ge=1, le=1_000_000)]
    classes: Annotated[list[DeviceClass], Field(min_length=1)]
    network: NetworkTrace = NetworkTrace()
    faults: Faults = Faults()

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
        return self
