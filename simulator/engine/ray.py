"""The ``ray`` engine: long-lived Ray actors, each owning a shard of the fleet.

Each ``DeviceShard`` actor builds the world once, keeps the states of its
devices (device index modulo the number of shards) and answers its part of
every exchange as one cohort. The cloud (the round loop and the method's
Flower ``Strategy``) stays in this process and talks to the shards through a
``Grid``, so nothing else changes between engines. One message per shard and
exchange replaces Flower's one per device, which is what lets a fleet of
100,000 devices run on Ray.

The actors live for the whole ``simulate`` call: each method-seed run loads
itself into them, so runs pay no start-up. ``engine.ray_address`` joins a
running Ray cluster; shards then spread over its nodes (the starting model's
weights travel with each run, so nodes need no shared storage). Without it
a private Ray starts on this machine, bound to loopback, with its dashboard
off. A shard that dies or stays silent past
``engine.reply_timeout_s`` is an ``EngineFailure``: the runner restarts the
engine from the last checkpoint.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import ray
from flwr.app import Message
from ray.exceptions import GetTimeoutError, RayActorError, RayError

from basemodel.atomic import write_atomically
from simulator.engine.deployment import Deployment, DeploymentSpec, ServerBody
from simulator.engine.failures import EngineFailure
from simulator.engine.inline import BatchGrid, use_cloud_identity
from simulator.engine.resources import check_cpus, check_reachable, init_args, local_cpus
from simulator.engine.runtime import DeviceRuntime
from simulator.engine.state import MemoryStore
from simulator.scenario.schema import Engine

STARTUP_TIMEOUT_S = 600.0  # the first exchange waits for every shard to build its world


@ray.remote
class DeviceShard:
    """A shard of the fleet: its devices' states and a runtime that answers their messages.

    ``load`` puts a method-seed run into the shard (a fresh store: device state
    belongs to one run); the actor itself lives for the whole ``simulate`` call.
    """

    def __init__(self) -> None:
        self.runtime: DeviceRuntime | None = None
        self.handled = 0

    def load(self, spec: DeploymentSpec, pretrained: bytes) -> None:
        path = Path(spec.world.pretrained_path)
        if not path.exists():  # another node: the weights came with the call
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, pretrained)
        self.runtime = DeviceRuntime(Deployment.get(spec), MemoryStore())

    def handle(self, batch: list[tuple[int, Message]]) -> list[Message]:
        if self.runtime is None:
            raise RuntimeError("device shard used before a run was loaded")
        self.handled += len(batch)
        return self.runtime.handle(batch)

    def where(self) -> dict[str, Any]:
        """Which Ray node and process this shard runs in, and how many messages it answered."""
        return {
            "node": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "handled": self.handled,
        }


class ShardGrid(BatchGrid):
    """Splits each exchange by shard, runs the shards in parallel, merges their replies."""

    def __init__(self, shards: list[Any], devices: int, reply_timeout_s: float):
        super().__init__(devices)
        self.shards = shards
        self.reply_timeout_s = reply_timeout_s

    def deliver(self, batch: list[tuple[int, Message]]) -> list[Message]:
        parts: list[list[int]] = [[] for _ in self.shards]
        for i, (device, _) in enumerate(batch):
            parts[device % len(self.shards)].append(i)
        asked = [(s, part) for s, part in enumerate(parts) if part]
        futures = [self.shards[s].handle.remote([batch[i] for i in part]) for s, part in asked]
        answers = _get(futures, self.reply_timeout_s, self.shards)
        replies: list[Message | None] = [None] * len(batch)
        for (_, part), answer in zip(asked, answers, strict=True):
            for i, reply in zip(part, answer, strict=True):
                replies[i] = reply
        return [r for r in replies if r is not None]


def _get(futures: list[Any], timeout_s: float, shards: list[Any]) -> list[Any]:
    """``ray.get`` that turns a dead or silent shard into an ``EngineFailure``."""
    try:
        return ray.get(futures, timeout=timeout_s)
    except GetTimeoutError:
        for shard in shards:
            ray.kill(shard)
        raise EngineFailure(
            f"a device shard sent no reply within {timeout_s:.0f} s (a frozen worker?)"
        ) from None
    except RayActorError as err:
        raise EngineFailure(f"a Ray worker was lost: {str(err).splitlines()[0]}") from None
    except RayError as err:
        raise EngineFailure(f"the Ray engine failed: {str(err).splitlines()[0]}") from None


class RaySession:
    """Ray up for a whole ``simulate`` call; one shard actor per CPU, reused by every run."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.shards: list[Any] = []
        self.started_here = False

    def __enter__(self) -> RaySession:
        self.started_here = not ray.is_initialized()
        if self.started_here:
            if self.engine.ray_address:
                check_reachable(self.engine.ray_address)
            else:
                check_cpus(self.engine, local_cpus(self.engine), "the local Ray")
            ray.init(**init_args(self.engine))
        if self.engine.ray_address:
            check_cpus(self.engine, ray.cluster_resources().get("CPU", 0), "the Ray cluster")
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()
        if self.started_here:
            ray.shutdown()

    def shard_count(self) -> int:
        """``engine.shards``, or one shard per CPU Ray has."""
        if self.engine.shards:
            return self.engine.shards
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def run(self, spec: DeploymentSpec, devices: int, body: ServerBody) -> None:
        count = min(self.shard_count(), devices)
        if len(self.shards) != count:
            self.reset()
            self.shards = [
                DeviceShard.options(num_cpus=1, scheduling_strategy="SPREAD").remote()
                for _ in range(count)
            ]
        weights = ray.put(Path(spec.world.pretrained_path).read_bytes())
        loads = [shard.load.remote(spec, weights) for shard in self.shards]
        _get(loads, max(self.engine.reply_timeout_s, STARTUP_TIMEOUT_S), self.shards)
        use_cloud_identity()
        body(ShardGrid(self.shards, devices, self.engine.reply_timeout_s))

    def locations(self) -> list[dict[str, Any]]:
        """Where each shard runs and how many messages it answered so far."""
        return _get([s.where.remote() for s in self.shards], STARTUP_TIMEOUT_S, self.shards)

    def describe(self) -> str:
        shards = self.locations()
        nodes = sorted({s["node"] for s in shards})
        handled = ", ".join(
            f"shard {i} (node {nodes.index(s['node'])}): {s['handled']}"
            for i, s in enumerate(shards)
        )
        return f"ray: {len(shards)} shards on {len(nodes)} node(s); messages answered: {handled}"

    def reset(self) -> None:
        for shard in self.shards:
            ray.kill(shard)
        self.shards = []
