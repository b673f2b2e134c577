"""The edit gate: shares chosen on held-out episodes, and served by the nearest context."""

from __future__ import annotations

import torch

from persona.adapter import AdapterConfig, PersonaAdapter, batched_head_forward, edited_heads
from persona.cloud import PersonaCloud
from persona.gate import SCALES, EditGate, calibrate_gate
from persona.prototypes import PrototypeBank, RefineConfig

CONFIG = AdapterConfig(feature_dim=6, head_widths=(6, 8, 4), code_dim=4, hidden_dim=8, clip=5.0)


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    adapter = PersonaAdapter(CONFIG).eval()
    head = [(torch.randn(8, 6), torch.randn(8)), (torch.randn(4, 8), torch.randn(4))]
    bank = PrototypeBank(
        torch.zeros(1, CONFIG.layers * CONFIG.code_dim),
        [(w.unsqueeze(0), b.unsqueeze(0)) for w, b in head],
        [0],
        [0],
    )
    return adapter, bank


def _episodes(adapter, bank, shift: float, edited_labels: bool, count: int = 24):
    """Windows around ``shift``; labels from the unedited head or from the fully edited one."""
    support = torch.randn(count, 16, 6) + shift
    qx = torch.randn(count, 20, 6) + shift
    bases = [(w.expand(count, -1, -1), b.expand(count, -1)) for w, b in bank.heads]
    with torch.no_grad():
        heads = bases
        if edited_labels:
            edits = adapter.generators(adapter.codes(support)[1], torch.zeros(count, dtype=int))
            heads = edited_heads(bases, edits)
        qy = batched_head_forward(qx, heads).argmax(-1)
    return support, qx, qy


def test_the_gate_keeps_edits_where_they_help_and_cuts_them_where_they_hurt():
    adapter, bank = _setup()
    hurt = _episodes(adapter, bank, shift=-2.0, edited_labels=False)  # edit can only hurt
    helped = _episodes(adapter, bank, shift=2.0, edited_labels=True)  # the full edit is right
    context = torch.tensor([0] * 24 + [1] * 24)
    support, qx, qy = (torch.cat([a, b]) for a, b in zip(hurt, helped, strict=True))
    gate = calibrate_gate(adapter, bank, context, support, qx, qy)
    assert gate.accuracy.shape == (2, len(SCALES))
    assert gate.accuracy[0, 0] == 1.0 and gate.accuracy[0, -1] < 1.0  # the edit hurts context 0
    assert float(gate.scales[0]) < 1.0
    assert float(gate.scales[1]) == 1.0 and gate.accuracy[1, -1] == 1.0
    # a window is served the share of the context whose mean it is nearest
    shares = gate.share(torch.stack([hurt[0][0].mean(0), helped[0][0].mean(0)]))
    assert shares.tolist() == [float(gate.scales[0]), 1.0]


def test_the_cloud_serves_a_zero_edit_where_the_gate_says_zero():
    adapter, bank = _setup()
    gate = EditGate(
        torch.stack([torch.full((6,), -2.0), torch.full((6,), 2.0)]),
        torch.tensor([0.0, 1.0]),
        torch.zeros(2, len(SCALES)),
    )
    summaries = torch.cat([torch.randn(1, 16, 6) - 2.0, torch.randn(1, 16, 6) + 2.0])
    plain = PersonaCloud(adapter, bank, RefineConfig())
    gated = PersonaCloud(adapter, bank, RefineConfig(), gate=gate)
    whole, _ = plain.respond(summaries, 1)
    served, _ = gated.respond(summaries, 1)
    assert all(float(dw.abs().sum()) == 0 for dw, _ in served[0].edit)
    assert all(float(dw.abs().sum()) > 0 for dw, _ in whole[0].edit)
    for (a, _), (b, _) in zip(served[1].edit, whole[1].edit, strict=True):
        assert torch.equal(a, b)
