"""The simulated clock and byte meter against real links shaped like 2G, 3G and 4G.

    sudo python benchmarks/real_links.py [--per-class 2] [--rounds 3] [--rtt] [--fit]
    python benchmarks/real_links.py --analyze DIR [--fit]

Each SuperNode runs in a network namespace of its own, joined to the
SuperLink's by a veth pair whose two egresses are shaped with ``tc tbf``
(token bucket) to its device's downlink and uplink rates (the presets' medians
for 2G, 3G and 4G). ``netem`` is not available: without ``--rtt`` no delay is
added; with it each SuperNode reaches the SuperLink through a relay that holds
every chunk half the profile's round trip each way
(``benchmarks/delay_proxy.py``). FedAvg and Persona then run on the
deployment engine with exchange logs (``PERSONA_FLEET_EXCHANGE_LOG``): the
cloud's (when it pushed each training message and pulled the reply, what
both weighed) and each device's (when it answered). A sampler reads each
veth's byte counters every 2 ms. ``benchmarks/real_links_report.py`` finds
each message's download and upload on the link and prints, per method and
link class, ``fleet.transport.runtime: flower-http``'s predicted seconds
against the measured ones, and the bytes it bills each link direction against
the bytes the interface counted (IP, TCP, TLS-less HTTP and Flower's framing
included); ``--fit`` adds the constants that would fit this run best.

It needs root (``ip netns``, ``tc``) and skips with a message where
namespaces cannot be made. Everything it creates (namespaces, links, relays,
processes) is removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.delay_proxy import DelayProxy  # noqa: E402
from benchmarks.real_links_report import SETUP_FILE, analyze  # noqa: E402
from simulator.engine.deployment_grid import EXCHANGE_LOG_ENV  # noqa: E402
from simulator.engine.supernode_start import flower_supernode, node_config, prepare_node  # noqa: E402
from simulator.scenario.loading import parse_scenario  # noqa: E402
from simulator.scenario.presets import PRESETS  # noqa: E402
from simulator.world.fleet import build_fleet  # noqa: E402

LINK_CLASSES = {"2g": "2g-lowend", "3g": "3g-midrange", "4g": "4g-highend"}
SAMPLE_S = 0.002
PORT = 19300
BIN = Path(sys.executable).parent


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=check, capture_output=True, text=True)


def scenario_document(per_class: int, rounds: int) -> dict:
    """The deployment scenario with one fleet class per link preset, every rate at its median.

    Its transport is the default ``payload``: the exchange log's metered bytes are
    then the records, and the report applies ``flower-http`` itself.
    """
    document = yaml.safe_load((REPO / "scenarios" / "deployment.yaml").read_text())
    classes = []
    for name, preset in LINK_CLASSES.items():
        values = copy.deepcopy(PRESETS[preset])
        for key in ("compute_flops", "uplink_kbps", "downlink_kbps", "rtt_ms"):
            values[key] = {"median": values[key]["median"]}  # no spread: rates as shaped
        values.update(name=name, share=1 / len(LINK_CLASSES), availability=1.0, crash_rate=0.0)
        classes.append(values)
    document["name"] = "real-links"
    document["fleet"] = {
        "devices": per_class * len(LINK_CLASSES),
        "classes": classes,
        "network": {"sigma": 0.0},  # no drawn fluctuation: the shaped rate is the rate
    }
    document["rounds"].update(count=rounds, deadline_s=900, eval_every_s=120 * rounds)
    document["engine"] = {"kind": "inline", "reply_timeout_s": 900}
    return document


@dataclass
class Links:
    """Namespaces ``pfl{i}`` with veth pairs ``pflh{i}`` (here) / ``pfld{i}`` (there)."""

    count: int
    made: list[int] = field(default_factory=list)

    def make(self, device: int, down_kbps: float, up_kbps: float) -> str:
        ns, host, dev = f"pfl{device}", f"pflh{device}", f"pfld{device}"
        run("ip", "netns", "add", ns)
        self.made.append(device)
        run("ip", "link", "add", host, "type", "veth", "peer", "name", dev)
        run("ip", "link", "set", dev, "netns", ns)
        run("ip", "addr", "add", f"10.88.{device}.1/24", "dev", host)
        run("ip", "link", "set", host, "up")
        inside = ("ip", "netns", "exec", ns)
        run(*inside, "ip", "addr", "add", f"10.88.{device}.2/24", "dev", dev)
        run(*inside, "ip", "link", "set", dev, "up")
        run(*inside, "ip", "link", "set", "lo", "up")
        for where, name in ((("",), host), (inside, dev)):  # offloads off: tbf sees real packets
            prefix = [w for w in where if w]
            with contextlib.suppress(FileNotFoundError, subprocess.CalledProcessError):
                run(*prefix, "ethtool", "-K", name, "tso", "off", "gso", "off", "gro", "off")
        run("tc", "qdisc", "add", "dev", host, "root", *tbf(down_kbps))  # cloud -> device
        run(*inside, "tc", "qdisc", "add", "dev", dev, "root", *tbf(up_kbps))  # device -> cloud
        return f"10.88.{device}.1"

    def remove(self) -> None:
        for device in self.made:
            run("ip", "link", "del", f"pflh{device}", check=False)
            run("ip", "netns", "del", f"pfl{device}", check=False)
        self.made.clear()


def tbf(kbps: float) -> list[str]:
    """A token bucket at ``kbps``: a burst of one packet (or 2 ms at fast rates), a deep queue.

    A deeper bucket lets a short exchange pass faster than the rate after an idle spell,
    which no modelled link does.
    """
    burst = max(1600, int(kbps * 1000 / 8 * 0.002))
    return ["tbf", "rate", f"{kbps}kbit", "burst", str(burst), "limit", str(4 * 1024 * 1024)]


class Counters(threading.Thread):
    """Every ``SAMPLE_S``: each host-side veth's tx (downlink) and rx (uplink) byte counts."""

    def __init__(self, devices: int):
        super().__init__(daemon=True)
        self.paths = [
            (
                Path(f"/sys/class/net/pflh{d}/statistics/tx_bytes"),
                Path(f"/sys/class/net/pflh{d}/statistics/rx_bytes"),
            )
            for d in range(devices)
        ]
        self.samples: list[tuple[float, list[tuple[int, int]]]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            now = time.time()
            self.samples.append(
                (now, [(int(tx.read_text()), int(rx.read_text())) for tx, rx in self.paths])
            )
            time.sleep(SAMPLE_S)


def spawn(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    """A process in a session of its own (killed with its children at the end)."""
    output = log.open("w")
    return subprocess.Popen(
        command, env=env, start_new_session=True, stdout=output, stderr=subprocess.STDOUT
    )


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=2, help="devices per link class")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--analyze", type=Path, metavar="DIR", help="a finished run's folder")
    parser.add_argument(
        "--fit", action="store_true", help="also print the least-squares transport constants"
    )
    parser.add_argument(
        "--rtt",
        action="store_true",
        help="add each device's round trip with a delaying relay (benchmarks/delay_proxy.py)",
    )
    args = parser.parse_args()
    if args.analyze is not None:
        analyze(args.analyze, args.fit)
        return 0
    if os.geteuid() != 0 or run("ip", "netns", "add", "pfl-probe", check=False).returncode:
        print("skipped: needs root and network namespaces (ip netns add failed)")
        return 0
    run("ip", "netns", "del", "pfl-probe", check=False)
    work = Path(tempfile.mkdtemp(prefix="real-links-"))
    document = scenario_document(args.per_class, args.rounds)
    scenario_file = work / "real-links.yaml"
    scenario_file.write_text(yaml.safe_dump(document, sort_keys=False))
    scenario = parse_scenario(document, str(scenario_file))
    fleet = build_fleet(scenario, scenario.seed)
    node_scenario = prepare_node(scenario)  # also trains the starting model into the cache
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
    log_path = work / "exchanges.jsonl"
    links = Links(len(fleet))
    counters = Counters(len(fleet))
    relays: list[DelayProxy] = []
    (work / SETUP_FILE).write_text(json.dumps({"rtt": args.rtt}))
    try:
        with processes() as started:
            env[EXCHANGE_LOG_ENV] = str(log_path)  # the cloud's exchanges, the devices' answers
            link_env = {**env, "FLWR_HOME": str(work / "link")}
            superlink = [str(BIN / "flower-superlink"), "--insecure", "--host", "0.0.0.0",
                         "--port", str(PORT),
                         "--disable-runtime-dependency-installation"]  # fmt: skip
            started.append(spawn(superlink, link_env, work / "link.log"))
            for profile in fleet:
                host = links.make(
                    profile.index, profile.downlink_bps / 1000, profile.uplink_bps / 1000
                )
                port = PORT
                if args.rtt:  # the node reaches the SuperLink through a relay on its link
                    port = PORT + 1
                    relays.append(DelayProxy((host, port), ("127.0.0.1", PORT), profile.rtt_s / 2))
                    relays[-1].start()
                    relays[-1].ready.wait(10)
                node = ["ip", "netns", "exec", f"pfl{profile.index}", flower_supernode(),
                        "--insecure", "--superlink", f"{host}:{port}", "--port", "9094",
                        "--node-config", node_config(node_scenario, profile.index)]  # fmt: skip
                node_env = {**env, "FLWR_HOME": str(work / f"node{profile.index}")}
                started.append(spawn(node, node_env, work / f"node{profile.index}.log"))
            counters.start()
            for method in ("fedavg", "persona"):
                done = subprocess.run(
                    [str(BIN / "simulate"), str(scenario_file), "--methods", method,
                     "--no-progress", "--out", str(work / "runs"),
                     "--set", "engine.kind=deployment",
                     "--set", f"engine.superlink=127.0.0.1:{PORT}"],
                    env=env, capture_output=True, text=True,
                )  # fmt: skip
                if done.returncode != 0:
                    print(f"{method}: the run failed: {done.stderr.strip()[-2000:]}")
                    return 1
            counters.stopping.set()
            counters.join()
    finally:
        counters.stopping.set()
        for relay in relays:
            relay.stop()
        links.remove()
    import numpy as np

    np.savez(
        work / "counters.npz",
        times=np.array([t for t, _ in counters.samples]),
        counts=np.array([c for _, c in counters.samples], dtype=np.int64),
    )
    analyze(work, args.fit)
    print(f"(logs, counters and run folders: {work}; the table again: --analyze {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
