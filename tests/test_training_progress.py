"""The cloud's training loops report their steps to a display, and cost nothing without one."""

from __future__ import annotations

import torch
from torch import nn

from basemodel.pretraining import PretrainConfig, train_supervised
from basemodel.progress import showing_progress


class Recorder:
    def __init__(self) -> None:
        self.started: list[tuple[str, int]] = []
        self.steps: dict[str, int] = {}
        self.finished: list[str] = []

    def start(self, label, total):
        self.started.append((label, total))
        self.steps[label] = 0

        def advance(steps: int) -> None:
            self.steps[label] += steps

        return advance

    def finish(self, label):
        self.finished.append(label)


def _train(label: str = "starting model") -> nn.Module:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(70, 4), torch.randint(0, 3, (70,))
    return train_supervised(model, x, y, PretrainConfig(epochs=2, batch_size=32), 0, label)


def test_pretraining_reports_every_minibatch_and_ends_its_bar():
    recorder = Recorder()
    with showing_progress(recorder):
        _train()
    assert recorder.started == [("starting model", 2 * 3)]  # 70 samples: 3 batches of 32
    assert recorder.steps == {"starting model": 6} and recorder.finished == ["starting model"]


def test_the_display_does_not_change_the_weights_and_is_gone_after_the_block():
    recorder = Recorder()
    with showing_progress(recorder):
        shown = _train()
    quiet = _train()
    assert all(
        torch.equal(a, b) for a, b in zip(shown.parameters(), quiet.parameters(), strict=True)
    )
    assert len(recorder.started) == 1  # the second training ran after the block: no report
