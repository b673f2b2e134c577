"""Where the cloud's own tensor work runs: a scenario's ``cloud.device``, checked and resolved.

The CPU is the default because it is the same everywhere: CUDA kernels sum in
other orders than CPU kernels, so a run whose cloud computes on a GPU gives
numbers that differ in the last bits (and, after training amplifies them, in
the figures) from the same run on the CPU. A GPU is an explicit choice, and
only the methods whose cloud half declares it (``Method.cloud_devices``) use
it; the others keep their cloud on the CPU and the run says so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

import torch

DEVICE_PATTERN = r"^(cpu|cuda(:[0-9]+)?)$"
HOST = torch.device("cpu")


def resolve_cloud_device(name: str) -> torch.device:
    """``name`` as a torch device, refused with the reason when this machine cannot run it.

    For CUDA it also asks cuBLAS for its deterministic workspace (it must be
    set before the first matrix product), so that one GPU gives one answer.
    """
    if not re.fullmatch(DEVICE_PATTERN, name):
        raise ValueError(f"unknown device {name!r}; valid: cpu, cuda, cuda:N (N a GPU's index)")
    device = torch.device(name)
    if device.type == "cpu":
        return device
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else "no CUDA device visible"
        raise ValueError(
            f"{name!r} asked, but this machine cannot run CUDA (torch {torch.__version__}: "
            f"{build}); use cpu, or run on a machine with an NVIDIA GPU"
        )
    count = torch.cuda.device_count()
    if (device.index or 0) >= count:
        raise ValueError(f"{name!r} asked, but this machine has {count} CUDA device(s)")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return device


@contextmanager
def deterministic_kernels(device: torch.device) -> Iterator[None]:
    """On CUDA, ask torch for deterministic kernels around the cloud's step; elsewhere nothing.

    Some CUDA kernels (scatter, index accumulation) add in a different order
    from one call to the next. ``warn_only``: an operation without a
    deterministic kernel warns instead of stopping the run.
    """
    if device.type != "cuda":
        yield
        return
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
