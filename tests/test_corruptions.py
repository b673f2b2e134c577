"""Each covariate corruption does what its name says, stays in [0, 1], and is seeded."""

from __future__ import annotations

import pytest
import torch

from simulator.catalog.corruptions import (
    blur,
    brightness,
    contrast,
    inversion,
    occlusion,
)
from simulator.catalog.shifts import COVARIATE_NAMES, corruption


def _images() -> torch.Tensor:
    images = torch.zeros(4, 1, 12, 12)
    images[:, :, 4:8, 4:8] = 1.0  # a bright square on black, like a digit stroke
    return images


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kind", COVARIATE_NAMES)
def test_severity_zero_is_the_identity_and_results_stay_in_range(kind):
    images = _images()
    assert torch.allclose(corruption(kind)(images, 0.0, _gen()), images)
    out = corruption(kind)(images, 0.7 if kind != "rotation" else 30.0, _gen())
    assert out.shape == images.shape
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.allclose(out, images)


def test_blur_spreads_the_stroke_and_keeps_its_mass():
    images = _images()
    out = blur(images, 1.0, _gen())
    assert float(out[0, 0, 3, 6]) > 0.0  # light leaks just outside the square
    assert float(out[0, 0, 6, 6]) < 1.0  # and the centre dims
    assert torch.allclose(out.sum(dim=(2, 3)), images.sum(dim=(2, 3)), rtol=1e-3)


def test_contrast_pulls_pixels_to_the_image_mean():
    images = _images()
    mean = images.mean()
    out = contrast(images, 1.0, _gen())
    assert torch.allclose(out, torch.full_like(images, float(mean)))
    half = contrast(images, 0.5, _gen())
    assert torch.allclose(half[0, 0, 6, 6], (1 + mean) / 2)


def test_brightness_adds_and_clips():
    out = brightness(_images(), 0.25, _gen())
    assert float(out[0, 0, 0, 0]) == 0.25 and float(out[0, 0, 6, 6]) == 1.0


def test_occlusion_blanks_one_square_of_the_given_side_at_a_seeded_place():
    images = torch.ones(3, 1, 10, 10)
    out = occlusion(images, 0.3, _gen(1))
    assert ((out == 0).sum(dim=(1, 2, 3)) == 9).all()  # a 3x3 square per image
    assert torch.equal(out, occlusion(images, 0.3, _gen(1)))
    assert not torch.equal(out, occlusion(images, 0.3, _gen(2)))


def test_inversion_swaps_ink_and_background():
    images = _images()
    assert torch.equal(inversion(images, 1.0, _gen()), 1.0 - images)
    assert torch.allclose(inversion(images, 0.5, _gen()), torch.full_like(images, 0.5))
