"""Across-seed statistics: mean and a 95% confidence interval (Student's t)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval (half-width 0 for a single value)."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if data.size == 0:
        return float("nan"), float("nan")
    if data.size == 1:
        return float(data[0]), 0.0
    half = stats.t.ppf(0.975, data.size - 1) * data.std(ddof=1) / math.sqrt(data.size)
    return float(data.mean()), float(half)
