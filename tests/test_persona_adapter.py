"""The adapter's edits: shapes, clipping, cross-layer dependence, batched heads."""

from __future__ import annotations

import torch

from basemodel.architecture import head_forward
from persona.adapter import (
    AdapterConfig,
    PersonaAdapter,
    batched_head_forward,
    spread,
    summarize_window,
)

CONFIG = AdapterConfig(feature_dim=12, head_widths=(12, 8, 5), code_dim=6, hidden_dim=16, clip=0.05)


def _summaries(batch: int = 3, window: int = 7) -> torch.Tensor:
    return torch.randn(
        batch, window, CONFIG.feature_dim, generator=torch.Generator().manual_seed(0)
    )


def test_edits_have_the_head_shapes_and_stay_within_the_clip():
    torch.manual_seed(0)
    adapter = PersonaAdapter(CONFIG, prototypes=2)
    with torch.no_grad():
        for bank in (adapter.generators.weight_maps, adapter.generators.bias_maps):
            for p in bank:
                p.mul_(1e4)  # make the raw edits far larger than the clip
    with torch.no_grad():
        edits = adapter(_summaries(), torch.tensor([0, 1, 1]))
    assert [tuple(dw.shape) for dw, _ in edits] == [(3, 8, 12), (3, 5, 8)]
    assert [tuple(db.shape) for _, db in edits] == [(3, 8), (3, 5)]
    clip = torch.tensor(CONFIG.clip)  # in float32, as the edits are
    for dw, db in edits:
        assert bool(dw.abs().max() <= clip) and bool(db.abs().max() <= clip)
        assert bool(dw.abs().max() == clip)  # the clip is what bounds them


def test_low_rank_edits_have_the_same_shapes():
    adapter = PersonaAdapter(AdapterConfig(**{**CONFIG.__dict__, "rank": 2}))
    edits = adapter(_summaries(), torch.zeros(3, dtype=torch.long))
    assert [tuple(dw.shape) for dw, _ in edits] == [(3, 8, 12), (3, 5, 8)]
    low_rank = sum(p.numel() for p in adapter.generators.parameters())
    full = sum(p.numel() for p in PersonaAdapter(CONFIG).generators.parameters())
    assert low_rank < full


def test_prototype_copies_give_different_edits_for_the_same_summary():
    torch.manual_seed(1)
    adapter = PersonaAdapter(CONFIG, prototypes=2)
    with torch.no_grad():
        adapter.generators.weight_offsets[0][1] += 0.01
    summary = _summaries(batch=1).expand(2, -1, -1)
    edits = adapter(summary, torch.tensor([0, 1]))
    assert not torch.equal(edits[0][0][0], edits[0][0][1])


def _second_layer_edit(adapter: PersonaAdapter, summary: torch.Tensor) -> torch.Tensor:
    return adapter(summary, torch.zeros(len(summary), dtype=torch.long))[1][0]


def test_layer_two_depends_on_layer_one_only_through_the_gru():
    torch.manual_seed(2)
    adapter = PersonaAdapter(CONFIG)
    with torch.no_grad():
        for p in adapter.generators.weight_maps:
            p.mul_(100)
    summary = _summaries()
    before = _second_layer_edit(adapter, summary)
    with torch.no_grad():  # change how layer 1's code is read out: layer 2 must not move
        for p in adapter.layer_codes.heads[0].parameters():
            p.add_(1.0)
    assert torch.equal(_second_layer_edit(adapter, summary), before)
    with torch.no_grad():  # change the GRU's first layer: layer 2's edit must move
        adapter.layer_codes.gru.weight_ih_l0.add_(0.5)
    assert not torch.allclose(_second_layer_edit(adapter, summary), before)


def test_without_cross_layer_the_layers_are_independent():
    torch.manual_seed(3)
    adapter = PersonaAdapter(AdapterConfig(**{**CONFIG.__dict__, "cross_layer": False}))
    assert not hasattr(adapter.layer_codes, "gru")
    summary = _summaries()
    before = _second_layer_edit(adapter, summary)
    with torch.no_grad():
        for p in adapter.layer_codes.heads[0].parameters():
            p.add_(1.0)
    assert torch.equal(_second_layer_edit(adapter, summary), before)


def test_stats_summary_is_mean_and_std():
    features = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    assert torch.allclose(summarize_window(features, "stats"), torch.tensor([2.0, 4.0, 1.0, 2.0]))
    adapter = PersonaAdapter(AdapterConfig(**{**CONFIG.__dict__, "summary": "stats"}))
    stats = torch.stack([summarize_window(s, "stats") for s in _summaries()])
    assert adapter.codes(stats)[0].shape == (3, CONFIG.code_dim)


def test_batched_heads_match_one_head_at_a_time():
    torch.manual_seed(4)
    heads = [(torch.randn(2, 8, 12), torch.randn(2, 8)), (torch.randn(2, 5, 8), torch.randn(2, 5))]
    features = torch.randn(2, 4, 12)
    batched = batched_head_forward(features, heads)
    for i in range(2):
        single = head_forward(features[i], [(w[i], b[i]) for w, b in heads])
        assert torch.allclose(batched[i], single, atol=1e-6)


def test_window_spread_is_the_standard_deviation_with_its_gradient():
    """The encoder's two-pass spread: torch.std's value and gradient, 0 (not NaN) for a constant."""
    samples = torch.randn(4, 9, 5, generator=torch.Generator().manual_seed(1))
    samples[:, :, 2] = 3.0  # a constant feature (a dead ReLU unit is one)
    ours = samples.clone().requires_grad_()
    theirs = samples.clone().requires_grad_()
    value = spread(ours, ours.mean(dim=1))
    expected = theirs.std(dim=1, unbiased=False)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    assert torch.all(value[:, 2] == 0)
    weights = torch.randn(4, 5, generator=torch.Generator().manual_seed(2))
    (value * weights).sum().backward()
    (expected * weights).sum().backward()
    assert torch.isfinite(ours.grad).all()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-4, atol=1e-6)
    with torch.no_grad():  # deployment squares in place: the same value
        torch.testing.assert_close(spread(samples, samples.mean(dim=1)), value.detach())
