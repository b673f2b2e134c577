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
"""

from __future__ import annotations

from typing import Protocol

import torch

from simulator.scenario.schema import Scenario
from simulator.world.datasets import dataset_spec, load_dataset
from simulator.world.drift import ActiveShift, relabel, shifted_prior, transform
from simulator.world.fleet import DeviceProfile
from simulator.world.interests import InterestCatalogue
from simulator.world.partition import Pools, class_prior, draw_indices, split_pools
from simulator.world.seeding import rng_for
from simulator.world.shifts import SHIFT_KINDS

CLOUD_USERS_FROM = 10_000_000  # the cloud's own users are numbered from here: never a device


class SampleSource(Protocol):
    """Labeled samples of one device under the shifts in force."""

    def draw(
        self, profile: DeviceProfile, shifts: list[ActiveShift], count: int, test: bool, key: tuple
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


class ImageSource:
    """A device's images: its class prior over its pool, then the shifts in force."""

    def __init__(self, scenario: Scenario, pools: Pools, seed: int):
        self.scenario = scenario
        self.dataset = load_dataset(scenario.data.dataset)
        self.pools = pools
        self.seed = seed

    def draw(
        self, profile: DeviceProfile, shifts: list[ActiveShift], count: int, test: bool, key: tuple
    ) -> tuple[torch.Tensor, torch.Tensor]:
        data = self.scenario.data
        rng = rng_for(self.seed, *key)
        pool = self.pools.device_test_by_class if test else self.pools.device_train_by_class
        own = class_prior(profile.index, self.dataset.num_classes, data.dirichlet_alpha, self.seed)
        prior = shifted_prior(own, shifts, profile.index, self.seed, data.dirichlet_alpha)
        indices = draw_indices(pool, prior, count, rng)
        images = transform(self.dataset.images[indices], shifts, self.seed, *key)
        labels = relabel(
            self.dataset.labels[indices], shifts, self.dataset.num_classes, self.seed, *key
        )
        return images, labels


def interest_severity(shifts: list[ActiveShift]) -> float:
    """How far (degrees) the interest shifts in force turn a user's interest, together."""
    return sum(s.severity for s in shifts if SHIFT_KINDS[s.kind].effect == "interest")


class InterestSource:
    """A device's clicks: the user's history and candidates under its current interest."""

    def __init__(self, catalogue: InterestCatalogue, seed: int):
        self.catalogue = catalogue
        self.seed = seed

    def draw(
        self, profile: DeviceProfile, shifts: list[ActiveShift], count: int, test: bool, key: tuple
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rng = rng_for(self.seed, "clicks", *key)
        inputs, labels, _ = self.catalogue.samples(
            profile.index, interest_severity(shifts), count, rng
        )
        return inputs, labels


def ranking_cases(
    source: SampleSource, profile: DeviceProfile, shifts: list[ActiveShift], cases: int, key: tuple
) -> list[torch.Tensor]:
    """HR@k / NDCG@k test cases of a device: rows whose first candidate is the clicked one.

    Only click streams have them (an empty list for images).
    """
    if not isinstance(source, InterestSource):
        return []
    rng = rng_for(source.seed, "ranking", *key)
    severity = interest_severity(shifts)
    return [
        source.catalogue.ranking_case(profile.index, severity, RANKING_NEGATIVES, rng)[0]
        for _ in range(cases)
    ]


RANKING_NEGATIVES = 100  # each case ranks the clicked item among 100 unclicked ones


def catalogue_for(scenario: Scenario, pretrain_seed: int) -> InterestCatalogue:
    """The click stream's catalogue: it belongs to the pretraining seed, like image splits."""
    spec = dataset_spec(scenario.data.dataset)
    if spec.catalogue is None:
        raise ValueError(f"dataset {spec.name!r} has no click catalogue")
    return InterestCatalogue(spec.catalogue, pretrain_seed)


def build_source(scenario: Scenario, seed: int, pretrain_seed: int) -> SampleSource:
    """The scenario's sample source: its dataset's task decides which."""
    if dataset_spec(scenario.data.dataset).task == "recommendation":
        return InterestSource(catalogue_for(scenario, pretrain_seed), seed)
    dataset = load_dataset(scenario.data.dataset)
    return ImageSource(scenario, split_pools(dataset, scenario.data, pretrain_seed), seed)
