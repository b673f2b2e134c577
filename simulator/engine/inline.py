"""The ``inline`` engine: the whole fleet in the cloud's own process, one cohort per exchange.

An in-process implementation of Flower's ``Grid``: each exchange's messages go
to one ``DeviceRuntime`` as a single batch (no actors, no serialization, no
polling), so a round's device work runs as one cohort. Device states live in
an in-process ``MemoryStore``: a device that never took part holds nothing.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from itertools import count

from flwr.app import Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from simulator.catalog.seeding import rng_for
from simulator.engine.deployment import Deployment, DeploymentSpec, ServerBody
from simulator.engine.runtime import DeviceRuntime
from simulator.engine.state import MemoryStore


def node_ids(devices: int) -> list[int]:
    """Flower node ids for ``devices`` simulated nodes (unsigned 64-bit, as Python ints)."""
    draws = rng_for(0, "node-ids").choice(2**62, size=devices, replace=False)
    return [int(n) + 1 for n in draws.tolist()]


class BatchGrid(Grid):
    """A Grid whose ``send_and_receive`` hands all its messages to ``deliver`` at once.

    ``deliver`` gets ``(device, message)`` pairs and returns the replies in
    the same order; it is where a concrete engine runs its devices.
    """

    def __init__(self, devices: int, run_id: int = 1):
        self._run = Run.create_empty(run_id=run_id)
        self._node_ids = node_ids(devices)
        self._device_of = {node: device for device, node in enumerate(self._node_ids)}
        self._ids = count(1)
        self._replies: dict[str, Message] = {}

    @abstractmethod
    def deliver(self, batch: list[tuple[int, Message]]) -> list[Message]:
        """Replies to ``batch``, in its order (each engine runs its devices its own way)."""

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self._node_ids)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        batch, ids = [], []
        for message in messages:
            node = message.metadata.dst_node_id
            if node not in self._device_of:
                raise ValueError(f"unknown node id {node}")
            message_id = f"ins-{next(self._ids)}"
            message.metadata.__dict__["_message_id"] = message_id
            batch.append((self._device_of[node], message))
            ids.append(message_id)
        for message_id, reply in zip(ids, self.deliver(batch), strict=True):
            reply.metadata.__dict__["_message_id"] = f"reply-{next(self._ids)}"
            self._replies[message_id] = reply
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return list(self.pull_messages(list(self.push_messages(messages))))


class InlineGrid(BatchGrid):
    """Every device in this process: one runtime, one in-memory store."""

    def __init__(self, runtime: DeviceRuntime, devices: int):
        super().__init__(devices)
        self.runtime = runtime

    def deliver(self, batch: list[tuple[int, Message]]) -> list[Message]:
        return self.runtime.handle(batch)


def use_cloud_identity() -> None:
    """Messages made in this process are the cloud's (what Flower's ServerApp sets)."""
    TaskIdentity.run_id = 1
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    TaskIdentity.task_id = 1


def run_inline(spec: DeploymentSpec, devices: int, body: ServerBody) -> None:
    """Run the cloud body against an in-process fleet of ``devices`` devices."""
    use_cloud_identity()
    runtime = DeviceRuntime(Deployment.get(spec), MemoryStore())
    body(InlineGrid(runtime, devices))
