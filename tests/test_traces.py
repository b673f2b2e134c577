"""Fleets from measured traces: FedScale's pickles read safely, the CSV layout, profiles,
online windows that decide who a round can reach, and one-line refusals of bad files."""

from __future__ import annotations

import csv
import json
import pickle

import pytest
from conftest import write_yaml

from simulator.catalog.errors import ScenarioError
from simulator.cli import main
from simulator.engine.sampling import DeviceSampler
from simulator.run.folder import metrics_path
from simulator.run.reader import read_rows
from simulator.scenario.loading import load_scenario
from simulator.world.build import World, WorldSpec
from simulator.world.cloud import pretrain_for
from simulator.world.fleet import build_fleet
from simulator.world.preflight import preflight
from simulator.world.traces import Behaviour, assign_clients

# Three measured clients, FedScale's layout (ids from 1): ms per sample, kbit/s.
CAPACITY = {
    1: {"computation": 20.0, "communication": 800.0},
    2: {"computation": 5.0, "communication": 12000.0},
    3: {"computation": 50.0, "communication": 150.0},
}
# Client 1 is online for the first 200 s of every 600; client 2 always; client 3 from 300 s.
BEHAVIOUR = {
    1: {"active": [0], "inactive": [200], "finish_time": 600, "duration": 600, "model": "Pixel 3"},
    2: {"active": [0], "inactive": [1e6], "finish_time": 1e6, "duration": 1e6, "model": "SM-G960"},
    3: {"active": [300], "inactive": [600], "finish_time": 600, "duration": 600, "model": "Mi 8"},
}


def _pickles(folder):
    folder.mkdir(exist_ok=True)
    for name, content in (("client_device_capacity", CAPACITY), ("client_behave_trace", BEHAVIOUR)):
        (folder / name).write_bytes(pickle.dumps(content))
    return folder / "client_device_capacity", folder / "client_behave_trace"


def _csvs(folder):
    folder.mkdir(exist_ok=True)
    capacity, behaviour = folder / "capacity.csv", folder / "behaviour.csv"
    with capacity.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["client_id", "computation", "communication"])
        writer.writerows([c, v["computation"], v["communication"]] for c, v in CAPACITY.items())
    with behaviour.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["client_id", "finish_time", "duration", "model", "active", "inactive"])
        for c, v in BEHAVIOUR.items():
            row = [c, v["finish_time"], v["duration"], v["model"]]
            writer.writerow(
                row + [";".join(map(str, v["active"])), ";".join(map(str, v["inactive"]))]
            )
    return capacity, behaviour


def _jsons(folder):
    folder.mkdir(exist_ok=True)
    capacity, behaviour = folder / "capacity.json", folder / "behaviour.json"
    capacity.write_text(json.dumps(CAPACITY))  # keys become strings, as JSON has them
    behaviour.write_text("\ufeff" + json.dumps(BEHAVIOUR), encoding="utf-8")  # with a BOM
    return capacity, behaviour


def _traced(tiny_document, capacity, behaviour, **extra):
    document = json.loads(json.dumps(tiny_document))
    document["fleet"]["traces"] = {"capacity": str(capacity), "behaviour": str(behaviour), **extra}
    return document


@pytest.mark.parametrize("layout", [_pickles, _csvs, _jsons])
def test_each_device_takes_its_clients_figures_and_model(tmp_path, tiny_document, layout):
    capacity, behaviour = layout(tmp_path / "traces")
    path = write_yaml(tmp_path / "tiny.yaml", _traced(tiny_document, capacity, behaviour))
    fleet = build_fleet(load_scenario(path), 0)
    for profile in fleet:  # FedScale's mapping: device d takes the (d mod 3)-th client
        client = profile.index % 3 + 1
        assert profile.capacity_client == profile.behaviour_client == client
        assert profile.uplink_bps == profile.downlink_bps == 1e3 * CAPACITY[client]["communication"]
        assert profile.compute_flops == pytest.approx(6e8 / (CAPACITY[client]["computation"] / 1e3))
        assert profile.model == BEHAVIOUR[client]["model"] and profile.availability == 1.0
        assert profile.rtt_s > 0 and profile.device_class in ("slow", "fast")  # the class's rest


