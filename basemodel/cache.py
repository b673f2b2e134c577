"""Where pretrained weights are cached, under which key, and how they are written.

A cache entry is a file named by a hash of everything its contents depend on,
so a change of any input is a miss, never a stale hit. Entries are written
atomically (a temporary file, then a rename), so a crash never leaves a torn
entry under a valid name.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from basemodel.atomic import atomic_path


def default_cache_dir() -> Path:
    """``$PERSONA_FLEET_CACHE`` or ``~/.cache/persona-fleet``."""
    env = os.environ.get("PERSONA_FLEET_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "persona-fleet"


# Bumped whenever code changes what a cached result would be (layouts, kernels,
# training procedures): old entries then miss instead of being reused.
CACHE_FORMAT = 4


def cache_key(description: dict) -> str:
    """A short stable hash of what a cached result depends on.

    Besides ``description``, the key covers the cache format and the torch
    version (its kernels decide the float results).
    """
    keyed = {**description, "cache-format": CACHE_FORMAT, "torch": torch.__version__}
    text = json.dumps(keyed, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def save_atomically(document: Any, path: Path) -> Path:
    """``torch.save`` to ``path`` through a temporary file and a rename; returns the file.

    An unwritable cache folder (read-only, full, a file in its place) costs the
    next run its time, never this run's results: the entry goes to a folder of
    this process's own, removed at exit, with one warning naming the variable
    that moves the cache. The returned path is where the entry really is.
    """
    try:
        _write(document, path)
        return path
    except OSError as err:
        fallback = _uncached_dir() / path.name
        logging.getLogger("persona_fleet").warning(
            "cannot write the cache entry %s (%s); going on uncached (point "
            "PERSONA_FLEET_CACHE at a writable folder to keep it for the next run)",
            path,
            err.strerror or err,
        )
        _write(document, fallback)
        return fallback


def _write(document: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(document, tmp)


@functools.cache
def _uncached_dir() -> Path:
    """A private folder for this process's entries when the cache cannot take them."""
    folder = Path(tempfile.mkdtemp(prefix="persona-fleet-uncached-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def load_entry(path: Path, expected: tuple[str, ...] = ()) -> Any | None:
    """A cache entry, or None when it is missing or unreadable (then it is rebuilt).

    A torn, foreign or hand-edited file under a valid name is a miss, not a
    crash: the caller recomputes the entry and replaces it atomically.
    ``expected`` are keys a dictionary entry must hold.
    """
    if not path.exists():
        return None
    try:
        entry = torch.load(path, weights_only=True)
        if expected and not (isinstance(entry, dict) and all(k in entry for k in expected)):
            raise ValueError(f"missing {[k for k in expected if k not in (entry or {})]}")
        return entry
    except Exception as err:  # any unreadable content is a miss, whatever raised it
        logging.getLogger("persona_fleet").warning(
            "cache entry %s is unreadable (%s); rebuilding it", path, type(err).__name__
        )
        return None
