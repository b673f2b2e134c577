"""A fixed torch thread count around numeric work, for identical numbers everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def fixed_threads(count: int = 1) -> Iterator[None]:
    """Run torch work on a fixed number of threads, then restore the previous setting.

    Float reductions depend on how work is split across threads, and the
    thread count is per OS thread (a Flower ServerApp runs in its own), so
    cloud pretraining, cloud batches and device steps all run with a fixed
    count: the same scenario and seed then give the same numbers on any engine
    and machine.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
