"""The deployment engine's refusals and its Grid, without a federation (fast).

A SuperNode refuses a run of another scenario, a device outside the fleet
and a method its scenario lacks, each with the fix; ``simulate`` refuses a
SuperLink that is not there and an insecure link off loopback in one line;
the cloud's Grid turns a device that never answers, or whose SuperNode went
offline, into an error reply naming why.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable

import pytest
import torch
from conftest import write_yaml
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, RecordDict
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid

from simulator.cli import main
from simulator.engine import protocol
from simulator.engine.deployment_grid import DeploymentGrid, run_stamp
from simulator.engine.inline import use_cloud_identity
from simulator.engine.state import DeviceState
from simulator.engine.supernode_app import (
    RunScopedStore,
    WrongRun,
    answer,
    device_spec,
    read_node_scenario,
)
from simulator.scenario.loading import parse_scenario, scenario_to_document, world_fingerprint


@pytest.fixture
def node_file(tmp_path, tiny_document):
    path = tmp_path / "node.json"
    path.write_text(json.dumps(scenario_to_document(parse_scenario(tiny_document))))
    return str(path)


def _context(node_file: str, device: int) -> Context:
    return Context(1, 7, {"scenario": node_file, "device": device}, RecordDict(), {})


def test_a_supernode_refuses_another_scenarios_run(node_file):
    node = read_node_scenario(node_file)
    with pytest.raises(WrongRun, match="start the SuperNode with the cloud's scenario file"):
        device_spec(node, run_stamp("0123456789abcdef", "fedavg", 0))
    with pytest.raises(WrongRun, match="method persona is not in scenario"):
        device_spec(node, run_stamp(node.fingerprint, "persona", 0))


def test_a_supernode_refuses_a_device_outside_the_fleet(node_file):
    use_cloud_identity()
    node = read_node_scenario(node_file)
    message = Message(
        RecordDict({protocol.SIM_RUN: run_stamp(node.fingerprint, "fedavg", 0)}),
        dst_node_id=7,
        message_type=protocol.QUERY_REGISTER,
    )
    with pytest.raises(WrongRun, match="outside the 12-device fleet .* --device 0 to 11"):
        answer(message, _context(node_file, 12))
    reply = answer(message, _context(node_file, 11))
    assert reply.content[protocol.SIM_METER][protocol.DEVICE] == 11


def test_the_fingerprint_ignores_where_a_run_executes(tiny_document):
    here = parse_scenario(tiny_document)
    tiny_document["engine"] = {"kind": "deployment", "superlink": "127.0.0.1:9093"}
    tiny_document["output"] = "elsewhere"
    there = parse_scenario(tiny_document)
    assert world_fingerprint(here) == world_fingerprint(there)
    tiny_document["rounds"]["deadline_s"] = 61
    assert world_fingerprint(parse_scenario(tiny_document)) != world_fingerprint(here)


def test_state_of_an_earlier_method_seed_run_is_not_the_next_ones():
    context = Context(1, 7, {}, RecordDict(), {})
    fedavg = RunScopedStore(context, "fp/fedavg/0")
    fedavg.put(3, DeviceState(records=RecordDict({"x": ConfigRecord({"a": 1})})))
    assert not fedavg.get(3).is_empty()
    assert RunScopedStore(context, "fp/persona/0").get(3).is_empty()


def test_simulate_names_a_superlink_that_is_not_there(tmp_path, tiny_document, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    scenario = write_yaml(tmp_path / "s.yaml", tiny_document)
    code = main(
        [str(scenario), "--out", str(tmp_path / "runs"), "--no-progress",
         "--set", "engine.kind=deployment", "--set", f"engine.superlink=127.0.0.1:{port}"]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert f"engine.superlink 127.0.0.1:{port}: no SuperLink answers there" in err[0]
    assert not (tmp_path / "runs").exists()  # refused before any folder was made


def test_an_insecure_link_off_loopback_is_refused(tmp_path, tiny_document, capsys):
    scenario = write_yaml(tmp_path / "s.yaml", tiny_document)
    code = main([str(scenario), "--set", "engine.superlink=10.0.0.2:9093"])
    err = capsys.readouterr().err
    assert code == 2 and "engine.superlink_certificates" in err and "loopback" in err


class SilentGrid(Grid):
    """Answers node 1; node 2 never; node 3 with the SuperLink's 'node offline' error."""

    def __init__(self) -> None:
        self.pushed: dict[str, Message] = {}

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for i, message in enumerate(messages):
            message.metadata.__dict__["_message_id"] = f"m{i}"
            self.pushed[f"m{i}"] = message
            ids.append(f"m{i}")
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        replies = []
        for message_id in message_ids:
            message = self.pushed[message_id]
            node = message.metadata.dst_node_id
            if node == 1:
                replies.append(Message(RecordDict(), reply_to=message))
            elif node == 3:
                error = Error(code=ErrorCode.NODE_UNAVAILABLE, reason="offline")
                replies.append(Message(error, reply_to=message))
        return replies

    def set_run(self, run):  # pragma: no cover - not used
        raise NotImplementedError

    @property
    def run(self):  # pragma: no cover - not used
        raise NotImplementedError

    def create_message(self, *args, **kwargs):  # pragma: no cover - not used
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        return [1, 2, 3]

    def send_and_receive(self, messages, *, timeout=None):  # pragma: no cover - not used
        raise NotImplementedError


