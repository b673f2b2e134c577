"""Who holds which data: the cloud's pretraining pool, the devices' pools, label skew.

The base dataset is split once per seed into three disjoint pools: the cloud's
(pretraining), the devices' training stream and the devices' test stream.
Each device draws from the device pools through its own class prior, drawn
from a Dirichlet(alpha) (small alpha = strong label skew).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from simulator.catalog.datasets import ImageDataset
from simulator.catalog.seeding import rng_for
from simulator.scenario.schema import Data


@dataclass(frozen=True)
class Pools:
    """Indices into the base dataset, and per-class index lists for the device pools."""

    cloud: np.ndarray
    device_train_by_class: tuple[np.ndarray, ...]
    device_test_by_class: tuple[np.ndarray, ...]


def split_pools(dataset: ImageDataset, data: Data, seed: int) -> Pools:
    """Split the dataset into disjoint cloud / device-train / device-test pools."""
    n = len(dataset.labels)
    order = rng_for(seed, "pool-split").permutation(n)
    n_cloud = int(round(data.cloud_fraction * n))
    n_test = int(round(data.test_fraction * (n - n_cloud)))
    cloud, test, train = (
        order[:n_cloud],
        order[n_cloud : n_cloud + n_test],
        order[n_cloud + n_test :],
    )
    labels = dataset.labels.numpy()

    def by_class(indices: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(np.sort(indices[labels[indices] == c]) for c in range(dataset.num_classes))

    return Pools(np.sort(cloud), by_class(train), by_class(test))


def class_prior(device: int, num_classes: int, alpha: float, seed: int) -> np.ndarray:
    """The device's label distribution: Dirichlet(alpha) over classes, fixed for the run."""
    prior = rng_for(seed, "class-prior", device).dirichlet(np.full(num_classes, alpha))
    return np.maximum(prior, 0.0) / prior.sum()


def draw_indices(
    by_class: tuple[np.ndarray, ...], prior: np.ndarray, count: int, rng: np.random.Generator
) -> torch.Tensor:
    """Draw ``count`` dataset indices: a class from the prior, then a sample of that class."""
    available = np.array([len(pool) > 0 for pool in by_class])
    weights = prior * available
    if weights.sum() <= 0:
        weights = available.astype(float)
    weights = weights / weights.sum()
    classes = rng.choice(len(by_class), size=count, p=weights)
    picks = [by_class[c][rng.integers(len(by_class[c]))] for c in classes]
    return torch.as_tensor(np.asarray(picks, dtype=np.int64))
