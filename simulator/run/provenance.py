"""Where a run's numbers came from: the code, the packages and the machine.

Figures move across machines and kernels (wall time always, float results
when a library changes its kernels), so a run folder records, in
``provenance.json``, every process that wrote to it: the start and each
resume, with the source's git commit (and whether it had uncommitted
changes), the versions of the packages whose code decides the numbers, and
the CPU (model, core count, the vector instruction sets it has and the one
torch's kernels use), the thread counts and the command line.
Nothing here is read back to decide a run's numbers; it is for the reader of
the run, and ``simulate compare`` warns where two runs' records differ.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from basemodel.atomic import write_atomically

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
    write_atomically(path, json.dumps(entries, indent=1) + "\n")


def describe_process() -> dict[str, Any]:
    """This process's code, packages and machine, as plain JSON values."""
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv else [],
        "source": _git_state(SOURCE),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "machine": {
            "system": platform.platform(),
            "processor": _cpu_model(),
            "cpus": os.cpu_count(),
            "flags": _cpu_flags(),
            "torch_kernels": _torch_capability(),
        },
        "threads": _threads(),
    }


# Figures that differ between two runs for reasons other than their scenario.
COMPARED = {
    "source commit": lambda e: (e.get("source") or {}).get("commit"),
    "uncommitted changes": lambda e: (e.get("source") or {}).get("uncommitted_changes"),
    "python": lambda e: e.get("python"),
    **{name: (lambda e, n=name: (e.get("packages") or {}).get(n)) for name in PACKAGES},
    "CPU": lambda e: (e.get("machine") or {}).get("processor"),
    "torch kernels": lambda e: (e.get("machine") or {}).get("torch_kernels"),
    "torch threads": lambda e: (e.get("threads") or {}).get("torch"),
}


def read_provenance(folder: Path) -> list[dict[str, Any]]:
    """The folder's recorded processes (empty for a folder written before they were kept)."""
    try:
        loaded = json.loads((folder / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    return [e for e in loaded if isinstance(e, dict)] if isinstance(loaded, list) else []


def provenance_differences(folders: list[Path]) -> list[str]:
    """One line per recorded figure on which the runs' starting processes disagree."""
    starts = {}
    for folder in folders:
        entries = read_provenance(folder)
        if entries:
            starts[folder] = entries[0]
    if len(starts) < 2:
        return []
    lines = []
    for label, read in COMPARED.items():
        seen = {str(folder): read(entry) for folder, entry in starts.items()}
        if len({json.dumps(v) for v in seen.values()}) > 1:
            lines.append(f"{label} differs: " + "; ".join(f"{f}: {v}" for f, v in seen.items()))
    return lines


def _threads() -> dict[str, Any]:
    """The thread counts that change wall time (and, for some kernels, float results)."""
    import torch

    return {
        "torch": torch.get_num_threads(),
        "torch_interop": torch.get_num_interop_threads(),
        **{name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
    }


def _torch_capability() -> str | None:
    """The instruction set torch's CPU kernels were dispatched to on this machine."""
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return None


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
