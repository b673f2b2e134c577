"""Reading a scenario file as plain data, safely: size-capped, YAML 1.2, never code.

Both the loader (which then validates it) and the run-folder reader (which
reads a stored scenario as it is, so that a folder written by an older
version stays reportable) read files through here; it knows nothing of the
methods, so a reader of run folders loads none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from simulator.catalog.errors import ScenarioError
from simulator.scenario.yaml12 import load_yaml

MAX_FILE_BYTES = 1_000_000  # a scenario is a page of YAML


def read_document(path: str | Path) -> dict[str, Any]:
    """Read a scenario file with the safe YAML loader (a scenario is data, never code)."""
    path = Path(path)
    if not path.exists():
        raise ScenarioError(f"{path}: scenario file not found")
    if path.is_dir():
        raise ScenarioError(f"{path}: is a folder, expected a scenario file (.yaml)")
    if not path.is_file():  # a device or a pipe (/dev/zero) would be read forever
        raise ScenarioError(f"{path}: not a regular file, expected a scenario file (.yaml)")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ScenarioError(
            f"{path}: {path.stat().st_size:,} bytes; a scenario file is at most "
            f"{MAX_FILE_BYTES:,} (is this the right file?)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ScenarioError(f"{path}: cannot read scenario file ({err})") from None
    try:
        document = load_yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ScenarioError(f"{path}: {where}invalid YAML ({problem})") from None
    if not isinstance(document, dict):
        found = type(document).__name__ if document is not None else "an empty file"
        raise ScenarioError(f"{path}: expected a mapping of scenario keys, found {found}")
    return document
