"""``simulate supernode``: serve one fleet device of a scenario on a real SuperNode.

    simulate supernode SCENARIO.yaml --device N --superlink HOST:PORT [--set ...]
                       [--port P] [--certificates CA.pem]

It loads the scenario (with the same ``--set`` overrides the cloud used: the
SuperNode refuses a run whose fingerprint differs), writes the resolved
scenario to the cache, trains or loads the starting model of every seed (so
that each message's process finds it in the cache), then becomes Flower's
``flower-supernode`` with node config ``scenario`` and ``device``. Insecure
links only to a loopback SuperLink; otherwise ``--certificates``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from basemodel.atomic import write_atomically
from simulator.catalog.errors import UserError
from simulator.engine.protocol import NODE_DEVICE, NODE_SCENARIO
from simulator.scenario.overrides import add_set_option

if TYPE_CHECKING:  # the scenario and the starting model load after the arguments parsed
    from simulator.scenario.schema import Scenario

DEFAULT_PORT = 9094  # Flower's SuperNode runtime port; device N takes DEFAULT_PORT + N


def build_supernode_parser() -> argparse.ArgumentParser:
    """The options of ``simulate supernode`` (``--help`` loads nothing heavy)."""
    parser = argparse.ArgumentParser(
        prog="simulate supernode",
        description="Serve one fleet device of a scenario on a Flower SuperNode.",
    )
    parser.add_argument("scenario", help="scenario file (YAML), as the cloud runs it")
    add_set_option(parser, "the cloud's overrides (repeatable): the same, or the run is refused")
    parser.add_argument("--device", type=int, required=True, help="fleet device index")
    parser.add_argument(
        "--superlink",
        required=True,
        metavar="HOST:PORT",
        help="the SuperLink's address (its one port)",
    )
    parser.add_argument(
        "--port", type=int, help=f"this SuperNode's own port (default {DEFAULT_PORT} + device)"
    )
    parser.add_argument(
        "--certificates",
        metavar="CA.pem",
        help="the SuperLink's CA certificate (TLS; needed off loopback)",
    )
    parser.add_argument(
        "--auth-keys",
        nargs=2,
        metavar=("PRIVATE", "PUBLIC"),
        help="this SuperNode's key pair, for a SuperLink that authenticates SuperNodes "
        "(flower-superlink --enable-supernode-auth)",
    )
    return parser


def prepare_node(scenario: Scenario) -> Path:
    """Write the resolved scenario where the SuperNode's processes read it; fill the cache.

    Every seed's starting model is trained or loaded now, so that each message's
    process finds it in the cache. Returns the scenario file (node config ``scenario``).
    """
    from basemodel.cache import default_cache_dir
    from simulator.scenario.loading import scenario_to_document, world_fingerprint
    from simulator.world.cloud import pretrain_for

    path = default_cache_dir() / "supernodes" / f"{world_fingerprint(scenario)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(scenario_to_document(scenario), sort_keys=True))
    for i in range(scenario.seeds):
        pretrain_for(scenario, scenario.seed + i)
    return path


def node_config(path: Path, device: int) -> str:
    """Flower's ``--node-config`` value for one device."""
    return f'{NODE_SCENARIO}="{path}" {NODE_DEVICE}={device}'


def flower_supernode() -> str:
    """The ``flower-supernode`` of this environment."""
    binary = shutil.which("flower-supernode", path=str(Path(sys.executable).parent))
    binary = binary or shutil.which("flower-supernode")
    if binary is None:
        raise UserError("flower-supernode not found: install the project (it brings flwr)")
    return binary


def supernode_command(args: argparse.Namespace) -> list[str]:
    """The ``flower-supernode`` command line for these arguments (after the checks)."""
    from simulator.scenario.loading import load_scenario
    from simulator.scenario.schema import LOOPBACK_HOSTS, superlink_host

    scenario = load_scenario(args.scenario, args.overrides)
    devices = scenario.fleet.devices
    if not 0 <= args.device < devices:
        raise UserError(
            f"--device {args.device}: scenario {scenario.name} has {devices} devices "
            f"(0 to {devices - 1})"
        )
    try:
        host = superlink_host(args.superlink)
    except ValueError as err:
        raise UserError(f"--superlink: {err}") from None
    if args.certificates is None and host not in LOOPBACK_HOSTS:
        raise UserError(
            f"--superlink {args.superlink} is not a loopback address: give --certificates "
            "(the SuperLink's CA certificate) for TLS"
        )
    path = prepare_node(scenario)
    security = ["--insecure"]
    if args.certificates is not None:
        security = ["--root-certificates", args.certificates]
    if args.auth_keys is not None:  # SuperNode authentication, as Flower documents it
        private, public = args.auth_keys
        security += ["--auth-supernode-private-key", private, "--auth-supernode-public-key", public]
    port = DEFAULT_PORT + args.device if args.port is None else args.port
    return [
        flower_supernode(),
        *security,
        "--superlink",
        args.superlink,
        "--port",
        str(port),
        "--node-config",
        node_config(path, args.device),
    ]


def supernode_main(argv: list[str]) -> int:
    """Check, prepare, then become ``flower-supernode`` (it runs until stopped)."""
    command = supernode_command(build_supernode_parser().parse_args(argv))
    print(f"device ready; starting: {' '.join(command)}", file=sys.stderr, flush=True)
    os.execv(command[0], command)
    return 0  # not reached
