"""The conv backbone pools before its ReLUs: the textbook conv-ReLU-pool, bit for bit."""

from __future__ import annotations

import torch
from torch import nn

from basemodel.architecture import build_model


def test_pooling_before_relu_gives_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    model = build_model("conv28", (1, 28, 28), 10)
    layers = model.backbone.layers
    conv1, pool1, relu1, conv2, pool2, relu2 = (layers[i] for i in range(6))
    assert isinstance(pool1, nn.MaxPool2d) and isinstance(relu1, nn.ReLU)
    textbook = nn.Sequential(conv1, nn.ReLU(), pool1, conv2, nn.ReLU(), pool2, *layers[6:])
    inputs = torch.randn(8, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    ours = model.backbone(inputs)
    ours.square().sum().backward()
    ours_grads = [p.grad.clone() for p in model.backbone.parameters()]
    model.backbone.zero_grad()
    theirs = textbook(inputs)
    theirs.square().sum().backward()
    assert torch.equal(ours, theirs)
    for mine, expected in zip(ours_grads, (p.grad for p in textbook.parameters()), strict=True):
        assert torch.equal(mine, expected)