def test_a_run_records_the_traced_fleet_and_never_reaches_an_offline_device(
    tmp_path, tiny_document
):
    capacity, behaviour = _pickles(tmp_path / "traces")
    document = _traced(tiny_document, capacity, behaviour, downlink_ratio=2.0)
    document["rounds"]["period_s"] = 150  # round starts at 0, 150, 300, 450 s
    path = write_yaml(tmp_path / "tiny.yaml", document)
    args = [str(path), "--methods", "static,fedavg", "--out", str(tmp_path / "runs")]
    assert main([*args, "--no-progress"]) == 0
    (folder,) = (tmp_path / "runs").glob("*/*")
    with (folder / "fleet" / "seed0.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        client = int(row["index"]) % 3 + 1
        assert int(row["capacity_client"]) == client and row["model"] == BEHAVIOUR[client]["model"]
        assert float(row["downlink_bps"]) == 2.0 * float(row["uplink_bps"])
    assert next(folder.rglob("fleet.png")).stat().st_size > 0  # drawn by phone model
    scenario = load_scenario(path)
    pretrained, _ = pretrain_for(scenario, 0)  # the run's cached starting model
    world = World(WorldSpec(scenario.model_dump_json(), 0, str(pretrained)))
    sampler = DeviceSampler(world)
    for start_s in (0.0, 150.0, 250.0, 300.0, 450.0, 700.0):
        reachable = set(sampler.reachable(int(start_s // 150), start_s))
        behaviours = zip(world.fleet, world.behaviours, strict=True)
        offline = {p.index for p, b in behaviours if not b.online(start_s)}
        assert offline and not reachable & offline, start_s
        assert reachable  # client 2's devices never leave


def test_online_follows_fedscales_window_rule():
    phone = Behaviour(active=(10.0, 100.0), inactive=(50.0, 120.0), finish_time=200.0, model="x")
    assert [phone.online(t) for t in (0, 10, 50, 51, 100, 121, 210, 305)] == [
        False, True, True, False, True, False, True, True,
    ]  # fmt: skip


def test_the_shuffled_mapping_is_seeded_and_uses_every_client():
    first = assign_clients([5, 1, 9, 3], 8, "shuffle", seed=0)
    assert first == assign_clients([5, 1, 9, 3], 8, "shuffle", seed=0)
    assert sorted(first[:4]) == [1, 3, 5, 9] and first[4:] == first[:4]
    assert assign_clients([5, 1, 9, 3], 6, "modulo", seed=0) == [1, 3, 5, 9, 1, 3]


def test_a_pickle_that_names_a_global_is_refused_and_nothing_runs(tmp_path, tiny_document):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    capacity, behaviour = _pickles(tmp_path / "traces")
    capacity.write_bytes(pickle.dumps({1: Payload()}))
    path = write_yaml(tmp_path / "tiny.yaml", _traced(tiny_document, capacity, behaviour))
    with pytest.raises(ScenarioError) as refused:
        preflight(load_scenario(path), str(path))
    message = str(refused.value)
    assert "refused: the pickle asks to load posix.system" in message, message
    assert "\n" not in message and not marker.exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda c, b: c.unlink(), "client_device_capacity: no such file"),
        (lambda c, b: c.write_bytes(pickle.dumps([1, 2])), "expected a dict of clients"),
        (lambda c, b: c.write_bytes(pickle.dumps({1: {"computation": 3}})), "client 1: missing fi"),
        (
            lambda c, b: c.write_bytes(pickle.dumps({2: {"computation": 3, "communication": -5}})),
            "client 2: communication: must be above 0, found -5",
        ),
        (
            lambda c, b: c.write_bytes(pickle.dumps({7: {"computation": 0, "communication": 5}})),
            "client 7: computation: must be above 0",
        ),
        (
            lambda c, b: b.write_bytes(
                pickle.dumps({1: {"active": [0, 5], "inactive": [3], "finish_time": 9}})
            ),
            "client 1: active has 2 entries and inactive 1",
        ),
        (
            lambda c, b: b.write_bytes(
                pickle.dumps({4: {"active": [10, 0], "inactive": [20, 5], "finish_time": 30}})
            ),
            "client 4: window 1 starts at 0, before window 0 ends",
        ),
        (
            lambda c, b: b.write_bytes(
                pickle.dumps({1: {"active": [0], "inactive": [50], "finish_time": 30}})
            ),
            "client 1: window 0 ends at 50, past finish_time 30",
        ),
        (lambda c, b: b.write_bytes(b"\x80\x05garbage"), "not a readable pickle"),
        (
            lambda c, b: c.write_bytes(
                pickle.dumps({1: {"computation": 1e-300, "communication": 5}})
            ),
            "client 1: computation: 1e-300 is below 0.001",
        ),
        (
            lambda c, b: c.write_bytes(pickle.dumps({1: CAPACITY[1], "1": CAPACITY[2]})),
            "client 1 appears twice",
        ),
    ],
)
def test_a_bad_trace_is_one_line_naming_file_client_and_field(
    tmp_path, tiny_document, damage, message
):
    capacity, behaviour = _pickles(tmp_path / "traces")
    damage(capacity, behaviour)
    path = write_yaml(tmp_path / "tiny.yaml", _traced(tiny_document, capacity, behaviour))
    with pytest.raises(ScenarioError) as refused:
        preflight(load_scenario(path), str(path))
    text = str(refused.value)
    assert message in text and text.count("\n") == 0, text
    assert "fleet.traces." in text


def test_convert_writes_the_same_clients_in_each_layout(tmp_path, capsys):
    from simulator.world.traces import load_behaviour, load_capacity

    capacity, behaviour = _pickles(tmp_path / "traces")
    for source, load in ((capacity, load_capacity), (behaviour, load_behaviour)):
        as_csv, as_json = tmp_path / f"{source.name}.csv", tmp_path / f"{source.name}.json"
        assert main(["traces", "convert", str(source), str(as_csv)]) == 0
        assert main(["traces", "convert", str(as_csv), str(as_json)]) == 0
        assert load(source) == load(as_csv) == load(as_json)
    assert "3 clients of a behaviour trace" in capsys.readouterr().out


def test_convert_writes_nothing_when_a_client_is_bad(tmp_path, capsys):
    source, target = tmp_path / "capacity.json", tmp_path / "capacity.csv"
    source.write_text(json.dumps({"1": CAPACITY[1], "2": {"computation": -1, "communication": 5}}))
    assert main(["traces", "convert", str(source), str(target)]) != 0
    assert "client 2: computation: must be above 0" in capsys.readouterr().err
    assert not target.exists()


def test_the_shipped_example_is_the_generators_output(tmp_path):
    from pathlib import Path

    from simulator.world.example_traces import write_example_traces

    shipped = Path(__file__).parent.parent / "scenarios" / "traces"
    for written in write_example_traces(tmp_path):
        assert written.read_bytes() == (shipped / written.name).read_bytes(), written.name


def test_a_scenario_files_relative_trace_paths_name_files_beside_it(tmp_path, monkeypatch):
    from pathlib import Path

    traced = Path(__file__).parent.parent / "scenarios" / "traced.yaml"
    monkeypatch.chdir(tmp_path)  # anywhere but the repository
    scenario = load_scenario(traced)
    assert scenario.fleet.traces.capacity == str(traced.parent / "traces" / "capacity.csv")
    capacity, _ = _csvs(tmp_path / "mine")
    given = load_scenario(traced, ["fleet.traces.capacity=mine/capacity.csv"])
    assert given.fleet.traces.capacity == str(capacity.resolve())  # --set: the shell's folder


def test_a_device_whose_window_closes_mid_round_drops_out_of_it(tmp_path, tiny_document, caplog):
    capacity, behaviour = _pickles(tmp_path / "traces")
    closing = {**BEHAVIOUR, 1: {**BEHAVIOUR[1], "inactive": [150.2]}}  # just after a start
    behaviour.write_bytes(pickle.dumps(closing))
    document = _traced(tiny_document, capacity, behaviour)
    document["rounds"]["period_s"] = 150
    path = write_yaml(tmp_path / "tiny.yaml", document)
    args = [str(path), "--methods", "fedavg", "--out", str(tmp_path / "runs"), "--no-progress"]
    assert main(args) == 0
    (folder,) = (tmp_path / "runs").glob("*/*")
    rows = [r for r in read_rows(metrics_path(folder, "fedavg", 0)) if r["kind"] == "round"]
    second = next(r for r in rows if r["start_s"] == 150.0)
    assert any("went offline" in f for f in second["failures"]), second["failures"]
    assert second["failed"] >= second["went_offline"] >= 1
    dropped = sum(r["went_offline"] for r in rows)
    assert f"fedavg seed 0: {dropped} of " in caplog.text  # the run log counts them


def test_online_through_needs_one_window_for_the_whole_span():
    phone = Behaviour(active=(10.0,), inactive=(50.0,), finish_time=100.0, model="x")
    assert phone.online_through(10, 50) and phone.online_through(110, 140)
    assert not phone.online_through(40, 51) and not phone.online_through(5, 20)


def test_validation_reads_no_trace_and_preflight_reads_them_once(tmp_path, tiny_document):
    """A scenario validates the same on any machine (no file is opened); the files are
    read before the run, and a trace that leaves nobody online at any round start warns."""
    missing = _traced(tiny_document, tmp_path / "gone.csv", tmp_path / "gone-too.csv")
    path = write_yaml(tmp_path / "missing.yaml", missing)
    scenario = load_scenario(path)  # validates: the files are not read here
    with pytest.raises(ScenarioError, match=r"fleet\.traces\.capacity: .*gone\.csv"):
        preflight(scenario, str(path))
    capacity, behaviour = _pickles(tmp_path / "traces")
    late = {
        c: {**v, "active": [1e5], "inactive": [2e5], "finish_time": 3e5, "duration": 3e5}
        for c, v in BEHAVIOUR.items()
    }
    behaviour.write_bytes(pickle.dumps(late))
    path = write_yaml(tmp_path / "late.yaml", _traced(tiny_document, capacity, behaviour))
    (note,) = preflight(load_scenario(path), str(path))
    assert note.startswith("fleet.traces.behaviour: no client is online at any round start")
