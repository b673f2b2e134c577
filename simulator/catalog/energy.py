"""Energy a device spends in a round: compute at its class's joules per FLOP, radio by link.

A transfer (up or down, when it moves any byte) costs

    ramp_j + tail_j + joules_per_kb * kilobytes + active_w * seconds

**Radios** (one row per link type, ``RADIOS``):

- ``2g``, ``3g``, ``wifi``: Balasubramanian, Balasubramanian and Venkataramani,
  "Energy Consumption in Mobile Phones: A Measurement Study and Implications
  for Network Applications", ACM IMC 2009: transfer energy ``R(x) = a x + b``
  joules for ``x`` KB (GSM: 0.036 x + 1.7; 3G: 0.025 x + 3.5; WiFi: 0.007 x +
  5.9, the constant being scan and association) plus a tail at 0.25 W for
  6 s (GSM) and 0.62 W for 12.5 s (3G); WiFi has no tail. These are the
  coefficients as public implementations of the model restate them; we could
  not read the paper's table itself.
- ``4g`` (LTE): Huang et al., "A Close Examination of Performance and Power
  Characteristics of 4G LTE Networks", ACM MobiSys 2012, with the parameters
  AT&T's ARO profiler ships for it (``lte.conf``): promotion 1.21 W for
  0.26 s, active power 1.2 W plus 438.39 mW per Mbit/s up and 51.97 mW per
  Mbit/s down (i.e. joules per megabit moved), tail 1.06 W for about 10.1 s.

**Compute**: joules per FLOP is a per-class modelling choice (see the presets),
bracketed by published figures: about 2.3 pJ per fp32 FLOP for the
arithmetic alone at 45 nm (Horowitz, ISSCC 2014) and 0.24 pJ per FP16 FLOP on
a flagship phone NPU at peak (Park et al., IEEE JSSC 2023); training on a
phone's CPU, memory traffic included, costs one to two orders of magnitude
more than the arithmetic, which is where the presets sit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Radio:
    """One link type's energy per transfer (see the module docstring for sources)."""

    ramp_j: float
    tail_j: float
    joules_per_kb_up: float
    joules_per_kb_down: float
    active_w: float = 0.0  # power while the transfer lasts (LTE's base power)


_LTE_PER_MBIT_UP_J = 0.43839  # 438.39 mW per Mbit/s, i.e. joules per megabit
_LTE_PER_MBIT_DOWN_J = 0.05197
_KB_PER_MBIT = 125.0

RADIOS: dict[str, Radio] = {
    "2g": Radio(ramp_j=1.7, tail_j=0.25 * 6.0, joules_per_kb_up=0.036, joules_per_kb_down=0.036),
    "3g": Radio(ramp_j=3.5, tail_j=0.62 * 12.5, joules_per_kb_up=0.025, joules_per_kb_down=0.025),
    "4g": Radio(
        ramp_j=1.21 * 0.26,
        tail_j=1.06 * 10.1,
        joules_per_kb_up=_LTE_PER_MBIT_UP_J / _KB_PER_MBIT,
        joules_per_kb_down=_LTE_PER_MBIT_DOWN_J / _KB_PER_MBIT,
        active_w=1.2,
    ),
    "wifi": Radio(ramp_j=5.9, tail_j=0.0, joules_per_kb_up=0.007, joules_per_kb_down=0.007),
}
RADIO_NAMES: tuple[str, ...] = tuple(RADIOS)
DEFAULT_JOULES_PER_FLOP = 50e-12  # a mid-range phone CPU (modelling choice; see above)


class Powered(Protocol):
    radio: str
    joules_per_flop: float


@dataclass(frozen=True)
class Energy:
    """Joules one device spent in one phase of a round."""

    compute_j: float
    radio_j: float

    @property
    def total_j(self) -> float:
        return self.compute_j + self.radio_j


def transfer_j(radio: Radio, payload_bytes: int, seconds: float, up: bool) -> float:
    """Energy of one transfer of ``payload_bytes`` that took ``seconds`` (0 if nothing moved)."""
    if payload_bytes <= 0:
        return 0.0
    per_kb = radio.joules_per_kb_up if up else radio.joules_per_kb_down
    active = radio.active_w * seconds if math.isfinite(seconds) else 0.0
    return radio.ramp_j + radio.tail_j + per_kb * payload_bytes / 1000.0 + active


def device_energy(
    device: Powered,
    flops: float,
    download_bytes: int,
    upload_bytes: int,
    download_s: float = 0.0,
    upload_s: float = 0.0,
) -> Energy:
    """What a device spends to compute ``flops`` and move its bytes in one phase."""
    radio = RADIOS[device.radio]
    return Energy(
        compute_j=flops * device.joules_per_flop,
        radio_j=transfer_j(radio, download_bytes, download_s, up=False)
        + transfer_j(radio, upload_bytes, upload_s, up=True),
    )
