"""Persona's device half: the head it builds from P(k) + dW, and what it serves once stale."""

from __future__ import annotations

import torch
from flwr.app import ConfigRecord, RecordDict

import strategies.persona as persona_keys
from basemodel.architecture import build_model, head_keys
from strategies.base import DeviceStep, DeviceView, ServeStep
from strategies.device_kit import ArrayCache, DeviceKit
from strategies.persona import PersonaDevice, PersonaParams, _as_record
from strategies.records import record_of


def _applied(params: PersonaParams):
    """A device that received prototype 2's head and an edit for a window of inputs."""
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10)
    factory = {k: v.clone() for k, v in model.state_dict().items()}
    kit = DeviceKit(model, factory, 1.0, 1.0)
    keys = [k for pair in head_keys(len(model.head.layers)) for k in pair]
    prototype = [
        (factory[w] + 0.05, factory[b] - 0.05) for w, b in head_keys(len(model.head.layers))
    ]
    edit = [(torch.full_like(w, 0.01), torch.zeros_like(b)) for w, b in prototype]
    window = torch.rand(16, 1, 8, 8)
    with torch.inference_mode():
        mean = kit.load().backbone(window).mean(dim=0)
    content = RecordDict(
        {
            persona_keys.PROTO: ConfigRecord(
                {
                    persona_keys.PROTO_ID: 2,
                    persona_keys.PROTO_VERSION: 0,
                    persona_keys.EXPIRY_DISTANCE: 0.5,
                }
            ),
            persona_keys.EDIT: _as_record(edit, torch.float16),
            persona_keys.EDIT_REF: record_of({"mean": mean}),
            persona_keys.PROTO_HEAD: _as_record(prototype, torch.float16),
        }
    )
    step = DeviceStep(
        content,
        window,
        (window[:0], torch.zeros(0, dtype=torch.long)),
        DeviceView(None, RecordDict()),
        kit,
        params,
        seed=0,
        arrays=ArrayCache(),
    )
    (outcome,) = PersonaDevice().apply([step])
    view = DeviceView(outcome.held, RecordDict(outcome.records))
    return kit, keys, prototype, window, view


def _serve(kit, view, inputs, params):
    return PersonaDevice().serving_weights(ServeStep(view, inputs, kit, params))


def test_the_device_head_is_its_prototype_plus_the_edit():
    params = PersonaParams()
    _, keys, prototype, _, view = _applied(params)
    flat = [t for pair in prototype for t in pair]
    for key, base in zip(keys, flat, strict=True):
        edit = 0.01 if key.endswith("weight") else 0.0
        assert torch.allclose(view.held[key], base + edit, atol=1e-3)  # float16 transport


def test_a_fresh_edit_is_served_and_a_stale_one_falls_back_to_the_prototype_head():
    params = PersonaParams()
    kit, keys, prototype, window, view = _applied(params)
    served = _serve(kit, view, window, params)
    assert served is view.held  # the window it was made for: the edit is fresh
    shifted = torch.flip(window, dims=[-1, -2]) + 1.0  # far from the summarized window
    stale = _serve(kit, view, shifted, params)
    assert stale is not None and stale is not view.held
    flat = [t for pair in prototype for t in pair]
    for key, base in zip(keys, flat, strict=True):
        assert torch.allclose(stale[key], base, atol=1e-3)  # P(k), without the edit
    factory = PersonaParams(on_expiry="factory")
    assert _serve(kit, view, shifted, factory) is None  # the factory head
