"""em-prior, t3a and lame: each does what its paper says on cases worked out by hand."""

from __future__ import annotations

import torch

from strategies.em_prior import em_prior
from strategies.lame import knn_affinity, lame
from strategies.t3a import t3a_logits


def test_em_recovers_a_known_prior_shift_from_calibrated_scores():
    """Scores calibrated for a uniform prior; the batch's true prior is 0.7/0.2/0.1."""
    generator = torch.Generator().manual_seed(0)
    true_prior = torch.tensor([0.7, 0.2, 0.1])
    labels = torch.multinomial(true_prior, 4000, replacement=True, generator=generator)
    # Each class's likelihood is a fixed confusion row; the uniform-prior posterior is
    # the likelihood of the observed "symptom" normalised over classes.
    confusion = torch.tensor([[0.6, 0.3, 0.1], [0.25, 0.5, 0.25], [0.1, 0.3, 0.6]])
    symptoms = torch.stack(
        [torch.multinomial(confusion[y], 1, generator=generator) for y in labels]
    )
    likelihood = confusion[:, symptoms.flatten()].T  # (n, K): p(symptom | class)
    posteriors = likelihood / likelihood.sum(dim=1, keepdim=True)
    _, estimated = em_prior(posteriors, max_iters=1000, tolerance=1e-9)
    assert torch.allclose(estimated, true_prior, atol=0.04), estimated
    assert posteriors.mean(dim=0)[0] < 0.5  # the unadjusted mean is far from 0.7


def test_em_leaves_a_uniform_batch_alone():
    probabilities = torch.eye(4).repeat(5, 1) * 0.6 + 0.1  # a balanced, confident batch
    adjusted, prior = em_prior(probabilities)
    assert torch.allclose(prior, torch.full((4,), 0.25), atol=1e-6)
    assert torch.equal(adjusted.argmax(dim=1), probabilities.argmax(dim=1))


def test_t3a_moves_a_prototype_toward_the_batch():
    """Class 0's weight points along x, class 1's along y; the batch's class-0 samples lean
    toward (1, 1) and a borderline sample at (1, 1.15) flips to class 0 once the class-0
    prototype has moved toward its supports."""
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    bias = torch.zeros(2)
    class_zero = torch.tensor([[1.0, 0.8]] * 6)
    borderline = torch.tensor([[1.0, 1.15]])
    hidden = torch.cat([class_zero, borderline])
    assert (hidden @ weight.T)[-1].argmax() == 1  # the original classifier: class 1
    logits = t3a_logits(hidden, weight, bias, filter_k=0)
    assert logits[-1].argmax() == 0
    assert torch.equal(logits[:-1].argmax(dim=1), torch.zeros(6, dtype=torch.long))


def test_t3a_filter_keeps_the_most_confident_supports():
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    confident = torch.tensor([[5.0, 0.0]])
    unsure = torch.tensor([[1.0, 0.9]] * 4)
    hidden = torch.cat([confident, unsure])
    kept_one = t3a_logits(hidden, weight, torch.zeros(2), filter_k=1)
    kept_all = t3a_logits(hidden, weight, torch.zeros(2), filter_k=0)
    # With one support per class, the class-0 prototype is the weight itself (lowest entropy
    # of the supports predicted 0), so unsure samples score lower on it than with all kept.
    assert kept_one[1, 0] < kept_all[1, 0]


def test_lame_pulls_an_outlier_prediction_to_its_neighbours_class():
    features = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.98, -0.1], [0.97, 0.05]])
    log_p = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.85, 0.15], [0.4, 0.6]]).log()
    z = lame(log_p, knn_affinity(features, 2))
    assert log_p.argmax(dim=1).tolist() == [0, 0, 0, 1]
    assert z.argmax(dim=1).tolist() == [0, 0, 0, 0]
    assert torch.allclose(z.sum(dim=1), torch.ones(4))


def test_lame_without_neighbours_returns_the_model_output():
    log_p = torch.tensor([[0.7, 0.3], [0.2, 0.8]]).log()
    z = lame(log_p, torch.zeros(2, 2))
    assert torch.allclose(z, log_p.exp())


def test_the_knn_affinity_is_symmetric_without_self_loops():
    features = torch.randn(10, 4, generator=torch.Generator().manual_seed(1))
    affinity = knn_affinity(features, 3)
    assert torch.equal(affinity, affinity.T)
    assert affinity.diagonal().sum() == 0
    assert (affinity.sum(dim=1) >= 3).all()
