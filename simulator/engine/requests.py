"""Between rounds: which devices ask the cloud for service, and what asking cost them.

For methods whose devices may ask (``Method.requests_service``), the loop
polls the reachable devices at each round's start; a device that asks sends
a small request, billed to the round like any upload. The round's sampler
then serves askers first (``DeviceSampler.sample``). The poll is simulator
control, not method traffic: only the requests themselves are billed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from simulator.engine import protocol
from simulator.engine.evaluation import GRID_TIMEOUT_S


@dataclass(frozen=True)
class Requests:
    """The devices that asked at a round's start, and their requests' bytes and energy.

    ``bytes_down`` is what answering the requests sent back (nothing under the
    ``payload`` transport; a runtime's responses and acknowledgements otherwise).
    """

    asking: list[int] = field(default_factory=list)
    bytes_up: float = 0.0
    energy_j: float = 0.0
    bytes_down: float = 0.0


NO_REQUESTS = Requests()


def poll_requests(
    grid: Grid, node_of: dict[int, int], devices: list[int], start_s: float
) -> Requests:
    """Ask ``devices`` (reachable now) whether they want service; a failed reply asks nothing."""
    if not devices:
        return NO_REQUESTS
    content = RecordDict(
        {protocol.SIM_CONFIG: ConfigRecord({protocol.ROUND: 0, protocol.START_S: start_s})}
    )
    messages = [
        Message(content, dst_node_id=node_of[d], message_type=protocol.QUERY_POLL) for d in devices
    ]
    asking, bytes_up, bytes_down, energy_j = [], 0.0, 0.0, 0.0
    for reply in grid.send_and_receive(messages, timeout=GRID_TIMEOUT_S):
        if reply.has_error():
            continue
        meter = reply.content[protocol.SIM_METER]
        if int(meter[protocol.REQUEST]):
            asking.append(int(meter[protocol.DEVICE]))
            bytes_up += float(meter[protocol.UPLOAD_BYTES])
            bytes_down += float(meter.get(protocol.DOWNLOAD_BYTES, 0))
            energy_j += float(meter[protocol.ENERGY_J])
    return Requests(sorted(asking), bytes_up, energy_j, bytes_down)
