"""Seeded generators keyed by what they are for.

Every random draw in the simulator comes from a generator built here from the
run seed and a tuple of labels (a stream name, a device index, a time slot).
No global ``random`` / ``np.random`` state is used, so a draw depends only on
its key: the same scenario and seed give the same numbers on any engine, in
any process and in any order of execution.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _label_to_int(label: int | str) -> int:
    if isinstance(label, int):
        if label < 0:
            raise ValueError(f"seed labels must be non-negative, got {label}")
        return label
    digest = hashlib.blake2b(label.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def rng_for(seed: int, *labels: int | str) -> np.random.Generator:
    """A generator that is a pure function of ``(seed, *labels)``."""
    entropy = [_label_to_int(seed), *(_label_to_int(label) for label in labels)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def torch_seed_for(seed: int, *labels: int | str) -> int:
    """A 63-bit seed for a ``torch.Generator``, derived the same way."""
    return int(rng_for(seed, *labels).integers(0, 2**63 - 1))
