"""Shipped device classes: a phone tier on a kind of link, with where the figures come from.

A scenario names one with ``preset:`` and may override any field. Figures are
rounded published medians (units in the key names; 1 kbit = 1,000 bits):

- Links follow the spread of the MobiPerf-derived client traces that FedScale
  (Lai et al., ICML 2022) uses, from ~100 kbit/s to tens of Mbit/s.
  2G/EDGE: 3GPP peak 236.8 kbit/s down; field throughput is a fraction of it
  and the uplink lower still. 3G/HSPA: OpenSignal's 3G reports put typical
  download near 1-3 Mbit/s. 4G/LTE: Ookla Speedtest Global Index medians are
  tens of Mbit/s down, about a third of that up. WiFi: Ookla fixed-broadband
  medians (tens to ~100 Mbit/s), shared and variable.
- RTTs: ~600 ms on 2G, ~150 ms on 3G, ~50 ms on 4G, ~20 ms on WiFi (OpenSignal
  latency reports; Ookla for fixed lines).
- Compute: effective CPU throughput for small float CNNs of roughly 1 / 5 / 20
  GFLOP/s for low / mid / high-end phones (the spread between tiers that
  AI-Benchmark, Ignatov et al. 2019, reports).
- Availability and crash rates are modelling choices, not measurements: lower
  for cheap phones on poor links (battery, coverage), per FedScale's finding
  that device availability is far from uniform.
- Energy: each class's radio names a row of ``simulator.catalog.energy.RADIOS``
  (sources there); joules per FLOP are modelling choices (100 / 50 / 30 pJ for
  low / mid / high-end CPUs), bracketed by the published bounds cited there.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "2g-lowend": {
        "compute_flops": {"median": 1.0e9, "sigma": 0.3},
        "uplink_kbps": {"median": 60, "sigma": 0.4},
        "downlink_kbps": {"median": 150, "sigma": 0.4},
        "rtt_ms": {"median": 600, "sigma": 0.3},
        "availability": 0.6,
        "crash_rate": 0.02,
        "radio": "2g",
        "joules_per_flop": 100e-12,
    },
    "3g-midrange": {
        "compute_flops": {"median": 5.0e9, "sigma": 0.3},
        "uplink_kbps": {"median": 400, "sigma": 0.5},
        "downlink_kbps": {"median": 1500, "sigma": 0.5},
        "rtt_ms": {"median": 150, "sigma": 0.3},
        "availability": 0.75,
        "crash_rate": 0.01,
        "radio": "3g",
        "joules_per_flop": 50e-12,
    },
    "4g-highend": {
        "compute_flops": {"median": 2.0e10, "sigma": 0.3},
        "uplink_kbps": {"median": 8000, "sigma": 0.5},
        "downlink_kbps": {"median": 25000, "sigma": 0.5},
        "rtt_ms": {"median": 50, "sigma": 0.3},
        "availability": 0.85,
        "crash_rate": 0.005,
        "radio": "4g",
        "joules_per_flop": 30e-12,
    },
    "wifi-midrange": {
        "compute_flops": {"median": 5.0e9, "sigma": 0.3},
        "uplink_kbps": {"median": 20000, "sigma": 0.6},
        "downlink_kbps": {"median": 60000, "sigma": 0.6},
        "rtt_ms": {"median": 20, "sigma": 0.4},
        "availability": 0.9,
        "crash_rate": 0.005,
        "radio": "wifi",
        "joules_per_flop": 50e-12,
    },
    "wifi-highend": {
        "compute_flops": {"median": 2.0e10, "sigma": 0.3},
        "uplink_kbps": {"median": 40000, "sigma": 0.6},
        "downlink_kbps": {"median": 100000, "sigma": 0.6},
        "rtt_ms": {"median": 15, "sigma": 0.4},
        "availability": 0.9,
        "crash_rate": 0.002,
        "radio": "wifi",
        "joules_per_flop": 30e-12,
    },
}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def expand_preset(entry: Any) -> Any:
    """A device-class entry with its preset's figures filled in (the entry's own keys win).

    A partial figure merges with the preset's (``uplink_kbps: {median: 50}``
    keeps the preset's sigma), so a sweep over one number changes only it.
    """
    if not isinstance(entry, dict) or "preset" not in entry:
        return entry
    name = entry["preset"]
    if name not in PRESETS:
        raise ValueError(
            f"unknown device class preset {name!r}; valid presets: {', '.join(preset_names())}"
        )
    merged = {"name": name, **PRESETS[name]}
    for key, value in entry.items():
        if key == "preset":
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged
