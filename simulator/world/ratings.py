"""Local copies of public rating data as per-user click sequences in time order.

The simulator never downloads: a user points ``path`` at a folder (or file)
they already have. Formats read:

- ``movielens-100k``: ``u.data``, tab-separated ``user item rating timestamp``.
- ``movielens-1m``: ``ratings.dat``, ``user::item::rating::timestamp``.
- ``amazon``: a ratings-only CSV as Amazon's review dumps publish it,
  ``item,user,rating,timestamp`` without a header (any ``.csv`` file named by
  ``path``, or the one ``.csv`` file in the folder).

Every rating is an interaction (a "click"); items are renumbered ``1..n`` in
order of first appearance (0 is kept for padding), users likewise from 0.
Negatives for training or ranking are drawn by ``sample_negatives``: uniform
over the catalogue minus the user's own items, from a generator seeded by
(seed, user), so the same seed gives the same negatives on every machine.
A malformed line is an error naming the file and the line number.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from simulator.catalog.datasets import RATING_FORMATS as FORMATS
from simulator.catalog.seeding import rng_for

# A ratings file larger than this is refused rather than read (the largest public
# dumps the formats cover are a few GB; /dev/zero behind a link is endless).
MAX_RATINGS_BYTES = 8 * 2**30
# Timestamps are Unix seconds; anything beyond 2**53 cannot be a time and overflows.
MAX_TIMESTAMP = 2**53


class RatingsError(ValueError):
    """A ratings file that is missing or cannot be read (one line, naming the file)."""


@dataclass(frozen=True)
class Interactions:
    """Per-user item sequences in time order.

    ``sequences[u]`` holds user ``u``'s item ids (1-based) ordered by time
    (ties by file order); ``times[u]`` the matching Unix timestamps.
    """

    sequences: list[np.ndarray]
    times: list[np.ndarray]
    num_items: int

    @property
    def num_users(self) -> int:
        return len(self.sequences)


def ratings_file(path: str | Path, fmt: str) -> Path:
    """The file to read for ``fmt`` under ``path`` (a folder or the file itself)."""
    if fmt not in FORMATS:
        raise RatingsError(f"unknown ratings format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    expected, _ = FORMATS[fmt]
    path = Path(path)
    try:
        if path.is_dir():
            found = sorted(path.glob(expected))
            if len(found) != 1:
                what = "no" if not found else f"{len(found)}"
                raise RatingsError(
                    f"{path}: {what} {expected} file(s) found; {fmt} expects exactly one"
                )
            path = found[0]
        elif not path.exists() and not path.is_symlink():
            raise RatingsError(f"{path}: no such file or folder (expected {expected} for {fmt})")
        return _regular(path)
    except OSError as err:  # a link loop, an unreadable folder, a name too long
        raise RatingsError(f"{path}: cannot be read ({err.strerror or err})") from None


def _regular(path: Path) -> Path:
    """``path`` if it is a regular file under the size cap: a pipe, a device or a
    dangling link is refused before it is opened (reading one could block or never end)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise RatingsError(f"{path}: a link to nothing (its target is missing)") from None
    if not stat.S_ISREG(info.st_mode):
        raise RatingsError(f"{path}: not a regular file (a pipe, device or socket); give the file")
    if info.st_size > MAX_RATINGS_BYTES:
        raise RatingsError(
            f"{path}: {info.st_size:,} bytes, more than the {MAX_RATINGS_BYTES:,} a ratings "
            "file may hold; give a smaller extract"
        )
    return path


def _records(file: Path, fmt: str) -> Iterator[tuple[str, str, int]]:
    """``(user, item, timestamp)`` per non-empty line; a bad line raises naming it."""
    _, separator = FORMATS[fmt]
    with file.open("rb") as handle:
        for number, line in _lines(handle, file):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split(separator)
            if len(fields) != 4:
                raise RatingsError(
                    f"{file}:{number}: expected 4 fields separated by {separator!r}, "
                    f"found {len(fields)}"
                )
            if fmt == "amazon":
                item, user, rating, stamp = fields
            else:
                user, item, rating, stamp = fields
            try:
                float(rating)
                timestamp = int(float(stamp))
            except (ValueError, OverflowError):
                raise RatingsError(
                    f"{file}:{number}: rating {rating!r} or timestamp {stamp!r} is not a number"
                ) from None
            if abs(timestamp) >= MAX_TIMESTAMP:
                raise RatingsError(f"{file}:{number}: timestamp {stamp!r} is not a Unix time")
            if not user.strip() or not item.strip():
                raise RatingsError(f"{file}:{number}: empty user or item id")
            yield user.strip(), item.strip(), timestamp


def _lines(handle: BinaryIO, file: Path) -> Iterator[tuple[int, str]]:
    """Numbered UTF-8 lines (a leading BOM dropped); other text is one error naming the line."""
    number = 0
    for raw in handle:
        if number == 0:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        for piece in raw.rstrip(b"\r\n").split(b"\r"):  # old-Mac "\r" endings too
            number += 1
            try:
                yield number, piece.decode("utf-8")
            except UnicodeDecodeError:
                raise RatingsError(
                    f"{file}:{number}: not UTF-8 text; convert the file to UTF-8 (iconv -t utf-8)"
                ) from None


def load_interactions(path: str | Path, fmt: str, min_interactions: int = 1) -> Interactions:
    """Every user's items in time order (users with fewer than ``min_interactions`` dropped)."""
    file = ratings_file(path, fmt)
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    rows: list[tuple[int, int, int]] = []
    for user, item, stamp in _records(file, fmt):
        u = users.setdefault(user, len(users))
        i = items.setdefault(item, len(items) + 1)
        rows.append((u, i, stamp))
    if not rows:
        raise RatingsError(f"{file}: no ratings in the file")
    table = np.asarray(rows, dtype=np.int64)
    order = np.lexsort((np.arange(len(table)), table[:, 2], table[:, 0]))  # user, time, file
    table = table[order]
    bounds = np.flatnonzero(np.diff(table[:, 0])) + 1
    sequences, times = [], []
    for chunk in np.split(table, bounds):
        if len(chunk) >= min_interactions:
            sequences.append(chunk[:, 1].copy())
            times.append(chunk[:, 2].copy())
    return Interactions(sequences, times, num_items=len(items))


def sample_negatives(interactions: Interactions, user: int, count: int, seed: int) -> np.ndarray:
    """``count`` items the user never interacted with, uniform, seeded by (seed, user)."""
    return unrated_items(interactions, user, count, rng_for(seed, "negatives", user))


def unrated_items(
    interactions: Interactions, user: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """``count`` items the user never interacted with, uniform over the rest of the catalogue."""
    own = np.unique(interactions.sequences[user])
    available = interactions.num_items - len(own)
    if available <= 0:
        raise RatingsError(f"user {user} interacted with every item: no negatives to draw")
    draws = rng.integers(1, available + 1, size=count)  # rank among the items not held
    # Map the k-th free item id to its id: add the number of held ids at or below it.
    return draws + np.searchsorted(own - np.arange(len(own)), draws, side="right")
