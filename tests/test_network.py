"""Transfer and compute time arithmetic, bandwidth traces and fleet profiles."""

from __future__ import annotations

import math

import pytest

from simulator.scenario.schema import NetworkTrace, Scenario
from simulator.world.fleet import DeviceProfile, build_fleet, class_counts
from simulator.world.network import Links, compute_s, round_timing
from simulator.world.transport import MessageSize, Transport, transfer_s


def test_transfer_time_is_bits_over_bandwidth():
    assert transfer_s(1_000_000, 8_000_000) == pytest.approx(1.0)  # 1 MB at 8 Mbit/s
    assert transfer_s(125, 1_000) == pytest.approx(1.0)  # 1 kbit at 1 kbit/s
    assert transfer_s(0, 0.0) == 0.0
    assert math.isinf(transfer_s(10, 0.0))


def test_compute_time_is_flops_over_speed():
    assert compute_s(2e9, 1e9) == pytest.approx(2.0)
    assert compute_s(0, 1e9) == 0.0


def test_round_timing_adds_download_compute_upload_and_latency():
    profile = DeviceProfile(
        0,
        "x",
        compute_flops=1e9,
        uplink_bps=1e6,
        downlink_bps=4e6,
        rtt_s=0.1,
        availability=1.0,
        crash_rate=0.0,
    )
    flat = Links(NetworkTrace(sigma=0.0, diurnal_amplitude=0.0, outage_probability=0.0), 1, 0)
    payload = Transport("payload")
    timing = round_timing(
        profile, flat, payload, 0.0, MessageSize(500_000, 3), 3e9, MessageSize(250_000, 3)
    )
    assert timing.download_s == pytest.approx(1.0)
    assert timing.compute_s == pytest.approx(3.0)
    assert timing.upload_s == pytest.approx(2.0)
    assert timing.total_s == pytest.approx(6.1)


def test_outage_slots_stop_transfers():
    always_down = Links(NetworkTrace(outage_probability=1.0), 5, 0)
    assert always_down.factor(3, 100.0) == 0.0
    assert not always_down.up(100.0).any()
    profile = DeviceProfile(0, "x", 1e9, 1e6, 1e6, 0.05, 1.0, 0.0)
    timing = round_timing(
        profile, always_down, Transport("payload"), 0.0, MessageSize(10, 1), 0.0, MessageSize(10, 1)
    )
    assert math.isinf(timing.total_s)


def test_bandwidth_trace_is_deterministic_and_varies_by_slot():
    trace = NetworkTrace(slot_s=60, sigma=0.5)
    links, again = Links(trace, 4, 7), Links(trace, 4, 7)
    assert links.factor(1, 30.0) == links.factor(1, 59.0) == again.factor(1, 30.0)
    assert links.factor(1, 30.0) != links.factor(1, 61.0)
    assert links.factor(1, 30.0) != links.factor(2, 30.0)  # each device its own level
    assert links.factor(1, 30.0) != Links(trace, 4, 8).factor(1, 30.0)


def test_class_counts_follow_shares_and_sum_exactly():
    from simulator.scenario.schema import DeviceClass

    def cls(name, share):
        return DeviceClass(
            name=name,
            share=share,
            compute_flops={"median": 1},
            uplink_kbps={"median": 1},
            downlink_kbps={"median": 1},
            rtt_ms={"median": 1},
        )

    counts = class_counts([cls("a", 0.35), cls("b", 0.45), cls("c", 0.2)], 1001)
    assert sum(counts) == 1001
    assert counts == [350, 451, 200]


def test_fleet_is_a_pure_function_of_scenario_and_seed(tiny_document):
    scenario = Scenario.model_validate(tiny_document)
    assert build_fleet(scenario, 3) == build_fleet(scenario, 3)
    assert build_fleet(scenario, 3) != build_fleet(scenario, 4)
    fast = [p for p in build_fleet(scenario, 3) if p.device_class == "fast"]
    assert all(p.uplink_bps == pytest.approx(10_000_000) for p in fast)  # sigma 0: the median
