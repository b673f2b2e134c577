"""Measured device traces (FedScale's layout) as validated records, and who is online when.

Two kinds of trace, each a dict keyed by client id (FedScale numbers clients
from 1):

- **capacity**: ``computation``, the device's inference latency in ms per
  sample (FedScale measured it with AI Benchmark), and ``communication``, its
  bandwidth in kbit/s (from MobiPerf);
- **behaviour**: ``active`` and ``inactive``, the seconds at which each of the
  device's online windows opens and closes, ``finish_time``, the span after
  which the pattern repeats, and ``model``, the phone's model name
  (``duration`` is read by FedScale only; accepted and ignored here).

A client is online at time ``t`` when ``t mod finish_time`` lies inside one
of its ``[active[k], inactive[k]]`` windows (FedScale's rule). Fleet devices
take clients in turn (device ``d`` gets the ``d mod n``-th client in id order,
FedScale's mapping) or in a seeded shuffle of them. Every field is checked
before anything is used; a bad one is one line naming the file, the client
and the field, and nothing of the file is kept.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from simulator.catalog.seeding import rng_for
from simulator.world.trace_files import TraceError, read_trace_file, write_trace_file

# Figures no device has: a microsecond per inferred sample, a terabit per second.
MIN_LATENCY_MS = 1e-3
MAX_BANDWIDTH_KBPS = 1e9


@dataclass(frozen=True)
class Capacity:
    """One client's measured speed: ms per inferred sample and link kbit/s."""

    latency_ms: float
    bandwidth_kbps: float


@dataclass(frozen=True)
class Behaviour:
    """One client's online windows, repeating every ``finish_time`` seconds."""

    active: tuple[float, ...]
    inactive: tuple[float, ...]
    finish_time: float
    model: str
    duration: float | None = None  # FedScale's own field, kept for a conversion only

    def online(self, time_s: float) -> bool:
        """Whether the client is online at ``time_s`` (simulated seconds)."""
        return self.online_through(time_s, time_s)

    def online_through(self, start_s: float, end_s: float) -> bool:
        """Whether one online window covers all of ``[start_s, end_s]``: a device whose
        window closes mid-round drops out of that round (FedScale's trace semantics)."""
        offset = start_s % self.finish_time
        k = bisect.bisect_right(self.active, offset) - 1
        return k >= 0 and offset + (end_s - start_s) <= self.inactive[k]


def load_capacity(path: str | Path) -> dict[int, Capacity]:
    """Every client of a capacity trace, checked (one ``TraceError`` line otherwise)."""
    path = Path(path)
    return _capacity(str(path), _identity(path))


def load_behaviour(path: str | Path) -> dict[int, Behaviour]:
    """Every client of a behaviour trace, checked (one ``TraceError`` line otherwise)."""
    path = Path(path)
    return _behaviour(str(path), _identity(path))


def assign_clients(clients: list[int], devices: int, mapping: str, seed: int) -> list[int]:
    """The client id each fleet device takes: in id order, cycling (``modulo``), or a
    seeded shuffle of the ids, cycling (``shuffle``)."""
    order = sorted(clients)
    if mapping == "shuffle":
        permuted = rng_for(seed, "trace-clients").permutation(len(order))
        order = [order[i] for i in permuted.tolist()]
    return [order[d % len(order)] for d in range(devices)]


def _identity(path: Path) -> tuple[int, ...]:
    """The file's version: a file replaced in a long-lived process is read again."""
    try:
        found = path.stat()
    except OSError:
        return ()  # the reader names the problem
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns


@lru_cache(maxsize=4)
def _capacity(path: str, identity: tuple[int, ...]) -> dict[int, Capacity]:
    return _clients(Path(path), "capacity", _capacity_of)


@lru_cache(maxsize=4)
def _behaviour(path: str, identity: tuple[int, ...]) -> dict[int, Behaviour]:
    return _clients(Path(path), "behaviour", _behaviour_of)


def _clients(file: Path, kind: str, parse: Any) -> dict[int, Any]:
    """Every client of the file, each checked by ``parse(file, client, entry)``."""
    clients: dict[int, Any] = {}
    for key, entry in read_trace_file(file, kind).items():
        client = _unique(file, clients, _client_id(file, key))
        clients[client] = parse(file, client, entry)
    return _nonempty(file, clients)


def _capacity_of(file: Path, client: int, entry: Any) -> Capacity:
    fields = _fields(file, client, entry, ("computation", "communication"))
    latency = _within(file, client, "computation", fields["computation"], MIN_LATENCY_MS)
    bandwidth = _within(file, client, "communication", fields["communication"], 1e-3)
    if bandwidth > MAX_BANDWIDTH_KBPS:
        raise TraceError(
            f"{file}: client {client}: communication: {bandwidth:g} kbit/s is beyond any "
            f"link ({MAX_BANDWIDTH_KBPS:g}); the field is kbit/s"
        )
    return Capacity(latency, bandwidth)


