"""The device runtime as a Flower ``ClientApp``, for Flower's own simulation runtime.

Each message is a cohort of one; the device's state lives in its Flower node
``Context`` (inside a Ray actor's process). This is the ``flower`` engine: the
reference the batched engines are tested against.
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from simulator.engine import protocol
from simulator.engine.deployment import Deployment, DeploymentSpec
from simulator.engine.runtime import DeviceRuntime
from simulator.engine.state import ContextStore
from strategies import wire

PARTITION_KEY = "partition-id"


def device_index(context: Context) -> int:
    return int(context.node_config[PARTITION_KEY])


def make_device_app(spec: DeploymentSpec) -> ClientApp:
    """The ClientApp for one run; ``spec`` is all it carries (it is pickled per call on Ray)."""
    app = ClientApp()

    def answer(message: Message, context: Context) -> Message:
        runtime = DeviceRuntime(Deployment.get(spec), ContextStore(context), raise_errors=True)
        (reply,) = runtime.handle([(device_index(context), message)])
        return reply

    serve_every_message(app, answer)
    return app


def serve_every_message(app: ClientApp, answer: Callable[[Message, Context], Message]) -> None:
    """Route every message type the cloud sends (method traffic and control) to ``answer``."""
    for register in (
        app.train(),
        app.train(wire.APPLY_ACTION),
        app.evaluate(),
        app.query(),
        app.query(protocol.SNAPSHOT_ACTION),
        app.query(protocol.RESTORE_ACTION),
        app.query(protocol.POLL_ACTION),
    ):
        register(answer)
