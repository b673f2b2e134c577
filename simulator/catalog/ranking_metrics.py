"""Recommendation metrics: AUC, user-level GAUC, and HR@k / NDCG@k of one positive.

Conventions, chosen so that a model cannot score by saying nothing:

- **AUC** is the Mann-Whitney statistic: the probability that a random clicked
  impression scores above a random unclicked one, a tie counting one half. A
  constant scorer gets exactly 0.5. Undefined (``nan``) when only one class is
  present.
- **GAUC** is the impression-weighted mean of per-user AUCs over users that have
  both a click and a non-click (the others have no AUC and are left out, as in
  the literature); ``nan`` when no user qualifies.
- **HR@k and NDCG@k** score test cases of one positive among sampled negatives.
  The positive's rank is pessimistic: 1 + the number of negatives scoring at
  least as high, so a tie never helps (a constant scorer ranks last).
  ``HR@k = 1[rank <= k]``, ``NDCG@k = 1[rank <= k] / log2(rank + 1)``.

All functions take plain arrays and return floats in [0, 1] (or ``nan``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

RANKING_NEGATIVES = 100  # a ranking case: the clicked item among 100 unclicked ones
CUTOFFS: tuple[int, ...] = (5, 10, 20)
RANKING_NAMES: tuple[str, ...] = tuple(f"{m}@{k}" for k in CUTOFFS for m in ("hr", "ndcg"))


def auc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """The probability that a clicked impression outscores an unclicked one (ties: 1/2).

    >>> auc([0.9, 0.2, 0.5], [1, 0, 0])
    1.0
    >>> auc([0.5, 0.5], [1, 0])
    0.5
    """
    s, y = _checked(scores, labels)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    from scipy.stats import rankdata  # scipy.stats costs 1 s to import: only when used

    ranks = rankdata(s)  # average ranks: ties share their mean rank
    u = float(ranks[y == 1].sum()) - positives * (positives + 1) / 2
    return u / (positives * negatives)


def gauc(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    users: Sequence[int] | np.ndarray,
) -> float:
    """Per-user AUC averaged with each user's impression count as its weight.

    Users whose impressions are all clicks or all non-clicks (a single
    interaction included) have no AUC and do not count.
    """
    s, y = _checked(scores, labels)
    u = np.asarray(users)
    if u.shape != y.shape:
        raise ValueError(f"users has shape {u.shape}, labels {y.shape}: one user per impression")
    total = weight = 0.0
    for user in np.unique(u):
        mine = u == user
        value = auc(s[mine], y[mine])
        if not math.isnan(value):
            total += value * int(mine.sum())
            weight += int(mine.sum())
    return total / weight if weight else math.nan


def positive_ranks(positive: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Pessimistic 1-based rank of each case's positive among its negatives.

    ``positive`` has shape ``(cases,)``, ``negatives`` ``(cases, n)``.
    """
    positive = np.asarray(positive, dtype=np.float64)
    negatives = np.asarray(negatives, dtype=np.float64)
    if negatives.ndim != 2 or positive.shape != (negatives.shape[0],):
        raise ValueError(
            f"positive {positive.shape} and negatives {negatives.shape}: "
            "expected (cases,) and (cases, n)"
        )
    return 1 + (negatives >= positive[:, None]).sum(axis=1)


def hit_rate(ranks: np.ndarray, k: int) -> float:
    """Share of cases whose positive ranks within the top ``k``."""
    ranks = np.asarray(ranks)
    return float((ranks <= k).mean()) if len(ranks) else math.nan


def ndcg(ranks: np.ndarray, k: int) -> float:
    """Mean NDCG@k of one relevant item per case (its ideal DCG is 1)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if not len(ranks):
        return math.nan
    gains = np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)
    return float(gains.mean())


def ranking_report(positive: np.ndarray, negatives: np.ndarray) -> dict[str, float]:
    """``hr@k`` and ``ndcg@k`` for every cutoff in ``CUTOFFS``."""
    ranks = positive_ranks(positive, negatives)
    report = {}
    for k in CUTOFFS:
        report[f"hr@{k}"] = hit_rate(ranks, k)
        report[f"ndcg@{k}"] = ndcg(ranks, k)
    return report


def _checked(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores {s.shape} and labels {y.shape}: expected two equal 1-d arrays")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (no click) or 1 (click)")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return s, y.astype(np.int64)
