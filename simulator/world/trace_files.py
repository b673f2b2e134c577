"""Reading device trace files as plain data, whatever layout they come in, and safely.

FedScale publishes its traces as Python pickles of dicts keyed by client id
(``client_device_capacity``, ``client_behave_trace``). Loading a pickle from
the internet with ``pickle.load`` can run any code it names, so these files
are read with an unpickler that builds plain containers, numbers and strings
only and refuses every global (``os.system``, a class, a function) with one
line naming the file and what it tried to load. The same content may also
come as JSON (the dict, keys as strings) or CSV (the layouts below); the
layout is chosen by the file's suffix: ``.json``, ``.csv``, anything else a
pickle.

CSV layouts (a header row, comma-separated):

- capacity: ``client_id,computation,communication``: per-sample inference
  latency in ms and bandwidth in kbit/s, one row per client;
- behaviour: ``client_id,finish_time,duration,model,active,inactive``: one
  row per client, ``active`` and ``inactive`` as ``;``-separated seconds.

Every file must be a regular file under ``MAX_TRACE_BYTES`` with at most
``MAX_TRACE_ENTRIES`` clients; text is UTF-8 (an optional BOM is dropped).
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import stat
from collections import OrderedDict
from pathlib import Path
from typing import Any

from basemodel.atomic import write_atomically

# FedScale's behaviour trace is tens of MB for about 107,000 devices; the cap leaves
# room for larger measurements and stops a link to /dev/zero.
MAX_TRACE_BYTES = 512 * 2**20
MAX_TRACE_ENTRIES = 5_000_000

CAPACITY_COLUMNS = ("client_id", "computation", "communication")
BEHAVIOUR_COLUMNS = ("client_id", "finish_time", "duration", "model", "active", "inactive")


class TraceError(ValueError):
    """A trace file that cannot be used (one line naming the file, the client, the field)."""


class _Refused(pickle.UnpicklingError):
    """The pickle asked for a global: what it named."""


class _PlainUnpickler(pickle.Unpickler):
    """Builds dicts, lists, tuples, sets, numbers, strings and bytes; nothing else.

    A plain container needs no global, so any ``find_class`` is a request to
    import and call something: refused before it happens. ``OrderedDict`` is
    the one harmless class a dict dump may name.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("a persistent reference")


def read_trace_file(path: Path, kind: str | None) -> dict[Any, Any]:
    """The file's clients as a dict of plain values (pickle, JSON or CSV by suffix).

    ``kind`` is ``capacity`` or ``behaviour`` (a CSV's columns), or None for a
    CSV whose header says which. Nothing is validated beyond the container
    here; see ``simulator.world.traces`` for the fields.
    """
    data = _bounded_bytes(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _from_csv(path, _text(path, data), kind)
    if suffix == ".json":
        try:
            loaded = json.loads(_text(path, data))
        except json.JSONDecodeError as err:
            raise TraceError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    else:
        try:
            loaded = _PlainUnpickler(io.BytesIO(data)).load()
        except _Refused as err:
            raise TraceError(
                f"{path}: refused: the pickle asks to load {err} (only plain dicts, lists, "
                "numbers and strings are read); save it as plain dicts or in the CSV or JSON layout"
            ) from None
        except Exception as err:  # a damaged pickle raises any of a dozen kinds
            raise TraceError(f"{path}: not a readable pickle ({type(err).__name__})") from None
    if not isinstance(loaded, dict):
        raise TraceError(
            f"{path}: expected a dict of clients at the top level, found {type(loaded).__name__}"
        )
    if len(loaded) > MAX_TRACE_ENTRIES:
        raise TraceError(f"{path}: {len(loaded):,} clients, more than {MAX_TRACE_ENTRIES:,}")
    return loaded


def _bounded_bytes(path: Path) -> bytes:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise TraceError(
                f"{path}: not a regular file (a pipe, device or folder); give the file"
            )
        if info.st_size > MAX_TRACE_BYTES:
            raise TraceError(
                f"{path}: {info.st_size:,} bytes, more than a trace may hold ({MAX_TRACE_BYTES:,})"
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise TraceError(f"{path}: no such file") from None
    except OSError as err:
        raise TraceError(f"{path}: cannot be read ({err.strerror or err})") from None


def _text(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise TraceError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None


def _from_csv(path: Path, text: str, kind: str | None) -> dict[Any, Any]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if kind is None:
        kind = "capacity" if "computation" in (reader.fieldnames or ()) else "behaviour"
    columns = CAPACITY_COLUMNS if kind == "capacity" else BEHAVIOUR_COLUMNS
    missing = [c for c in columns if c not in (reader.fieldnames or ())]
    if missing:
        raise TraceError(
            f"{path}: a {kind} CSV needs the columns {', '.join(columns)}; "
            f"missing {', '.join(missing)}"
        )
    clients: dict[Any, Any] = {}
    for line, row in enumerate(reader, start=2):
        if len(clients) >= MAX_TRACE_ENTRIES:
            raise TraceError(f"{path}: more than {MAX_TRACE_ENTRIES:,} clients")
        key = row["client_id"]
        if key in clients:
            raise TraceError(f"{path}:{line}: client {key} appears twice")
        entry: dict[str, Any] = {c: row[c] for c in columns if c != "client_id"}
        if kind == "behaviour":
            for field in ("active", "inactive"):
                entry[field] = [v for v in (row[field] or "").split(";") if v.strip()]
        clients[key] = entry
    return clients


def write_trace_file(path: Path, kind: str, clients: dict[int, dict[str, Any]]) -> None:
    """Write checked clients as CSV or JSON (by ``path``'s suffix), through a rename."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise TraceError(f"{path}: write a .csv or a .json file (a pickle is never written)")
    buffer = io.StringIO(newline="")
    if suffix == ".json":
        json.dump({str(c): entry for c, entry in sorted(clients.items())}, buffer)
    else:
        columns = CAPACITY_COLUMNS if kind == "capacity" else BEHAVIOUR_COLUMNS
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for client, entry in sorted(clients.items()):
            row = {"client_id": client, **entry}
            for field in ("active", "inactive"):
                if field in row:
                    row[field] = ";".join(repr(float(v)) for v in row[field])
            writer.writerow(row[c] for c in columns)
    try:
        write_atomically(path, buffer.getvalue())
    except OSError as err:
        raise TraceError(f"{path}: cannot be written ({err.strerror or err})") from None
