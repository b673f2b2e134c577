"""Recorded rating timelines replayed as a fleet: each device is one user, living its history.

A local copy of public rating data (``simulator.world.ratings``: MovieLens,
Amazon) becomes the fleet's data, so methods meet real drift, the users' own:

- **Who is who.** Users with at least ``MIN_INTERACTIONS`` interactions are
  shuffled by the pretraining seed; the first ``round(data.cloud_fraction *
  users)`` are the cloud's users (their whole timelines are its labeled
  data), the next ``fleet.devices`` are the devices, in fleet order.
- **Time.** A run's horizon is laid over each device's own timeline: at time
  ``t`` of a horizon ``H``, a device with ``L`` interactions is at position
  ``now = 1 + floor((L - 2) * min(t / H, 1))``. Its window draws from the
  ``SPAN`` interactions before ``now`` (what it just did); its test samples and
  ranking cases from the ``SPAN`` from ``now`` on (what it does next), so
  evaluation is test-then-adapt on the future.
- **Samples.** A sample at position ``j`` is the ``history`` items before ``j``
  (padded with 0 at the start of a timeline) and a candidate: with
  probability 1/2 the item at ``j`` (label 1, a click), else an item the user
  never rated, uniform over the catalogue (label 0).

Every draw comes from a generator keyed by the caller, so a replay is a pure
function of (seed, device, time), like the generated streams.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from simulator.catalog.datasets import REPLAY_SPAN
from simulator.catalog.interest_model import InterestConfig
from simulator.catalog.seeding import rng_for
from simulator.world.ratings import (
    Interactions,
    RatingsError,
    load_interactions,
    ratings_file,
    unrated_items,
)

HISTORY = InterestConfig().history  # items before the candidate, as in generated streams
MIN_INTERACTIONS = HISTORY + 2  # a user needs a history, a present and a future
SPAN = REPLAY_SPAN  # interactions before (window) and after (test) a device's present
REPLAY_CLOUD_SAMPLES = 64  # samples per cloud user, from anywhere on its timeline


def load_replay(path: str, fmt: str) -> Interactions:
    """The file's users with enough interactions for a replay (parsed once per file version)."""
    return _load_replay(path, fmt, _identity(path, fmt))


def ratings_digest(path: str, fmt: str, fresh: bool = False) -> str:
    """The ratings file's SHA-256: what a cached model trained on it depends on.

    Computed once per file version and process; ``fresh`` reads the file again
    (a resume's check, which must not trust anything remembered).
    """
    if fresh:
        return _digest(path, fmt)
    return _cached_digest(path, fmt, _identity(path, fmt))


def _identity(path: str, fmt: str) -> tuple[int, int, int, int]:
    """Which version of the file this is: a file replaced or rewritten in place (a
    notebook's long-lived process) is a new one, so nothing parsed from the old
    file is served for it."""
    found = ratings_file(path, fmt).stat()
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns


@lru_cache(maxsize=4)
def _load_replay(path: str, fmt: str, identity: tuple[int, ...]) -> Interactions:
    return load_interactions(path, fmt, min_interactions=MIN_INTERACTIONS)


@lru_cache(maxsize=4)
def _cached_digest(path: str, fmt: str, identity: tuple[int, ...]) -> str:
    return _digest(path, fmt)


def _digest(path: str, fmt: str) -> str:
    digest = hashlib.sha256()
    with ratings_file(path, fmt).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_rankable(interactions: Interactions, negatives: int) -> None:
    """Every user must leave ``negatives`` items unrated, or its ranking cases cannot be built."""
    held = max(len(np.unique(items)) for items in interactions.sequences)
    if interactions.num_items - held < negatives:
        raise RatingsError(
            f"a user rated {held} of the {interactions.num_items} items; ranking cases need "
            f"{negatives} items each user never rated"
        )


