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
from simulator.world.transport import (  # noqa: E402
    MessageSize,
    Transfer,
    Transport,
    transfer_s,
)

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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=2, help="devices per link class")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--analyze", type=Path, metavar="DIR", help="a finished run's folder")
    parser.add_argument(
        "--fit", action="store_true", help="also print the least-squares transport constants"
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
    analyze(work, args.fit)
    print(f"(logs, counters and run folders: {work}; the table again: --analyze {work})")
    return 0


@dataclass(frozen=True)
class Phase:
    """One message on one device's link, as predicted and as the counters saw it."""

    method: str
    link: str
    direction: str  # "down": the cloud's message; "up": the device's reply
    payload_s: float  # the payload transport's prediction (records at the median rate)
    predicted: Transfer
    predicted_s: float
    measured_s: float
    forward_bytes: int  # measured, in the message's direction
    backward_bytes: int
    size: MessageSize  # as sent, the simulation's own records included
    metered: int  # the payload meter's bytes of the message (its records, billed ones only)
    forward_bps: float
    backward_bps: float


def bursts(samples, device: int, start: float, end: float) -> list[list[float]]:
    """[first, last, bytes down, bytes up] of each stretch of traffic on a device's link.

    Traffic in either direction counts; an idle gap longer than ``GAP_S`` ends a burst.
    """
    found: list[list[float]] = []
    previous = None
    for t, counts in samples:
        if not start <= t <= end:
            continue
        down, up = counts[device]
        if previous is not None and (down > previous[0] or up > previous[1]):
            grown = [down - previous[0], up - previous[1]]
            if found and t - found[-1][1] <= GAP_S:
                found[-1][1] = t
                found[-1][2] += grown[0]
                found[-1][3] += grown[1]
            else:
                found.append([t, t, *grown])
        previous = (down, up)
    return found


def phases(fleet, samples, exchanges: list[dict], answers: list[dict]) -> list[Phase]:
    """Each logged exchange's download and upload, set against ``flower-http``'s prediction.

    The download is the largest burst between the cloud's push and the moment the
    device began its answer, the upload the largest between the end of its answer
    and the cloud's pull; the smaller bursts there are the SuperNode's polls and
    heartbeats, which go on whatever the round does.
    """
    transport = Transport("flower-http")
    profiles = {p.index: p for p in fleet}
    answered = {(a["device"], a["method"], a["round"], a["type"]): a for a in answers}
    found = []
    for line in exchanges:
        device = int(line["device"])
        answer = answered.get((device, line["method"], line["round"], line["type"]))
        if answer is None:
            continue
        profile = profiles[device]
        rates = {"down": (profile.downlink_bps, profile.uplink_bps)}
        rates["up"] = rates["down"][::-1]
        windows = {
            "down": (line["pushed"], answer["entered"]),
            "up": (answer["left"], line["replied"] + 1.0),
        }
        for direction, (start, end) in windows.items():
            seen = bursts(samples, device, start, end)
            if not seen:
                continue
            first, last, down_bytes, up_bytes = max(seen, key=lambda b: b[2] + b[3])
            if direction == "down":
                size = MessageSize(int(line["sent_bytes"]), int(line["sent_objects"]))
                predicted, metered = transport.download(size), int(line["download-bytes"])
                forward, backward = down_bytes, up_bytes
            else:
                size = MessageSize(int(line["reply_bytes"]), int(line["reply_objects"]))
                predicted, metered = transport.upload(size), int(line["upload-bytes"])
                forward, backward = up_bytes, down_bytes
            forward_bps, backward_bps = rates[direction]
            found.append(
                Phase(
                    method=line["method"],
                    link=profile.device_class,
                    direction=direction,
                    payload_s=transfer_s(metered, forward_bps),
                    predicted=predicted,
                    predicted_s=predicted.seconds(forward_bps, backward_bps),
                    forward_bps=forward_bps,
                    backward_bps=backward_bps,
                    # the first packet left before the first sample that saw it
                    measured_s=last - first + 1514 * 8 / min(forward_bps, backward_bps),
                    forward_bytes=int(forward),
                    backward_bytes=int(backward),
                    size=size,
                    metered=metered,
                )
            )
    return found


def report(found: list[Phase]) -> None:
    """Two tables: seconds per transfer, and bytes per link direction as billed.

    Seconds, per method, link class and direction of the message: the payload
    transport's prediction (records at the link's rate), ``flower-http``'s, and
    the measured burst, with the median error of ``flower-http``'s and the 90th
    percentile of its absolute error. Bytes, per method and link class: what
    ``flower-http`` bills each direction of the device's link (a download's
    forward bytes and an upload's backward bytes are downlink), against what
    the interface counted, summed over the transfers, beside the payload meter's.
    """
    groups: dict[tuple[str, str, str], list[Phase]] = {}
    for phase in found:
        groups.setdefault((phase.method, phase.link, phase.direction), []).append(phase)
    print(
        f"{'method':<8} {'link':<4} {'dir':<4} {'n':>3} {'payload s':>9} {'model s':>8} "
        f"{'measured s':>10} {'median err':>10} {'p90 |err|':>9}"
    )
    for (method, link, direction), group in sorted(groups.items()):
        errors = [(p.measured_s - p.predicted_s) / p.predicted_s for p in group]
        print(
            f"{method:<8} {link:<4} {direction:<4} {len(group):>3} "
            f"{statistics.median(p.payload_s for p in group):>9.3f} "
            f"{statistics.median(p.predicted_s for p in group):>8.3f} "
            f"{statistics.median(p.measured_s for p in group):>10.3f} "
            f"{statistics.median(errors):>+10.1%} "
            f"{percentile([abs(e) for e in errors], 0.9):>9.1%}"
        )
    errors = [abs(p.measured_s - p.predicted_s) / p.predicted_s for p in found]
    print(f"all transfers: median |time error| {statistics.median(errors):.1%}, n={len(found)}")
    print()
    print(
        f"{'method':<8} {'link':<4} {'link dir':<8} {'payload B':>10} {'billed B':>10} "
        f"{'counted B':>10} {'ratio':>6}"
    )
    links = sorted({(p.method, p.link) for p in found})
    for method, link in links:
        for side in ("down", "up"):
            payload = billed = counted = 0
            for p in found:
                if (p.method, p.link) != (method, link):
                    continue
                if p.direction == side:  # the message's own bytes on this side
                    payload += p.metered
                    billed += p.predicted.forward_bytes
                    counted += p.forward_bytes
                else:  # the other transfer's requests or acknowledgements
                    billed += p.predicted.backward_bytes
                    counted += p.backward_bytes
            print(
                f"{method:<8} {link:<4} {side:<8} {payload:>10,} {billed:>10,} "
                f"{counted:>10,} {counted / billed:>6.3f}"
            )


def fit(found: list[Phase]) -> None:
    """The constants of a request-per-object runtime that fit the measured transfers.

    Bytes, per direction of a message: forward and backward as
    ``a * payload + b * objects + c`` by least squares (objects on the wire: the
    message's own and its record dict's besides the meter's). Seconds, on the
    measured bytes: the overlap and each direction's seconds per request round
    whose medians of the error per method, link and direction are smallest on
    average (a grid of 5 ms and 0.05 steps).
    """
    import numpy as np

    for direction in ("down", "up"):
        group = [p for p in found if p.direction == direction]
        design = np.array([[p.size.payload_bytes, max(p.size.objects, 1) + 1, 1] for p in group])
        for name in ("forward_bytes", "backward_bytes"):
            measured = np.array([getattr(p, name) for p in group], dtype=float)
            (a, b, c), *_ = np.linalg.lstsq(design, measured, rcond=None)
            print(f"{direction} {name}: {a:.4f} x payload + {b:.1f} x objects + {c:.1f}")
    groups: dict[tuple[str, str, str], list[Phase]] = {}
    for phase in found:
        groups.setdefault((phase.method, phase.link, phase.direction), []).append(phase)

    def miss(overlap: float, down_s: float, up_s: float) -> float:
        medians = []
        for group in groups.values():
            errors = []
            for p in group:
                per_round = down_s if p.direction == "down" else up_s
                timed = Transfer(p.forward_bytes, p.backward_bytes, p.predicted.request_rounds,
                                 p.predicted.request_rounds * per_round, overlap)  # fmt: skip
                model_s = timed.seconds(p.forward_bps, p.backward_bps)
                errors.append((p.measured_s - model_s) / model_s)
            medians.append(abs(statistics.median(errors)))
        return sum(medians) / len(medians)

    steps = [0.005 * k for k in range(1, 21)]
    best = min(
        ((miss(o / 20, d, u), o / 20, d, u) for o in range(21) for d in steps for u in steps),
        key=lambda t: t[0],
    )
    print(f"overlap {best[1]:.2f}, request_s down {best[2]:.3f}, up {best[3]:.3f} "
          f"(mean |median error| per group {best[0]:.1%})")  # fmt: skip


def analyze(work: Path, refit: bool = False) -> None:
    """The table again from a finished run's folder (its scenario, logs and counters)."""
    import numpy as np

    scenario_file = work / "real-links.yaml"
    scenario = parse_scenario(yaml.safe_load(scenario_file.read_text()), str(scenario_file))
    saved = np.load(work / "counters.npz")
    samples = [(float(t), c.tolist()) for t, c in zip(saved["times"], saved["counts"], strict=True)]
    log = work / "exchanges.jsonl"
    exchanges = [json.loads(x) for x in log.read_text().splitlines()]
    answers = [json.loads(x) for x in log.with_suffix(".devices.jsonl").read_text().splitlines()]
    found = phases(build_fleet(scenario, scenario.seed), samples, exchanges, answers)
    report(found)
    if refit:
        fit(found)


if __name__ == "__main__":
    sys.exit(main())
