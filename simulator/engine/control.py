"""Simulator-control queries: which device a node is, and the devices' state.

These are not method traffic (never billed). Registration maps Flower node
ids to fleet devices before the first round. A device's persistent state
lives where its ClientApp runs (a Flower node ``Context``, inside a Ray
actor's process on the Ray engine), so the cloud asks for it with a query
(checkpoints) and puts it back the same way (resume). All of it works on any
engine, because these are ordinary messages.
"""

from __future__ import annotations

import logging
import time

from flwr.app import Message, RecordDict
from flwr.common import serde
from flwr.proto.recorddict_pb2 import RecordDict as RecordDictProto
from flwr.serverapp import Grid

from simulator.engine import protocol

CONTROL_TIMEOUT_S = 3600.0
REGISTRATION_TIMEOUT_S = 600.0
JOIN_REPORT_S = 10.0
log = logging.getLogger("persona_fleet")


def records_to_bytes(records: RecordDict) -> bytes:
    """Flower's wire encoding of a RecordDict (exact for every record type)."""
    return serde.recorddict_to_proto(records).SerializeToString(deterministic=True)


def records_from_bytes(data: bytes) -> RecordDict:
    proto = RecordDictProto()
    proto.ParseFromString(data)
    return serde.recorddict_from_proto(proto)


def register_devices(grid: Grid, devices: int) -> dict[int, int]:
    """Wait for every simulated node, then learn which fleet device each one is.

    Real SuperNodes join one by one: the wait says how many joined, every
    ``JOIN_REPORT_S``; a device served by two nodes is refused by name.
    """
    started = time.monotonic()
    reported = started
    while len(node_ids := [int(n) for n in grid.get_node_ids()]) < devices:
        now = time.monotonic()
        if now - started > REGISTRATION_TIMEOUT_S:
            raise RuntimeError(f"only {len(node_ids)} of {devices} device nodes registered")
        if now - reported > JOIN_REPORT_S:
            log.info("%d of %d device nodes joined; waiting for the rest", len(node_ids), devices)
            reported = now
        time.sleep(0.1)
    messages = [
        Message(RecordDict(), dst_node_id=node, message_type=protocol.QUERY_REGISTER)
        for node in sorted(node_ids)
    ]
    node_of: dict[int, int] = {}
    for reply in grid.send_and_receive(messages, timeout=CONTROL_TIMEOUT_S):
        if reply.has_error():
            raise RuntimeError(f"device registration failed: {reply.error.reason}")
        device = int(reply.content[protocol.SIM_METER][protocol.DEVICE])
        if device in node_of:
            raise RuntimeError(
                f"device {device} is served by two nodes ({node_of[device]} and "
                f"{int(reply.metadata.src_node_id)}): start each device once"
            )
        node_of[device] = int(reply.metadata.src_node_id)
    if sorted(node_of) != list(range(devices)):
        raise RuntimeError(f"registration returned {len(node_of)} of {devices} devices")
    return node_of


class FleetStateError(RuntimeError):
    """A device did not report or accept its state."""


def _check(replies: list[Message], expected: int, what: str) -> None:
    failed = [r for r in replies if r.has_error()]
    if failed:
        raise FleetStateError(f"{what}: {len(failed)} device(s) failed: {failed[0].error.reason}")
    if len(replies) != expected:
        raise FleetStateError(f"{what}: {len(replies)} of {expected} devices answered")


def collect_states(grid: Grid, node_of: dict[int, int], devices: list[int]) -> dict[int, bytes]:
    """The encoded state records of ``devices`` (fleet indices)."""
    messages = [
        Message(RecordDict(), dst_node_id=node_of[d], message_type=protocol.QUERY_SNAPSHOT)
        for d in sorted(devices)
    ]
    replies = list(grid.send_and_receive(messages, timeout=CONTROL_TIMEOUT_S))
    _check(replies, len(messages), "device state snapshot")
    states: dict[int, bytes] = {}
    for reply in replies:
        device = int(reply.content[protocol.SIM_METER][protocol.DEVICE])
        records = RecordDict({k: v for k, v in reply.content.items() if k != protocol.SIM_METER})
        states[device] = records_to_bytes(records)
    return states


def restore_states(grid: Grid, node_of: dict[int, int], states: dict[int, bytes]) -> None:
    """Give each device in ``states`` its recorded state back."""
    messages = [
        Message(
            records_from_bytes(states[d]),
            dst_node_id=node_of[d],
            message_type=protocol.QUERY_RESTORE,
        )
        for d in sorted(states)
    ]
    replies = list(grid.send_and_receive(messages, timeout=CONTROL_TIMEOUT_S))
    _check(replies, len(messages), "device state restore")