def test_the_cloud_grid_waits_for_the_deadline_then_names_who_did_not_answer():
    use_cloud_identity()
    grid = DeploymentGrid(SilentGrid(), run_stamp("fp", "fedavg", 0), reply_timeout_s=60)
    config = ConfigRecord({protocol.ROUND: 1, protocol.START_S: 0.0, protocol.DEADLINE_S: 0.3})
    content = RecordDict({protocol.SIM_CONFIG: config})
    messages = [Message(content, dst_node_id=n, message_type="train") for n in (1, 2, 3)]
    replies = {int(r.metadata.src_node_id): r for r in grid.send_and_receive(messages)}
    assert sorted(replies) == [1, 2, 3]
    assert not replies[1].has_error()
    assert "no reply within 0.3 wall seconds" in replies[2].error.reason
    assert replies[3].error.reason == "the device's SuperNode went offline"
    assert content[protocol.SIM_RUN][protocol.METHOD] == "fedavg"  # every message is stamped


def test_a_serverapp_takes_only_the_folder_simulate_reserved_on_its_disk(tmp_path):
    from simulator.catalog.errors import UserError
    from simulator.run.app_config import RESERVATION_FILE
    from simulator.run.serverapp import claim

    with pytest.raises(UserError, match="is not on this SuperLink's machine"):
        claim(tmp_path / "on-another-machine", "token")
    folder = tmp_path / "reserved"
    folder.mkdir()
    (folder / RESERVATION_FILE).write_text("token")
    with pytest.raises(UserError):
        claim(folder, "another token")
    claim(folder, "token")
    assert not folder.exists()  # the runner makes it afresh


class TwiceServedGrid(SilentGrid):
    """Three nodes answer registration; two of them say they are device 1."""

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        replies = []
        for message_id in message_ids:
            message = self.pushed[message_id]
            device = {1: 0, 2: 1, 3: 1}[int(message.metadata.dst_node_id)]
            meter = ConfigRecord({protocol.DEVICE: device})
            replies.append(Message(RecordDict({protocol.SIM_METER: meter}), reply_to=message))
        return replies

    def send_and_receive(self, messages, *, timeout=None):
        return self.pull_messages(list(self.push_messages(messages)))


def test_a_device_served_by_two_nodes_is_refused_by_name():
    from simulator.engine.control import register_devices

    use_cloud_identity()
    with pytest.raises(
        RuntimeError, match="device 1 is served by two nodes .* start each device once"
    ):
        register_devices(TwiceServedGrid(), 2)


class MeteredGrid(SilentGrid):
    """Every node answers a training message with a metered reply of one small array."""

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        replies = []
        for message_id in message_ids:
            message = self.pushed[message_id]
            meter = ConfigRecord(
                {
                    protocol.DEVICE: int(message.metadata.dst_node_id),
                    protocol.DOWNLOAD_BYTES: 10,
                    protocol.UPLOAD_BYTES: 20,
                    protocol.DOWNLOAD_S: 0.1,
                    protocol.UPLOAD_S: 0.2,
                    protocol.STATUS: protocol.STATUS_OK,
                }
            )
            content = RecordDict(
                {"update": ArrayRecord({"w": torch.ones(50)}), protocol.SIM_METER: meter}
            )
            replies.append(Message(content, reply_to=message))
        return replies


def test_the_exchange_log_records_what_crossed_the_wire_beside_what_was_billed(tmp_path):
    from simulator.engine.metering import message_size

    use_cloud_identity()
    log = tmp_path / "exchanges.jsonl"
    grid = DeploymentGrid(MeteredGrid(), run_stamp("fp", "fedavg", 0), 60, exchange_log=log)
    config = ConfigRecord({protocol.ROUND: 2, protocol.START_S: 0.0, protocol.DEADLINE_S: 5.0})
    content = RecordDict(
        {"model": ArrayRecord({"w": torch.zeros(80)}), protocol.SIM_CONFIG: config}
    )
    messages = [Message(content, dst_node_id=n, message_type="train") for n in (1, 3)]
    replies = list(grid.send_and_receive(messages))
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert sorted(line["device"] for line in lines) == [1, 3]
    sent, replied = message_size(content), message_size(replies[0].content)
    for line in lines:
        assert (line["sent_bytes"], line["sent_objects"]) == (sent.payload_bytes, sent.objects)
        assert (line["reply_bytes"], line["reply_objects"]) == (
            replied.payload_bytes,
            replied.objects,
        )
        assert line["sent_bytes"] > line["download-bytes"]  # the stamp and clock ride along
        assert (line["method"], line["round"], line["type"]) == ("fedavg", 2, "train")
        assert line["pushed"] <= line["replied"]
