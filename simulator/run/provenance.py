"""Where a run's numbers came from: the code, the packages and the machine.

Figures move across machines and kernels (wall time always, float results
when a library changes its kernels), so a run folder records, in
``provenance.json``, every process that wrote to it: the start and each
resume, with the source's git commit (and whether it had uncommitted
changes), the versions of the packages whose code decides the numbers, and
the CPU (model, core count, the vector instruction sets torch may use).
Nothing here is read back to decide anything; it is for the reader of the run.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

PROVENANCE_FILE = "provenance.json"
PACKAGES = ("persona-fleet", "torch", "flwr", "ray", "numpy", "scipy", "pydantic", "mlxtend")
# The vector extensions that change which kernels torch runs.
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile", "neon")
SOURCE = Path(__file__).resolve().parents[2]


def record_process(folder: Path, role: str) -> None:
    """Append this process's entry (``role``: ``start`` or ``resume``) to the folder's file."""
    path = folder / PROVENANCE_FILE
    entries: list[Any] = []
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            entries = loaded if isinstance(loaded, list) else []
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            entries = []  # a damaged record is replaced, never a reason to stop a run
    entries.append({"role": role, **describe_process()})
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def describe_process() -> dict[str, Any]:
    """This process's code, packages and machine, as plain JSON values."""
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": _git_state(SOURCE),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "machine": {
            "system": platform.platform(),
            "processor": _cpu_model(),
            "cpus": os.cpu_count(),
            "flags": _cpu_flags(),
        },
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_state(folder: Path) -> dict[str, Any] | None:
    """The checkout's commit and whether it differs from it (None outside a git checkout)."""
    if not (folder / ".git").exists():
        return None
    try:
        commit = _git(folder, "rev-parse", "HEAD")
        changed = _git(folder, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "uncommitted_changes": bool(changed)}


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _cpu_model() -> str:
    for line in _cpuinfo():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    for line in _cpuinfo():
        if line.lower().startswith(("flags", "features")):
            present = set(line.partition(":")[2].split())
            return [flag for flag in CPU_FLAGS if flag in present]
    return []
