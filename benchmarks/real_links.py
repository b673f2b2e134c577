"""The simulated clock and byte meter against real links shaped like 2G, 3G and 4G.

    sudo python benchmarks/real_links.py [--per-class 2] [--rounds 3] [--keep]

Each SuperNode runs in a network namespace of its own, joined to the
SuperLink's by a veth pair whose two egresses are shaped with ``tc tbf``
(token bucket) to its device's downlink and uplink rates (the presets' medians
for 2G, 3G and 4G; ``netem`` is not available, so no delay is added and the
profile's round trip, which the time model adds separately, is left out of
both sides). FedAvg and Persona then run on the deployment engine with an
exchange log (``PERSONA_FLEET_EXCHANGE_LOG``): for every training reply, when
the cloud pushed the message and pulled the reply, and what the device
metered (payload bytes; predicted download and upload seconds). A sampler
reads each veth's byte counters every 2 ms; within each device's exchange
window the traffic is cut into transfers at idle gaps, and the printed table
sets, per method and link class, the predicted transfer seconds against the
measured ones (median error and 90th percentile of the absolute error over
device-rounds), and the metered bytes against the bytes the interface
counted in those windows (IP, TCP, TLS-less HTTP and Flower's framing
included).

It needs root (``ip netns``, ``tc``) and skips with a message where
namespaces cannot be made. Everything it creates (namespaces, links,
processes) is removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import signal
import statistics
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

from simulator.engine.deployment_grid import EXCHANGE_LOG_ENV  # noqa: E402
from simulator.engine.supernode_start import flower_supernode, node_config, prepare_node  # noqa: E402
from simulator.scenario.loading import parse_scenario  # noqa: E402
from simulator.scenario.presets import PRESETS  # noqa: E402
from simulator.world.fleet import build_fleet  # noqa: E402

LINK_CLASSES = {"2g": "2g-lowend", "3g": "3g-midrange", "4g": "4g-highend"}
SAMPLE_S = 0.002
GAP_S = 0.5  # idle time that separates two transfers (above a 1500-byte packet at 60 kbit/s)
PORT = 19300
BIN = Path(sys.executable).parent


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=check, capture_output=True, text=True)


def scenario_document(per_class: int, rounds: int) -> dict:
    """The deployment scenario with one fleet class per link preset, every rate at its median."""
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
    """A token bucket at ``kbps``: a burst of 10 ms (at least two packets), a deep queue."""
    burst = max(3200, int(kbps * 1000 / 8 * 0.01))
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


def transfers(samples, device: int, direction: int, start: float, end: float, rate_bps: float):
    """(seconds, bytes) of each transfer on one link direction within [start, end].

    A transfer runs from the first sample whose count grew to the last one, and
    ends at an idle gap longer than ``GAP_S``.
    """
    found: list[list[float]] = []  # [first grown, last grown, bytes]
    previous = None
    for t, counts in samples:
        if not start <= t <= end:
            continue
        count = counts[device][direction]
        if previous is not None and count > previous:
            if found and t - found[-1][1] <= GAP_S:
                found[-1][1] = t
                found[-1][2] += count - previous
            else:
                found.append([t, t, count - previous])
        previous = count
    # A transfer's first packet left before the first sample that saw it: add one packet's time.
    return [(last - first + 1500 * 8 / rate_bps, int(size)) for first, last, size in found]


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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=2, help="devices per link class")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--analyze", type=Path, metavar="DIR", help="a finished run's folder")
    args = parser.parse_args()
    if args.analyze is not None:
        analyze(args.analyze)
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
    try:
        with processes() as started:
            link_env = {**env, "FLWR_HOME": str(work / "link"), EXCHANGE_LOG_ENV: str(log_path)}
            superlink = [str(BIN / "flower-superlink"), "--insecure", "--host", "0.0.0.0",
                         "--port", str(PORT),
                         "--disable-runtime-dependency-installation"]  # fmt: skip
            started.append(spawn(superlink, link_env, work / "link.log"))
            for profile in fleet:
                host = links.make(
                    profile.index, profile.downlink_bps / 1000, profile.uplink_bps / 1000
                )
                node = ["ip", "netns", "exec", f"pfl{profile.index}", flower_supernode(),
                        "--insecure", "--superlink", f"{host}:{PORT}", "--port", "9094",
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
        links.remove()
    import numpy as np

    np.savez(
        work / "counters.npz",
        times=np.array([t for t, _ in counters.samples]),
        counts=np.array([c for _, c in counters.samples], dtype=np.int64),
    )
    analyze(work)
    print(f"(logs, counters and run folders: {work}; the table again: --analyze {work})")
    return 0


def report(fleet, samples, exchanges: list[dict]) -> None:
    """The table: per method and link class, predicted against measured time and bytes.

    In each exchange window the largest transfer per direction is the message
    (or the reply) itself: its duration is the measured time and its bytes
    what the wire carried for the metered payload. The rest of the window's
    traffic is the SuperNode's own polling and heartbeats, which no round
    bills: it is printed as bytes per minute.
    """
    classes = {p.index: p.device_class for p in fleet}
    rates = {p.index: (p.downlink_bps, p.uplink_bps) for p in fleet}
    groups: dict[tuple[str, str, str], dict[str, float | list]] = {}
    for line in exchanges:
        device = int(line["device"])
        window = (line["pushed"], line["replied"])
        for direction, (name, bytes_key, seconds_key) in enumerate(
            (("down", "download-bytes", "download-s"), ("up", "upload-bytes", "upload-s"))
        ):
            group = groups.setdefault(
                (line["method"], classes[device], name),
                {"pairs": [], "metered": 0, "wire": 0, "other": 0, "window_s": 0.0},
            )
            seen = transfers(samples, device, direction, *window, rates[device][direction])
            payload = max(seen, key=lambda t: t[1], default=(0.0, 0))
            group["metered"] += int(line[bytes_key])
            group["wire"] += payload[1]
            group["other"] += sum(size for _, size in seen) - payload[1]
            group["window_s"] += window[1] - window[0]
            if float(line[seconds_key]) > 0:
                group["pairs"].append((float(line[seconds_key]), payload[0]))
    print(
        f"{'method':<8} {'link':<4} {'dir':<4} {'n':>3} {'predicted s':>11} {'measured s':>10} "
        f"{'median err':>10} {'p90 |err|':>9} {'metered B':>10} {'wire B':>10} {'ratio':>6} "
        f"{'other B/min':>11}"
    )
    for (method, link, name), group in sorted(groups.items()):
        pairs = group["pairs"]
        if not pairs:
            continue
        errors = [(m - p) / p for p, m in pairs]
        print(
            f"{method:<8} {link:<4} {name:<4} {len(pairs):>3} "
            f"{statistics.median(p for p, _ in pairs):>11.3f} "
            f"{statistics.median(m for _, m in pairs):>10.3f} "
            f"{statistics.median(errors):>+10.1%} "
            f"{percentile([abs(e) for e in errors], 0.9):>9.1%} "
            f"{group['metered']:>10,} {group['wire']:>10,} "
            f"{group['wire'] / group['metered']:>6.3f} "
            f"{60 * group['other'] / group['window_s']:>11,.0f}"
        )


def analyze(work: Path) -> None:
    """The table again from a finished run's folder (its scenario, log and counters)."""
    import numpy as np

    scenario_file = work / "real-links.yaml"
    scenario = parse_scenario(yaml.safe_load(scenario_file.read_text()), str(scenario_file))
    saved = np.load(work / "counters.npz")
    samples = [(float(t), c.tolist()) for t, c in zip(saved["times"], saved["counts"], strict=True)]
    exchanges = [json.loads(x) for x in (work / "exchanges.jsonl").read_text().splitlines()]
    report(build_fleet(scenario, scenario.seed), samples, exchanges)


if __name__ == "__main__":
    sys.exit(main())
