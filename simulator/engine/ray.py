"""The ``ray`` engine: long-lived Ray actors, each owning a shard of the fleet.

Each ``DeviceShard`` actor builds the world once, keeps the states of its
devices (device index modulo the number of shards) and answers its part of
every exchange as one cohort. The cloud (the round loop and the method's
Flower ``Strategy``) stays in this process and talks to the shards through a
``Grid``, so nothing else changes between engines. One message per shard and
exchange replaces Flower's one per device, which is what lets a fleet of
100,000 devices run on Ray.

``engine.ray_address`` joins a running Ray cluster; shards then spread over
its nodes (the starting model's weights travel with them, so nodes need no
shared storage). Without it a private Ray starts on this machine, bound to
loopback, with its dashboard off. A shard that dies or stays silent past
``engine.reply_timeout_s`` is an ``EngineFailure``: the runner restarts the
engine from the last checkpoint.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import ray
from flwr.app import Message
from ray.exceptions import GetTimeoutError, RayActorError, RayError

from simulator.engine.deployment import Deployment, DeploymentSpec, ServerBody
from simulator.engine.failures import EngineFailure
from simulator.engine.inline import BatchGrid, use_cloud_identity
from simulator.engine.runtime import DeviceRuntime
from simulator.engine.state import MemoryStore
from simulator.scenario.schema import Engine

STARTUP_TIMEOUT_S = 600.0  # the first exchange waits for every shard to build its world


@ray.remote
class DeviceShard:
    """A shard of the fleet: its devices' states and a runtime that answers their messages."""

    def __init__(self, spec: DeploymentSpec, pretrained: bytes):
        path = Path(spec.world.pretrained_path)
        if not path.exists():  # another node: the weights came with the actor
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pretrained)
        self.runtime = DeviceRuntime(Deployment.get(spec), MemoryStore())

    def handle(self, batch: list[tuple[int, Message]]) -> list[Message]:
        return self.runtime.handle(batch)

    def where(self) -> dict[str, Any]:
        """Which Ray node and process this shard runs in (for tests and logs)."""
        return {
            "node": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }


class ShardGrid(BatchGrid):
    """Splits each exchange by shard, runs the shards in parallel, merges their replies."""

    def __init__(self, shards: list[Any], devices: int, reply_timeout_s: float):
        super().__init__(devices)
        self.shards = shards
        self.reply_timeout_s = reply_timeout_s
        self._warm = False

    def deliver(self, batch: list[tuple[int, Message]]) -> list[Message]:
        parts: list[list[int]] = [[] for _ in self.shards]
        for i, (device, _) in enumerate(batch):
            parts[device % len(self.shards)].append(i)
        asked = [(s, part) for s, part in enumerate(parts) if part]
        futures = [self.shards[s].handle.remote([batch[i] for i in part]) for s, part in asked]
        timeout = (
            self.reply_timeout_s if self._warm else max(self.reply_timeout_s, STARTUP_TIMEOUT_S)
        )
        try:
            answers = ray.get(futures, timeout=timeout)
        except GetTimeoutError:
            for shard in self.shards:
                ray.kill(shard)
            raise EngineFailure(
                f"a device shard sent no reply within {timeout:.0f} s (a frozen worker?)"
            ) from None
        except RayActorError as err:
            raise EngineFailure(f"a Ray worker was lost: {str(err).splitlines()[0]}") from None
        except RayError as err:
            raise EngineFailure(f"the Ray engine failed: {str(err).splitlines()[0]}") from None
        self._warm = True
        replies: list[Message | None] = [None] * len(batch)
        for (_, part), answer in zip(asked, answers, strict=True):
            for i, reply in zip(part, answer, strict=True):
                replies[i] = reply
        return [r for r in replies if r is not None]

    def locations(self) -> list[dict[str, Any]]:
        return ray.get([shard.where.remote() for shard in self.shards])


def init_args(engine: Engine) -> dict[str, Any]:
    """``ray.init`` arguments: join a cluster, or a private loopback Ray on this machine."""
    args: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "log_to_driver": False,
    }
    if engine.ray_address:
        args["address"] = engine.ray_address
    else:
        args["num_cpus"] = engine.num_cpus or os.cpu_count() or 1
        args["_node_ip_address"] = "127.0.0.1"
    return args


def shard_count(engine: Engine) -> int:
    """One shard per CPU Ray has (or ``engine.shards``)."""
    if engine.shards:
        return engine.shards
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def run_on_ray(spec: DeploymentSpec, devices: int, body: ServerBody, engine: Engine) -> None:
    """Run the cloud body against ``devices`` devices sharded over Ray actors."""
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(**init_args(engine))
    shards: list[Any] = []
    try:
        count = min(shard_count(engine), devices)
        weights = Path(spec.world.pretrained_path).read_bytes()
        weights_ref = ray.put(weights)
        shards = [
            DeviceShard.options(num_cpus=1, scheduling_strategy="SPREAD").remote(spec, weights_ref)
            for _ in range(count)
        ]
        use_cloud_identity()
        body(ShardGrid(shards, devices, engine.reply_timeout_s))
    finally:
        for shard in shards:
            ray.kill(shard)
        if started_here:
            ray.shutdown()
