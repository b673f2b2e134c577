"""Where a device's samples come from, per task: image pools, or a generated click stream.

A source draws ``count`` labeled samples for one device under the shifts in
force, from a generator keyed by the caller (``key`` names the window or
evaluation tick), so every draw is a pure function of (seed, device, time).

- ``ImageSource`` (classification): the device's pool, drawn through its
  Dirichlet class prior (moved by label shifts), corrupted by covariate
  shifts and relabelled by concept shifts.
- ``InterestSource`` (recommendation): the synthetic click stream of
  ``simulator.world.interests``; the device is the user, and interest shifts
  turn its interest by their (ramped) severity.
- ``ReplaySource`` (recommendation): a recorded user's ratings, replayed
  over the run (``simulator.world.replay``); its drift is the user's own.

Click sources also give ranking cases (HR@k, NDCG@k): the clicked item
first, among ``RANKING_NEGATIVES`` unclicked ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from simulator.catalog.datasets import dataset_spec, load_dataset
from simulator.catalog.ranking_metrics import RANKING_NEGATIVES
from simulator.catalog.seeding import rng_for
from simulator.catalog.shifts import SHIFT_KINDS
from simulator.scenario.schema import Scenario
from simulator.world.drift import ActiveShift, relabel, shifted_prior, transform
from simulator.world.fleet import DeviceProfile
from simulator.world.interests import InterestCatalogue
from simulator.world.partition import Pools, class_prior, draw_indices, split_pools
from simulator.world.replay import Replay, build_replay

CLOUD_USERS_FROM = 10_000_000  # the cloud's own users are numbered from here: never a device


@dataclass(frozen=True)
class Draw:
    """What a source is asked for: a device's samples at a time, under the shifts in force.

    ``test``: evaluation samples (a disjoint pool, or the replay's future);
    ``key`` names the window or tick, and seeds the draw.
    """

    profile: DeviceProfile
    shifts: list[ActiveShift]
    time_s: float
    test: bool
    key: tuple


class SampleSource(Protocol):
    """Labeled samples of one device under the shifts in force."""

    def draw(self, at: Draw, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` inputs and their labels."""
        ...

    def ranking(self, at: Draw, cases: int) -> list[torch.Tensor]:
        """HR@k / NDCG@k cases: rows whose first candidate is the clicked one (none for images)."""
        ...


class ImageSource:
    """A device's images: its class prior over its pool, then the shifts in force."""

    def __init__(self, scenario: Scenario, pools: Pools, seed: int):
        self.scenario = scenario
        self.dataset = load_dataset(scenario.data.dataset)
        self.pools = pools
        self.seed = seed

    def draw(self, at: Draw, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        data, index, shifts, key = self.scenario.data, at.profile.index, at.shifts, at.key
        rng = rng_for(self.seed, *key)
        pool = self.pools.device_test_by_class if at.test else self.pools.device_train_by_class
        own = class_prior(index, self.dataset.num_classes, data.dirichlet_alpha, self.seed)
        prior = shifted_prior(own, shifts, index, self.seed, data.dirichlet_alpha)
        indices = draw_indices(pool, prior, count, rng)
        images = transform(self.dataset.images[indices], shifts, self.seed, *key)
        labels = relabel(
            self.dataset.labels[indices], shifts, self.dataset.num_classes, self.seed, *key
        )
        return images, labels

    def ranking(self, at: Draw, cases: int) -> list[torch.Tensor]:
        return []  # images have classes, not a clicked item to rank


def interest_severity(shifts: list[ActiveShift]) -> float:
    """How far (degrees) the interest shifts in force turn a user's interest, together."""
    return sum(s.severity for s in shifts if SHIFT_KINDS[s.kind].effect == "interest")


class InterestSource:
    """A device's clicks: the user's history and candidates under its current interest."""

    def __init__(self, catalogue: InterestCatalogue, seed: int):
        self.catalogue = catalogue
        self.seed = seed

    def draw(self, at: Draw, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = rng_for(self.seed, "clicks", *at.key)
        severity = interest_severity(at.shifts)
        inputs, labels, _ = self.catalogue.samples(at.profile.index, severity, count, rng)
        return inputs, labels

    def ranking(self, at: Draw, cases: int) -> list[torch.Tensor]:
        rng = rng_for(self.seed, "ranking", *at.key)
        severity = interest_severity(at.shifts)
        return [
            self.catalogue.ranking_case(at.profile.index, severity, RANKING_NEGATIVES, rng)[0]
            for _ in range(cases)
        ]


class ReplaySource:
    """A device's clicks: its recorded user's ratings around the device's present."""

    def __init__(self, replay: Replay, seed: int):
        self.replay = replay
        self.seed = seed

    def draw(self, at: Draw, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = rng_for(self.seed, "replay", *at.key)
        user = int(self.replay.device_users[at.profile.index])
        return self.replay.samples(user, at.time_s, count, at.test, rng)

    def ranking(self, at: Draw, cases: int) -> list[torch.Tensor]:
        rng = rng_for(self.seed, "ranking", *at.key)
        user = int(self.replay.device_users[at.profile.index])
        return [
            self.replay.ranking_case(user, at.time_s, RANKING_NEGATIVES, rng) for _ in range(cases)
        ]


def catalogue_for(scenario: Scenario, pretrain_seed: int) -> InterestCatalogue:
    """The click stream's catalogue: it belongs to the pretraining seed, like image splits."""
    spec = dataset_spec(scenario.data.dataset)
    if spec.catalogue is None:
        raise ValueError(f"dataset {spec.name!r} has no click catalogue")
    return InterestCatalogue(spec.catalogue, pretrain_seed)


def replay_for(scenario: Scenario, pretrain_seed: int) -> Replay:
    """The replayed ratings (who is the cloud, who a device: the pretraining seed decides)."""
    data, fleet = scenario.data, scenario.fleet
    fmt = dataset_spec(data.dataset).ratings
    if fmt is None or data.path is None:
        raise ValueError(f"dataset {data.dataset!r} is not read from a ratings file")
    horizon = scenario.rounds.horizon_s
    return build_replay(data.path, fmt, data.cloud_fraction, fleet.devices, horizon, pretrain_seed)


def build_source(scenario: Scenario, seed: int, pretrain_seed: int) -> SampleSource:
    """The scenario's sample source: its dataset's table entry decides which."""
    spec = dataset_spec(scenario.data.dataset)
    if spec.ratings is not None:
        return ReplaySource(replay_for(scenario, pretrain_seed), seed)
    if spec.catalogue is not None:
        return InterestSource(catalogue_for(scenario, pretrain_seed), seed)
    dataset = load_dataset(scenario.data.dataset)
    return ImageSource(scenario, split_pools(dataset, scenario.data, pretrain_seed), seed)
