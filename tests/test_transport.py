"""A message's cost on the wire: its records alone, or a request-per-object runtime's too."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, RecordDict
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

from simulator.engine.metering import message_size
from simulator.scenario.loading import scenario_to_document, world_fingerprint
from simulator.scenario.schema import NetworkTrace, Scenario
from simulator.world.fleet import DeviceProfile
from simulator.world.network import Links, round_timing
from simulator.world.transport import MessageSize, Transfer, Transport

PROFILE = DeviceProfile(0, "x", 1e9, uplink_bps=60e3, downlink_bps=150e3, rtt_s=0.5,
                        availability=1.0, crash_rate=0.0)  # fmt: skip
FLAT = Links(NetworkTrace(sigma=0.0), 1, 0)
MODEL = MessageSize(39_000, 15)  # about FedAvg's model in the benchmark, as billed
SMALL = MessageSize(200, 2)


def test_the_meter_counts_each_distinct_object_once():
    arrays = ArrayRecord({"w": torch.ones(100), "b": torch.zeros(10), "c": torch.zeros(10)})
    content = RecordDict({"a": arrays, "c": ConfigRecord({"x": 1})})
    size = message_size(content)
    assert size.payload_bytes == sum(
        len(obj.deflate()) for obj in get_all_nested_objects(content).values()
    )
    # the record dict, two records, two distinct arrays (the two zero vectors are one
    # object, as Flower hashes them) and their two chunks
    assert size.objects == 7
    assert message_size(RecordDict()) == MessageSize(0, 0)
    assert message_size(content, exclude=("a", "c")) == MessageSize(0, 0)


def test_the_payload_transport_moves_the_records_and_nothing_else():
    payload = Transport("payload")
    assert payload.download(MODEL) == Transfer(39_000, 0, 0)
    assert payload.upload(MessageSize(0, 0)) == Transfer(0, 0, 0)
    assert payload.round_trips(payload.download(MODEL), payload.upload(SMALL)) == 1


def test_flower_http_adds_requests_both_ways_and_grows_with_objects():
    http = Transport("flower-http")
    down = http.download(MODEL)
    assert down.forward_bytes > MODEL.payload_bytes * 1.04  # packet headers at least
    assert down.backward_bytes > 17 * 800  # a request's headers per object
    more_objects = http.download(MessageSize(39_000, 34))
    assert more_objects.backward_bytes > down.backward_bytes
    assert more_objects.request_rounds > down.request_rounds
    empty = http.upload(MessageSize(0, 0))  # a reply with nothing billed still travels
    assert empty.forward_bytes > 0 and empty.request_rounds >= 2


def test_a_transfer_takes_its_bottleneck_and_a_share_of_the_rest():
    transfer = Transfer(15_000, 7_500, request_rounds=10, processing_s=0.5, overlap=0.3)
    # forward 1 s at 120 kbit/s, backward 0.5 s at 120 kbit/s, processing 0.5 s
    assert transfer.seconds(120e3, 120e3) == pytest.approx(1.0 + 0.3 * (0.5 + 0.5))
    assert transfer.seconds(1e9, 1e9) == pytest.approx(0.5, rel=1e-3)  # processing alone
    assert math.isinf(transfer.seconds(0.0, 60e3))  # the link is down
    assert Transfer(15_000, 0, 0).seconds(120e3, 0.0) == pytest.approx(1.0)  # payload only
    assert math.isinf(Transfer(10, 10, 1).seconds(0.0, 0.0))  # both down, no overlap: not NaN


def test_round_timing_bills_both_transfers_and_a_round_trip_per_request_round():
    http = Transport("flower-http")
    timing = round_timing(PROFILE, FLAT, http, 0.0, MODEL, 0.0, SMALL)
    down, up = http.download(MODEL), http.upload(SMALL)
    assert timing.download_bytes == down.forward_bytes + up.backward_bytes
    assert timing.upload_bytes == up.forward_bytes + down.backward_bytes
    assert timing.latency_s == pytest.approx(0.5 * (down.request_rounds + up.request_rounds))
    assert timing.download_s == pytest.approx(down.seconds(150e3, 60e3))
    payload = round_timing(PROFILE, FLAT, Transport("payload"), 0.0, MODEL, 0.0, SMALL)
    assert (payload.download_bytes, payload.upload_bytes) == (39_000, 200)
    assert payload.latency_s == 0.5
    assert timing.total_s > payload.total_s
    faster = round_timing(PROFILE, FLAT, Transport("flower-http", 0.0), 0.0, MODEL, 0.0, SMALL)
    assert faster.download_s < timing.download_s  # a server that answers at once


def test_the_default_transport_leaves_stored_scenarios_and_fingerprints_as_they_were(
    tiny_document,
):
    default = Scenario.model_validate(tiny_document)
    assert "transport" not in scenario_to_document(default)["fleet"]
    named = copy.deepcopy(tiny_document)
    named["fleet"]["transport"] = {"runtime": "payload"}
    assert world_fingerprint(Scenario.model_validate(named)) == world_fingerprint(default)
    named["fleet"]["transport"] = {"runtime": "flower-http"}
    http = Scenario.model_validate(named)
    assert scenario_to_document(http)["fleet"]["transport"]["runtime"] == "flower-http"
    assert world_fingerprint(http) != world_fingerprint(default)


def test_request_seconds_without_a_request_runtime_are_refused(tmp_path, tiny_document):
    from conftest import write_yaml

    from simulator.catalog.errors import ScenarioError
    from simulator.scenario.loading import load_scenario

    tiny_document["fleet"]["transport"] = {"request_s": 0.05}
    path = write_yaml(tmp_path / "bad.yaml", tiny_document)
    with pytest.raises(ScenarioError) as refused:
        load_scenario(path)
    line = str(refused.value)
    assert "bad.yaml" in line and "fleet.transport" in line and "runtime: flower-http" in line


@pytest.mark.slow
def test_a_run_under_flower_http_bills_more_bytes_and_time_than_its_payload(
    tmp_path, tiny_document
):
    from simulator.run.folder import metrics_path
    from simulator.run.plan import RunPlan
    from simulator.run.reader import read_rows
    from simulator.run.runner import run_plan

    logs = {}

    def rounds(transport: str) -> list[dict]:
        document = copy.deepcopy(tiny_document)
        document["fleet"]["transport"] = {"runtime": transport}
        document["fleet"]["classes"][0]["crash_rate"] = 0.0
        document["rounds"]["deadline_s"] = 600  # nobody late: the same devices train
        plan = RunPlan(Scenario.model_validate(document), ["fedavg"], [0], tmp_path / transport)
        folder = run_plan(plan, show_progress=False)
        logs[transport] = (folder / "run.log").read_text()
        return [r for r in read_rows(metrics_path(folder, "fedavg", 0)) if r["kind"] == "round"]

    payload, http = rounds("payload"), rounds("flower-http")
    assert "transport: flower-http" in logs["flower-http"]  # the log says what bytes mean
    assert "transport:" not in logs["payload"]
    assert [r["kept"] for r in payload] == [r["kept"] for r in http]
    for plain, wired in zip(payload, http, strict=True):
        if plain["kept"]:
            assert wired["bytes_down"] > plain["bytes_down"] * 1.05
            assert wired["bytes_up"] > plain["bytes_up"] * 1.05
            assert wired["duration_s"] > plain["duration_s"]
            assert wired["energy_j"] > plain["energy_j"]


@pytest.mark.slow
@pytest.mark.ray
def test_the_ray_engine_bills_flower_http_as_inline_does(tmp_path, tiny_document):
    from simulator.run.folder import metrics_path
    from simulator.run.plan import RunPlan
    from simulator.run.reader import read_rows
    from simulator.run.runner import run_plan

    def rows(engine: str) -> list[dict]:
        document = copy.deepcopy(tiny_document)
        document["fleet"]["transport"] = {"runtime": "flower-http"}
        document["engine"] = {"kind": engine, "num_cpus": 2}
        plan = RunPlan(Scenario.model_validate(document), ["fedavg"], [0], tmp_path / engine)
        folder = run_plan(plan, show_progress=False)
        return [
            {k: v for k, v in row.items() if "wall" not in k}
            for row in read_rows(metrics_path(folder, "fedavg", 0))
        ]

    assert rows("ray") == rows("inline")
