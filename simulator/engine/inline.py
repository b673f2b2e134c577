"""An in-process implementation of Flower's ``Grid``.

Messages go straight to the same ClientApp the Ray engine runs, one after the
other, in this process: no actors, no serialization, no polling. Each node has
its own Flower ``Context`` (node config with its partition id, persistent
state), exactly as a simulated SuperNode has. A ClientApp exception becomes an
error reply, as Flower's runtime does.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import count

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.client_app import ClientAppException
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from simulator.engine.deployment import DeploymentSpec, ServerBody
from simulator.engine.device import PARTITION_KEY, make_device_app
from simulator.world.seeding import rng_for


def error_reply(message: Message, err: Exception) -> Message:
    """The error reply Flower's simulation runtime makes when a ClientApp raises."""
    wrapped = ClientAppException(str(err))
    reason = str(type(wrapped)) + ":<'" + str(wrapped) + "'>"
    return Message(
        Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=message
    )


class InlineGrid(Grid):
    """A Grid whose nodes are ClientApp calls in this process."""

    def __init__(self, app: ClientApp, devices: int, run_id: int = 1):
        self._app = app
        self._run = Run.create_empty(run_id=run_id)
        draws = rng_for(0, "inline-node-ids").choice(2**62, size=devices, replace=False)
        self._node_ids = [int(n) + 1 for n in draws.tolist()]
        self._contexts = {
            node: Context(
                run_id=run_id,
                node_id=node,
                node_config={PARTITION_KEY: index, "num-partitions": devices},
                state=RecordDict(),
                run_config={},
            )
            for index, node in enumerate(self._node_ids)
        }
        self._ids = count(1)
        self._replies: dict[str, Message] = {}

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

    def _deliver(self, message: Message) -> Message:
        context = self._contexts[message.metadata.dst_node_id]
        try:
            reply = self._app(message=message, context=context)
        except Exception as err:  # a device failure is data, not a crash of the run
            reply = error_reply(message, err)
        reply.metadata.__dict__["_message_id"] = f"reply-{next(self._ids)}"
        return reply

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            if message.metadata.dst_node_id not in self._contexts:
                raise ValueError(f"unknown node id {message.metadata.dst_node_id}")
            message_id = f"ins-{next(self._ids)}"
            message.metadata.__dict__["_message_id"] = message_id
            self._replies[message_id] = self._deliver(message)
            ids.append(message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return list(self.pull_messages(list(self.push_messages(messages))))


def run_inline(spec: DeploymentSpec, devices: int, body: ServerBody) -> None:
    """Run the cloud body against an in-process fleet of ClientApps."""
    TaskIdentity.run_id = 1
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    TaskIdentity.task_id = 1
    body(InlineGrid(make_device_app(spec), devices))
