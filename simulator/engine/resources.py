"""Checks before an engine starts: is the cluster there, and can it hold what is asked?

Without them, a request Ray can never satisfy (more CPUs per device than a
node has) waits forever, and an unreachable ``engine.ray_address`` retries
forever; both look like a hang. Each check fails in one line that names the
scenario key to change.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from simulator.catalog.errors import UserError
from simulator.scenario.schema import Engine

REACH_TIMEOUT_S = 10.0


def local_cpus(engine: Engine) -> int:
    """CPUs a private, local Ray gets: ``engine.num_cpus`` or this machine's."""
    return engine.num_cpus or os.cpu_count() or 1


def check_reachable(address: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """A TCP connection to ``HOST:PORT`` within ``timeout_s`` (``auto`` is Ray's to find)."""
    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"engine.ray_address: expected HOST:PORT (or auto); found {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return
    except OSError as err:
        raise UserError(
            f"engine.ray_address: cannot reach {address} within {timeout_s:g} s "
            f"({err.strerror or type(err).__name__}); is `ray start --head` running there?"
        ) from None


def check_cpus(engine: Engine, cpus: float, where: str) -> None:
    """What the scenario asks of Ray against the CPUs it has (``where`` says whose)."""
    if engine.kind == "flower" and engine.cpus_per_device > cpus:
        raise UserError(
            f"engine.cpus_per_device: {engine.cpus_per_device:g} CPUs per device, but {where} "
            f"has {cpus:g}; no device could ever be placed"
        )
    if engine.kind == "ray" and engine.shards and engine.shards > cpus:
        raise UserError(
            f"engine.shards: {engine.shards} shard actors need one CPU each, but {where} "
            f"has {cpus:g}; lower engine.shards or leave it out (one per CPU)"
        )


def init_args(engine: Engine) -> dict[str, Any]:
    """``ray.init`` arguments (both Ray engines): join a cluster, or a private Ray bound to
    loopback on this machine, its dashboard off and its logs kept to errors."""
    args: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "log_to_driver": False,
    }
    if engine.ray_address:
        args["address"] = engine.ray_address
    else:
        args["num_cpus"] = local_cpus(engine)
        args["_node_ip_address"] = "127.0.0.1"
    return args
