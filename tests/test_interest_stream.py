"""The synthetic recommendation stream: known drift, known truth, real headroom; its backbones."""

from __future__ import annotations

import math

import numpy as np
import torch

from basemodel.architecture import build_model
from basemodel.sequence import SASRecBackbone
from simulator.catalog.interest_model import InterestConfig
from simulator.catalog.ranking_metrics import auc
from simulator.catalog.seeding import rng_for
from simulator.world.interests import InterestCatalogue

CATALOGUE = InterestCatalogue(InterestConfig(), seed=3)


def _draw(severity: float, users=range(200), per_user=32):
    xs, ys, truths, stale = [], [], [], []
    for user in users:
        x, y, truth = CATALOGUE.samples(user, severity, per_user, rng_for(3, "t", user))
        xs.append(x), ys.append(y.numpy()), truths.append(truth)
        stale.append(CATALOGUE.click_probability(CATALOGUE.interest(user, 0.0), x[:, -1].long()))
    return torch.cat(xs), np.concatenate(ys), np.concatenate(truths), np.concatenate(stale)


def test_a_drift_turns_each_interest_by_its_severity():
    for user in (0, 7):
        base = CATALOGUE.interest(user, 0.0)
        for degrees in (30.0, 90.0, 180.0):
            turned = CATALOGUE.interest(user, degrees)
            assert math.isclose(float(np.linalg.norm(turned)), 1.0, rel_tol=1e-9)
            assert math.isclose(float(turned @ base), math.cos(math.radians(degrees)), abs_tol=1e-9)


def test_samples_are_histories_and_a_candidate_and_repeat_with_their_generator():
    x, y, truth = CATALOGUE.samples(5, 45.0, 64, rng_for(3, "a"))
    assert x.shape == (64, InterestConfig().history + 1) and x.dtype == torch.float32
    assert int(x.min()) >= 1 and int(x.max()) <= CATALOGUE.num_items  # never the padding id
    again = CATALOGUE.samples(5, 45.0, 64, rng_for(3, "a"))
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])
    assert ((truth > 0) & (truth < 1)).all()


def test_labels_follow_the_true_click_probability():
    _, labels, truth, _ = _draw(0.0)
    assert abs(labels.mean() - truth.mean()) < 0.02  # 6,400 Bernoulli draws


def test_the_truth_stays_learnable_while_the_old_interest_stops_predicting():
    """The headroom is in the ground truth: after a 90-degree drift the base interest
    ranks clicks little better than chance, while the true model still ranks them well."""
    _, labels, truth, stale = _draw(0.0)
    assert auc(stale, labels) == auc(truth, labels) > 0.75  # no drift: the same model
    _, labels, truth, stale = _draw(90.0)
    assert auc(truth, labels) > 0.75
    assert auc(stale, labels) < auc(truth, labels) - 0.15


def test_a_ranking_case_puts_the_clicked_item_first_among_distinct_negatives():
    rows, positive = CATALOGUE.ranking_case(2, 0.0, negatives=50, rng=rng_for(3, "rank"))
    candidates = rows[:, -1].long()
    assert positive == 0 and rows.shape == (51, InterestConfig().history + 1)
    assert len(set(candidates.tolist())) == 51  # the positive is not among the negatives
    assert torch.equal(rows[0, :-1], rows[50, :-1])  # one history for every candidate


def test_sequence_backbones_give_features_the_head_can_edit():
    x, _, _, _ = _draw(0.0, users=range(4), per_user=8)
    for name in ("gru4rec", "sasrec"):
        torch.manual_seed(0)
        model = build_model(name, (x.shape[1],), 2)
        assert model.backbone(x).shape == (32, model.backbone.feature_dim)
        assert model(x).shape == (32, 2)
        swapped = x.clone()
        swapped[:, -1] = swapped[:, -1] % CATALOGUE.num_items + 1  # another candidate
        assert not torch.allclose(model(x), model(swapped))


def test_sasrec_attends_only_to_earlier_clicks():
    torch.manual_seed(0)
    backbone = SASRecBackbone((11,))
    history = backbone.embedding(torch.randint(1, 200, (3, 10)))
    changed = history.clone()
    changed[:, 6:] = backbone.embedding(torch.randint(1, 200, (3, 4)))
    positions = backbone.positions(torch.arange(10))
    with torch.no_grad():
        before = backbone.block(history + positions, src_mask=backbone.causal, is_causal=True)
        after = backbone.block(changed + positions, src_mask=backbone.causal, is_causal=True)
    assert torch.allclose(before[:, :6], after[:, :6], atol=1e-6)  # positions 0-5 unchanged
    assert not torch.allclose(before[:, 6:], after[:, 6:])
