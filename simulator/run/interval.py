"""The seed-level interval rule every paired figure uses, apart from any folder.

The seed is the unit of replication, so a difference between two methods is
judged on its per-seed values: a Student t interval at 95% with ``n - 1``
degrees of freedom, and no verdict below ``MIN_SEEDS`` seeds. Kept apart from
``paired`` (which reads evaluation rows and writes ``paired.csv``) so that the
reports can draw the same band per tick without touching a run folder.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

MIN_SEEDS = 3  # fewer seeds give no verdict
LEVEL = 0.95
TOO_FEW = "too few seeds"


def seed_interval(differences: list[float]) -> tuple[float, float, float, float]:
    """Mean, t-interval bounds and standard deviation of per-seed differences.

    One seed: the mean and NaN for the rest (one replicate has no spread).
    """
    values = np.asarray(differences, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, len(values) - 1)) * sd / math.sqrt(len(values))
    return mean, mean - half, mean + half, sd