def user_split(
    users: int, cloud_fraction: float, devices: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(cloud users, device users)``: a seeded shuffle, the cloud's share first.

    Too few users for the fleet is a one-line error that says how many fit.
    """
    cloud = max(1, round(cloud_fraction * users))
    if users - cloud < devices:
        raise RatingsError(
            f"the ratings hold {users} users with at least {MIN_INTERACTIONS} interactions; "
            f"the cloud keeps {cloud} (data.cloud_fraction), which leaves {users - cloud} "
            f"for fleet.devices={devices}"
        )
    order = rng_for(seed, "replay-users").permutation(users)
    return order[:cloud], order[cloud : cloud + devices]


@dataclass(frozen=True)
class Replay:
    """A ratings file's timelines, with the cloud's and the devices' users chosen."""

    interactions: Interactions
    cloud_users: np.ndarray
    device_users: np.ndarray
    horizon_s: float

    @property
    def num_items(self) -> int:
        return self.interactions.num_items

    def present(self, user: int, time_s: float) -> int:
        """The position of ``user``'s present at ``time_s`` (see the module docstring)."""
        length = len(self.interactions.sequences[user])
        progress = min(max(time_s / self.horizon_s, 0.0), 1.0)
        return 1 + math.floor((length - 2) * progress)

    def positions(self, user: int, time_s: float, future: bool, count: int, rng) -> np.ndarray:
        """``count`` positions drawn from the ``SPAN`` before the present, or from it on."""
        length = len(self.interactions.sequences[user])
        now = self.present(user, time_s)
        low, high = (now, min(length, now + SPAN)) if future else (max(1, now - SPAN), now)
        if high <= low:  # at a timeline's very end or start: the nearest interaction
            low, high = (length - 1, length) if future else (1, 2)
        return rng.integers(low, high, size=count)

    def anywhere(self, user: int, count: int, rng) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` samples from anywhere on ``user``'s timeline (the cloud's view)."""
        length = len(self.interactions.sequences[user])
        return self._samples_at(user, rng.integers(1, length, size=count), rng)

    def histories(self, user: int, positions: np.ndarray) -> np.ndarray:
        """The ``HISTORY`` items before each position, left-padded with 0."""
        padded = np.concatenate([np.zeros(HISTORY, np.int64), self.interactions.sequences[user]])
        return np.stack([padded[p : p + HISTORY] for p in positions])

    def samples(
        self, user: int, time_s: float, count: int, future: bool, rng
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` (history, candidate) inputs and click labels of ``user`` near ``time_s``."""
        return self._samples_at(user, self.positions(user, time_s, future, count, rng), rng)

    def _samples_at(
        self, user: int, positions: np.ndarray, rng
    ) -> tuple[torch.Tensor, torch.Tensor]:
        count = len(positions)
        clicked = rng.random(count) < 0.5
        candidates = np.where(
            clicked,
            self.interactions.sequences[user][positions],
            unrated_items(self.interactions, user, count, rng),
        )
        inputs = np.concatenate([self.histories(user, positions), candidates[:, None]], axis=1)
        return torch.from_numpy(inputs.astype(np.float32)), torch.from_numpy(
            clicked.astype(np.int64)
        )

    def ranking_case(self, user: int, time_s: float, negatives: int, rng) -> torch.Tensor:
        """The user's next item (first row) among ``negatives`` items it never rated."""
        (position,) = self.positions(user, time_s, True, 1, rng)
        own = np.unique(self.interactions.sequences[user])
        free = np.setdiff1d(np.arange(1, self.num_items + 1), own)
        if len(free) < negatives:
            raise RatingsError(f"user {user} rated all but {len(free)} items: no ranking case")
        candidates = np.concatenate(
            [[self.interactions.sequences[user][position]], rng.choice(free, negatives, False)]
        )
        history = self.histories(user, np.array([position]))
        rows = np.concatenate([np.repeat(history, len(candidates), 0), candidates[:, None]], 1)
        return torch.from_numpy(rows.astype(np.float32))


def build_replay(
    path: str | Path, fmt: str, cloud_fraction: float, devices: int, horizon_s: float, seed: int
) -> Replay:
    """The replay of ``path`` for a fleet of ``devices`` (``seed``: the pretraining seed)."""
    interactions = load_replay(str(path), fmt)
    cloud, fleet = user_split(interactions.num_users, cloud_fraction, devices, seed)
    return Replay(interactions, cloud, fleet, horizon_s)
