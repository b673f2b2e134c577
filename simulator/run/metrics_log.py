"""Append-only metrics files: one JSON line per round or evaluation tick (the ``RowSink``).

Each line is flushed as it is written, so an interrupted run leaves every
completed round on disk and nothing half-written that a reader would trip on
(a torn last line is ignored when reading).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, TextIO

from simulator.catalog.errors import UserError


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class MetricsLog:
    """Writes rows to ``path`` (JSON lines), flushing every row.

    ``keep_bytes`` (on resume) first cuts the file back to the rows a
    checkpoint recorded: rows written after it, and a torn last line, go, so
    the resumed run rewrites them once.
    """

    def __init__(self, path: Path, keep_bytes: int | None = None):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if keep_bytes is not None:
            with path.open("ab") as handle:
                if handle.tell() < keep_bytes:
                    raise UserError(
                        f"{path} has {handle.tell()} bytes, fewer than the {keep_bytes} "
                        "its checkpoint recorded"
                    )
                handle.truncate(keep_bytes)
        self._file: TextIO | None = path.open("a", encoding="utf-8")

    def offset(self) -> int:
        """Bytes written so far, forced to disk first.

        A checkpoint records this offset, so the rows it counts must survive a
        power cut: otherwise the file could come back shorter than recorded.
        """
        if self._file is None:
            raise ValueError(f"{self.path} is closed")
        self._file.flush()
        os.fsync(self._file.fileno())
        return self._file.tell()

    def append(self, row: dict[str, Any]) -> None:
        if self._file is None:
            raise ValueError(f"{self.path} is closed")
        self._file.write(json.dumps(_clean(row), separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
