"""A small synthetic pair of traces in the CSV layout, so ``fleet.traces`` runs out of the box.

These are generated, not measured: FedScale's files do not ship (point
``fleet.traces`` at them for real figures). The generator draws, per client
and from a fixed seed:

- capacity: per-sample inference latency, lognormal around 40 ms (sigma 0.6:
  most clients between 15 and 100 ms, the span AI Benchmark reports for
  phones on small vision models), and bandwidth, lognormal around 1,500 kbit/s
  (sigma 1.0: from 2G-like to 4G-like links, the spread of the presets);
- behaviour: a day (``finish_time`` 86,400 s) of online sessions, about a
  dozen per client, each lognormal around 20 minutes, more of them at night
  (a phone on its charger); sessions that overlap are merged.

``simulate traces example DIR`` writes ``capacity.csv`` and ``behaviour.csv``;
the shipped copies under ``scenarios/traces/`` are this function's output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simulator.world.trace_files import write_trace_file

DAY_S = 86_400.0
TIERS = ("example-lowend", "example-midrange", "example-highend")


def example_traces(clients: int = 500, seed: int = 2026) -> tuple[dict, dict]:
    """``(capacity, behaviour)`` clients keyed 1..``clients``, FedScale's fields."""
    rng = np.random.default_rng(seed)
    latency = 40.0 * np.exp(0.6 * rng.standard_normal(clients))
    bandwidth = 1500.0 * np.exp(1.0 * rng.standard_normal(clients))
    capacity = {
        c + 1: {
            "computation": round(float(latency[c]), 3),
            "communication": round(float(bandwidth[c]), 1),
        }
        for c in range(clients)
    }
    behaviour = {}
    for c in range(clients):
        tier = TIERS[2 - int(np.searchsorted([25.0, 60.0], latency[c]))]  # fast: high end
        sessions = _sessions(rng, int(rng.poisson(12)) + 1)
        behaviour[c + 1] = {
            "finish_time": DAY_S,
            "duration": DAY_S,
            "model": tier,
            "active": [s for s, _ in sessions],
            "inactive": [e for _, e in sessions],
        }
    return capacity, behaviour


def _sessions(rng: np.random.Generator, count: int) -> list[tuple[float, float]]:
    """Merged, ordered online windows inside one day (a session past midnight wraps)."""
    night = rng.random(count) < 0.5  # half the sessions between 22:00 and 06:00
    starts = np.where(
        night, (22 * 3600 + rng.random(count) * 8 * 3600) % DAY_S, rng.random(count) * DAY_S
    )
    lengths = 1200.0 * np.exp(0.8 * rng.standard_normal(count))
    windows = []
    for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
        end = start + length
        windows.append((start, min(end, DAY_S)))
        if end > DAY_S:
            windows.append((0.0, end - DAY_S))
    windows.sort()
    merged: list[tuple[float, float]] = []
    for start, end in windows:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return [(round(s, 1), round(e, 1)) for s, e in merged]


def write_example_traces(folder: Path) -> tuple[Path, Path]:
    """Write ``capacity.csv`` and ``behaviour.csv`` into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    capacity, behaviour = example_traces()
    paths = folder / "capacity.csv", folder / "behaviour.csv"
    write_trace_file(paths[0], "capacity", capacity)
    write_trace_file(paths[1], "behaviour", behaviour)
    return paths
