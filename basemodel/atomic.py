"""Writing a file so that no reader, crash or kill ever sees half of it.

Every file the project writes for later reading (cache entries, checkpoints,
summaries, tables, sweep state) goes through here: the content goes to a
temporary file beside the target, is flushed to disk, renamed over the
target, and the folder's entry is flushed too, so that after a power cut the
file is either the old one or the new one. It lives in the lowest package
because every other one writes such files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; it replaces ``path`` on success.

    For writers that want a path or a handle (``torch.save`` takes the path;
    ``numpy.savez`` adds ``.npz`` to a path without it, so give it an open
    handle); if the block raises, the temporary file is removed and ``path``
    is untouched.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield temporary
        with temporary.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def write_atomically(path: Path, content: str | bytes) -> None:
    """Replace ``path`` with ``content`` (text is written as UTF-8)."""
    with atomic_path(path) as temporary:
        if isinstance(content, str):
            temporary.write_text(content, encoding="utf-8")
        else:
            temporary.write_bytes(content)


def _fsync_folder(folder: Path) -> None:
    """Flush the folder's entry for the renamed file (not possible on every system)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
