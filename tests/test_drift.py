"""Data shift is a pure function of (device, simulated time, seed)."""

from __future__ import annotations

import torch

from simulator.catalog.corruptions import rotate
from simulator.scenario.schema import Scenario, Shift
from simulator.world.drift import active_shifts, ramp, touches
from simulator.world.fleet import build_fleet
from simulator.world.sources import build_source
from simulator.world.stream import DeviceStreams


def _streams(document, seed: int = 0) -> tuple[DeviceStreams, list]:
    scenario = Scenario.model_validate(document)
    source = build_source(scenario, seed, seed)
    return DeviceStreams(scenario, source, seed), build_fleet(scenario, seed)


def test_same_device_time_and_seed_give_the_same_window(tiny_document):
    streams_a, fleet_a = _streams(tiny_document)
    streams_b, fleet_b = _streams(tiny_document)
    for t in (0.0, 250.0, 479.0):
        a, b = streams_a.window(fleet_a[3], t), streams_b.window(fleet_b[3], t)
        assert torch.equal(a.inputs, b.inputs)
        assert torch.equal(a.labeled_y, b.labeled_y)


def test_other_seed_or_device_gives_other_data(tiny_document):
    streams_0, fleet_0 = _streams(tiny_document, seed=0)
    streams_1, fleet_1 = _streams(tiny_document, seed=1)
    window = streams_0.window(fleet_0[3], 10.0).inputs
    assert not torch.equal(window, streams_1.window(fleet_1[3], 10.0).inputs)
    assert not torch.equal(window, streams_0.window(fleet_0[4], 10.0).inputs)


def test_shift_applies_only_after_onset(tiny_document):
    tiny_document["shifts"] = [{"kind": "rotation", "severity": 90, "onset_s": 240}]
    tiny_document["data"]["window_period_s"] = 1000.0  # same samples before and after
    streams, fleet = _streams(tiny_document)
    before = streams.window(fleet[0], 239.0).inputs
    after = streams.window(fleet[0], 241.0).inputs
    clean_tiny = dict(tiny_document, shifts=[])
    clean_streams, _ = _streams(clean_tiny)
    assert torch.equal(before, clean_streams.window(fleet[0], 239.0).inputs)
    assert torch.allclose(after, rotate(before, 90.0))


def test_gradual_ramp_rises_linearly():
    shift = Shift(kind="noise", severity=0.4, onset_s=100, ramp_s=200)
    assert ramp(shift, 99) == 0.0
    assert ramp(shift, 200) == 0.5
    assert ramp(shift, 300) == 1.0
    assert ramp(shift, 10_000) == 1.0


def test_rotation_by_90_degrees_moves_a_pixel_to_the_next_quadrant():
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 1, 6] = 1.0  # top right
    rotated = rotate(image, 90.0)
    row, col = divmod(int(rotated.flatten().argmax()), 8)
    assert row < 4 and col < 4  # counter-clockwise in image coordinates: to top left
    assert torch.allclose(rotate(rotate(rotate(rotate(image, 90), 90), 90), 90), image, atol=1e-5)


def test_fraction_and_group_targets(tiny_document):
    scenario = Scenario.model_validate(tiny_document)
    fleet = build_fleet(scenario, 0)
    by_group = Shift(kind="noise", severity=0.1, onset_s=0, applies_to={"group": "fast"})
    assert [touches(by_group, 0, p, 0) for p in fleet] == [p.device_class == "fast" for p in fleet]
    half = Shift(kind="noise", severity=0.1, onset_s=0, applies_to={"fraction": 0.5})
    chosen = [touches(half, 0, p, 0) for p in fleet]
    assert chosen == [touches(half, 0, p, 0) for p in fleet]  # stable
    assert 0 < sum(chosen) < len(fleet)
    assert active_shifts([half], fleet[0], -1.0, 0) == []


def test_noise_shift_changes_pixels_but_stays_in_range(tiny_document):
    tiny_document["shifts"] = [{"kind": "noise", "severity": 0.3, "onset_s": 0}]
    streams, fleet = _streams(tiny_document)
    noisy = streams.window(fleet[0], 5.0).inputs
    clean_streams, _ = _streams(dict(tiny_document, shifts=[]))
    clean = clean_streams.window(fleet[0], 5.0).inputs
    assert not torch.equal(noisy, clean)
    assert float(noisy.min()) >= 0.0 and float(noisy.max()) <= 1.0


def test_label_shift_moves_the_class_prior(tiny_document):
    from collections import Counter

    tiny_document["shifts"] = [{"kind": "label", "severity": 1.0, "onset_s": 100}]
    tiny_document["data"]["window"] = 400
    streams, fleet = _streams(tiny_document)
    before = Counter(streams.window(fleet[0], 50.0).labeled_y.tolist())
    after = Counter(streams.window(fleet[0], 150.0).labeled_y.tolist())
    distance = sum(abs(before[c] - after[c]) for c in range(10)) / 2 / sum(before.values())
    assert distance > 0.3  # total variation between the label histograms


def test_concept_shift_relabels_only_the_chosen_classes(tiny_document):
    from simulator.world.drift import concept_map

    mapping = concept_map(10, 0.3, index=0, seed=0)
    moved = [c for c in range(10) if mapping[c] != c]
    assert len(moved) == 3 and sorted(mapping[moved].tolist()) == sorted(moved)
    tiny_document["shifts"] = [{"kind": "permutation", "severity": 0.3, "onset_s": 100}]
    tiny_document["data"]["window_period_s"] = 1000.0  # same samples before and after
    streams, fleet = _streams(tiny_document)
    before = streams.window(fleet[0], 50.0)
    after = streams.window(fleet[0], 150.0)
    assert torch.equal(before.inputs, after.inputs)  # the inputs do not change
    expected = torch.as_tensor(mapping)[before.labeled_y]
    assert torch.equal(after.labeled_y, expected)


def test_recurring_shift_is_in_force_only_during_its_occurrences():
    shift = Shift(kind="noise", severity=0.2, onset_s=100, every_s=300, lasts_s=100, ramp_s=50)
    assert ramp(shift, 99) == 0.0
    assert ramp(shift, 125) == 0.5
    assert ramp(shift, 199) == 1.0
    assert ramp(shift, 250) == 0.0  # between occurrences
    assert ramp(shift, 425) == 0.5  # it returns, ramp and all
    import pytest

    with pytest.raises(ValueError):
        Shift(kind="noise", severity=0.2, onset_s=0, every_s=100)
    with pytest.raises(ValueError):
        Shift(kind="label", severity=1.5, onset_s=0)
