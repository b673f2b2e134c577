"""Bytes are the serialized size of what is sent; FLOPs are counted from the layers."""

from __future__ import annotations

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, RecordDict
from torch import nn

from basemodel.architecture import build_model
from basemodel.flops import count_forward_flops, flops_per_sample, training_flops
from simulator.engine.metering import message_size


def wire_bytes(content, exclude=()):
    """The meter's bytes of ``content`` (what a download or upload of it is billed)."""
    return message_size(content, exclude).payload_bytes


def test_wire_bytes_grow_with_the_payload_and_cover_the_raw_data():
    small = RecordDict({"arrays": ArrayRecord({"w": torch.zeros(10)})})
    big = RecordDict({"arrays": ArrayRecord({"w": torch.ones(10_000)})})
    assert wire_bytes(big) >= 40_000  # at least the raw float32 data
    assert wire_bytes(big) < 40_000 + 2_000  # plus a small framing overhead
    assert wire_bytes(small) < wire_bytes(big)


def test_simulation_records_are_not_billed():
    payload = RecordDict({"arrays": ArrayRecord({"w": torch.ones(100)})})
    with_sim = RecordDict(dict(payload.items()))
    with_sim["sim-config"] = ConfigRecord({"round": 3, "start-s": 10.0})
    assert wire_bytes(with_sim, exclude=("sim-config",)) == wire_bytes(payload)
    assert wire_bytes(with_sim) > wire_bytes(payload)
    assert wire_bytes(RecordDict()) == 0


def test_linear_layer_flops_are_two_per_multiply_add():
    model = nn.Sequential(nn.Linear(100, 10))
    assert count_forward_flops(model, torch.zeros(4, 100)) == 4 * 2 * 100 * 10


def test_conv_flops_count_every_output_position():
    model = nn.Sequential(nn.Conv2d(1, 2, 3))
    # 26x26 outputs x 2 channels x (3*3*1 multiply-adds x 2)
    assert count_forward_flops(model, torch.zeros(1, 1, 28, 28)) == 26 * 26 * 2 * 18


def test_model_flops_and_training_cost():
    model = build_model("conv28", (1, 28, 28), 10)
    forward = count_forward_flops(model, torch.zeros(1, 1, 28, 28))
    assert 1e6 < forward < 1e7  # a small CNN: a few MFLOPs per image
    assert training_flops(forward, samples=16, epochs=2) == pytest.approx(forward * 3 * 32)


def test_wire_bytes_equal_flowers_own_serialized_size():
    """The fast path for array chunks must give exactly what deflating every object gives."""
    from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

    from strategies.records import record_of

    torch.manual_seed(0)
    zeros = torch.zeros(40, 40)
    for content in (
        RecordDict({"a": ArrayRecord({"w": torch.randn(64, 64), "b": torch.randn(64)})}),
        RecordDict({"a": record_of({"x": zeros, "y": zeros.clone()})}),  # duplicate chunks
        RecordDict({"m": MetricRecord({"n": 3, "loss": 0.25}), "c": ConfigRecord({"s": "x"})}),
        RecordDict({"a": ArrayRecord({"h": torch.randn(2, 3).half()}), "b": ArrayRecord({})}),
    ):
        nested = get_all_nested_objects(content).values()
        assert wire_bytes(content) == sum(len(obj.deflate()) for obj in nested)


def test_model_flops_count_the_head_too():
    """The head's linear layers are part of a forward pass (2 FLOPs per weight per sample)."""
    model = build_model("mlp", (1, 8, 8), 10)
    backbone = flops_per_sample(model.backbone, (1, 8, 8))
    head = 2 * (64 * 64 + 64 * 10)
    assert flops_per_sample(model, (1, 8, 8)) >= backbone + head


def test_recurrent_and_attention_layers_are_counted():
    """A GRU's gates and attention's projections run outside child modules; both count."""
    from torch.utils.flop_counter import FlopCounterMode

    gru = torch.nn.GRU(32, 32, batch_first=True)
    inputs = torch.zeros(4, 10, 32)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        gru(inputs)
    assert count_forward_flops(gru, inputs) == counter.get_total_flops()

    class SelfAttention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = torch.nn.MultiheadAttention(32, 2, batch_first=True)

        def forward(self, x):
            return self.attention(x, x, x, need_weights=False)[0]

    model = SelfAttention()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(inputs)
    scores_and_sum = 2 * 2 * 4 * 10 * 10 * 32  # batch 4, length 10, width 32
    assert count_forward_flops(model, inputs) == counter.get_total_flops() + scores_and_sum