def _behaviour_of(file: Path, client: int, entry: Any) -> Behaviour:
    fields = _fields(file, client, entry, ("active", "inactive", "finish_time"))
    finish = _positive(file, client, "finish_time", fields["finish_time"])
    active = _seconds(file, client, "active", fields["active"])
    inactive = _seconds(file, client, "inactive", fields["inactive"])
    _check_windows(file, client, active, inactive, finish)
    model = entry.get("model", "")
    if not isinstance(model, str):
        raise TraceError(f"{file}: client {client}: model: expected text, found {model!r}")
    duration = entry.get("duration")
    if duration is not None and duration != "":
        duration = _number(file, client, "duration", duration)
    else:
        duration = None
    return Behaviour(active, inactive, finish, model, duration)


def _client_id(file: Path, key: Any) -> int:
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise TraceError(f"{file}: client id {key!r} is not an integer")
    try:
        client = int(key)
    except ValueError:
        raise TraceError(f"{file}: client id {key!r} is not an integer") from None
    if client < 0:
        raise TraceError(f"{file}: client id {client} is negative")
    return client


def _unique(file: Path, clients: dict[int, Any], client: int) -> int:
    if client in clients:  # 1 and "1" in one pickle: which one would count?
        raise TraceError(f"{file}: client {client} appears twice")
    return client


def _fields(file: Path, client: int, entry: Any, required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise TraceError(f"{file}: client {client}: expected a dict of fields, found {entry!r}")
    missing = [f for f in required if f not in entry]
    if missing:
        raise TraceError(f"{file}: client {client}: missing field {missing[0]}")
    return entry


def _number(file: Path, client: int, field: str, value: Any) -> float:
    if isinstance(value, bool):
        raise TraceError(f"{file}: client {client}: {field}: expected a number, found {value}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise TraceError(
            f"{file}: client {client}: {field}: expected a number, found {value!r}"
        ) from None
    if not math.isfinite(number):
        raise TraceError(f"{file}: client {client}: {field}: {value!r} is not finite")
    return number


def _positive(file: Path, client: int, field: str, value: Any) -> float:
    number = _number(file, client, field, value)
    if number <= 0:
        raise TraceError(f"{file}: client {client}: {field}: must be above 0, found {number:g}")
    return number


def _within(file: Path, client: int, field: str, value: Any, least: float) -> float:
    """A positive figure no smaller than ``least`` (1e-300 ms would be infinite FLOP/s)."""
    number = _positive(file, client, field, value)
    if number < least:
        raise TraceError(
            f"{file}: client {client}: {field}: {number:g} is below {least:g}, no device's figure"
        )
    return number


def _seconds(file: Path, client: int, field: str, values: Any) -> tuple[float, ...]:
    if not isinstance(values, (list, tuple)):
        raise TraceError(f"{file}: client {client}: {field}: expected a list of seconds")
    return tuple(_number(file, client, field, v) for v in values)


def _check_windows(
    file: Path, client: int, active: tuple[float, ...], inactive: tuple[float, ...], finish: float
) -> None:
    where = f"{file}: client {client}"
    if len(active) != len(inactive):
        raise TraceError(
            f"{where}: active has {len(active)} entries and inactive {len(inactive)}; "
            "each online window needs both"
        )
    if not active:
        raise TraceError(f"{where}: active: no online window (a device never online)")
    previous_end = -math.inf
    for k, (start, end) in enumerate(zip(active, inactive, strict=True)):
        if start < 0 or end < start:
            raise TraceError(f"{where}: window {k}: active {start:g} to inactive {end:g}")
        if start < previous_end:
            raise TraceError(f"{where}: window {k} starts at {start:g}, before window {k - 1} ends")
        if end > finish:
            raise TraceError(f"{where}: window {k} ends at {end:g}, past finish_time {finish:g}")
        previous_end = end


def _nonempty(file: Path, clients: dict[int, Any]) -> dict[int, Any]:
    if not clients:
        raise TraceError(f"{file}: no clients")
    return clients


def trace_kind(path: str | Path) -> str:
    """``capacity`` or ``behaviour``: which trace a file holds, from its first client."""
    path = Path(path)
    first = next(iter(read_trace_file(path, None).values()), None)
    if isinstance(first, dict) and "computation" in first:
        return "capacity"
    if isinstance(first, dict) and "active" in first:
        return "behaviour"
    raise TraceError(
        f"{path}: neither a capacity trace (computation) nor a behaviour trace (active)"
    )


def convert_trace(source: str | Path, target: str | Path) -> tuple[str, int]:
    """Check ``source`` (any layout) and write it to ``target`` (CSV or JSON); returns the
    kind and the number of clients. Nothing is written unless every client is valid."""
    kind = trace_kind(source)
    if kind == "capacity":
        clients = {
            c: {"computation": r.latency_ms, "communication": r.bandwidth_kbps}
            for c, r in load_capacity(source).items()
        }
    else:
        clients = {
            c: {
                "finish_time": r.finish_time,
                "duration": "" if r.duration is None else r.duration,
                "model": r.model,
                "active": list(r.active),
                "inactive": list(r.inactive),
            }
            for c, r in load_behaviour(source).items()
        }
    write_trace_file(Path(target), kind, clients)
    return kind, len(clients)
