"""Recommendation metrics against cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.catalog.ranking_metrics import (
    auc,
    gauc,
    hit_rate,
    ndcg,
    positive_ranks,
    ranking_report,
)


def test_auc_counts_ordered_pairs():
    # positives 0.8, 0.4; negatives 0.6, 0.2: pairs (0.8>0.6, 0.8>0.2, 0.4<0.6, 0.4>0.2) -> 3/4
    assert auc([0.8, 0.6, 0.4, 0.2], [1, 0, 1, 0]) == pytest.approx(0.75)


def test_a_tie_between_a_click_and_a_non_click_counts_half():
    # positive 0.5 ties negative 0.5 (1/2) and beats negative 0.1 (1): (0.5 + 1) / 2
    assert auc([0.5, 0.5, 0.1], [1, 0, 0]) == pytest.approx(0.75)
    assert auc([0.3] * 6, [1, 0, 1, 0, 0, 1]) == pytest.approx(0.5)  # a constant scorer


def test_auc_is_undefined_with_one_class():
    assert math.isnan(auc([0.1, 0.9], [1, 1]))
    assert math.isnan(auc([0.4], [0]))


def test_gauc_weights_users_by_impressions_and_skips_one_class_users():
    scores = [0.9, 0.1, 0.2, 0.3, 0.8, 0.7, 0.5]
    labels = [1, 0, 1, 0, 0, 1, 1]
    users = [1, 1, 2, 2, 2, 3, 4]
    # user 1: AUC 1 (2 impressions); user 2: positive 0.2 vs negatives 0.3, 0.8 -> 0
    # (3 impressions); user 3 has only a click, user 4 a single interaction: left out.
    assert gauc(scores, labels, users) == pytest.approx((1.0 * 2 + 0.0 * 3) / 5)
    assert math.isnan(gauc([0.1, 0.2], [1, 1], [7, 7]))


def test_the_positive_ranks_pessimistically_among_ties():
    ranks = positive_ranks(
        np.array([0.7, 0.5, 0.1]), np.array([[0.9, 0.1], [0.5, 0.2], [0.1, 0.1]])
    )
    assert ranks.tolist() == [2, 2, 3]  # a tie places the positive behind the negative


def test_hit_rate_and_ndcg_by_hand():
    ranks = np.array([1, 3, 7])
    assert hit_rate(ranks, 5) == pytest.approx(2 / 3)
    assert ndcg(ranks, 5) == pytest.approx((1.0 + 1 / math.log2(4) + 0.0) / 3)
    assert ndcg(ranks, 10) == pytest.approx((1.0 + 0.5 + 1 / math.log2(8)) / 3)


def test_a_constant_scorer_never_hits():
    report = ranking_report(np.zeros(4), np.zeros((4, 99)))
    assert report["hr@20"] == 0.0 and report["ndcg@5"] == 0.0
    assert set(report) == {f"{m}@{k}" for m in ("hr", "ndcg") for k in (5, 10, 20)}


def test_bad_inputs_are_refused_with_their_shapes():
    with pytest.raises(ValueError, match="expected two equal 1-d arrays"):
        auc([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="0 \\(no click\\) or 1"):
        auc([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError, match="one user per impression"):
        gauc([0.1, 0.2], [1, 0], [1])
