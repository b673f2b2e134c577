"""What a message costs on a runtime's wire beyond its records: bytes both ways, request rounds.

The payload meter (``simulator.engine.metering``) weighs a message's records.
A real runtime moves more than that, and in both directions. Flower 1.41's
SuperNode talks to the SuperLink in HTTP/1.1 requests, each with about 840
bytes of headers (the node's public key and signature among them): a download
is the poll whose answer carries the message and its object tree, one request
per object of the message (two at a time), and a receipt; an upload is one
request with the message and its tree, then one request per object the
SuperLink lacks. The message itself is one more object besides those the
meter counts (its record dict and everything in it). TCP/IP adds 66 bytes
per packet of up to 1,448 payload bytes, and acknowledgements the other way.
A 2.5 KB reply in 4 objects then costs about 12 KB of uplink, and
downloading a 39 KB model in 15 objects about 48 KB down and 22 KB up.

``fleet.transport.runtime`` chooses the model:

- ``payload`` (the default): a message costs its records' bytes in its own
  direction and nothing else; a device-round pays one round trip of latency.
  What every published table of this project was measured with.
- ``flower-http``: the costs above, fitted in ``benchmarks/real_links.py``
  from captures of Flower 1.41.0's SuperNode on shaped links (constants in
  ``FLOWER_HTTP``). A device-round pays a round trip per request round.

A transfer's seconds follow its bottleneck: the forward bytes at the rate in
the message's direction, the backward bytes (requests, acknowledgements) at
the other direction's rate, or the request rounds at the runtime's seconds per
round (``request_s``: processing in the SuperLink and the SuperNode, measured
on 2 cores), whichever is longest, plus a share (``overlap``) of the other two:
two requests in flight hide most, not all, of one part behind another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MessageSize:
    """What the payload meter found in a message: serialized bytes and distinct objects."""

    payload_bytes: int
    objects: int


@dataclass(frozen=True)
class Transfer:
    """One message moving between the cloud and a device, as its runtime moves it.

    ``forward_bytes`` go the message's way (down for a download), ``backward_bytes``
    the other way (requests, acknowledgements); ``request_rounds`` is how many
    request-response rounds it takes one after another (each waits a round trip),
    ``processing_s`` what the two ends spend on them. ``overlap`` is the share of
    the parts other than the bottleneck that still adds to the time.
    """

    forward_bytes: int
    backward_bytes: int
    request_rounds: int
    processing_s: float = 0.0
    overlap: float = 0.0

    def seconds(self, forward_bps: float, backward_bps: float) -> float:
        """Seconds on links of ``forward_bps`` and ``backward_bps`` (infinite when one is down)."""
        low, middle, bottleneck = sorted(
            (
                transfer_s(self.forward_bytes, forward_bps),
                transfer_s(self.backward_bytes, backward_bps),
                self.processing_s,
            )
        )
        if math.isinf(bottleneck):  # a link that is down: never (and no 0 * inf)
            return math.inf
        return bottleneck + self.overlap * (low + middle)


NOTHING = Transfer(0, 0, 0)  # no message came (a phase that only uploads)


def transfer_s(size_bytes: int, bandwidth_bps: float) -> float:
    """Seconds to move ``size_bytes`` at ``bandwidth_bps`` (infinite when the link is down)."""
    if size_bytes <= 0:
        return 0.0
    if bandwidth_bps <= 0.0:
        return math.inf
    return 8.0 * size_bytes / bandwidth_bps


@dataclass(frozen=True)
class RequestCosts:
    """One kind of transfer (a download or an upload) of a request-per-object runtime.

    Bytes both ways, each as so much per message, per object and per payload byte.

    ``*_fixed_bytes`` and ``*_object_bytes`` hold HTTP headers, protobuf
    framing and the object tree; ``*_per_byte`` the packets' headers (forward)
    and the acknowledgements they draw (backward).
    """

    forward_fixed_bytes: float
    forward_object_bytes: float
    forward_per_byte: float
    backward_fixed_bytes: float
    backward_object_bytes: float
    backward_per_byte: float
    fixed_rounds: int  # request rounds besides the objects' (the poll and the receipt, ...)
    request_s: float  # what both ends spend on one request round, measured (see the module)

    def transfer(
        self, size: MessageSize, parallel: int, overlap: float, request_s: float | None
    ) -> Transfer:
        # The meter's objects (an empty content still has its record dict on the wire),
        # and the message itself.
        objects = max(size.objects, 1) + 1
        payload = size.payload_bytes
        forward = (
            payload * self.forward_per_byte
            + objects * self.forward_object_bytes
            + self.forward_fixed_bytes
        )
        backward = (
            payload * self.backward_per_byte
            + objects * self.backward_object_bytes
            + self.backward_fixed_bytes
        )
        rounds = self.fixed_rounds + math.ceil(objects / parallel)
        per_round_s = self.request_s if request_s is None else request_s
        return Transfer(round(forward), round(backward), rounds, rounds * per_round_s, overlap)


@dataclass(frozen=True)
class RuntimeCosts:
    """A runtime that moves a message's objects in requests of their own."""

    download: RequestCosts
    upload: RequestCosts
    parallel_requests: int  # objects in flight at once (Flower: 2)
    overlap: float  # share of a transfer's other parts that adds to its bottleneck


# Flower 1.41.0's SuperNode over HTTP/1.1, insecure (TLS adds its records' bytes), fitted
# on every download and upload of ``benchmarks/real_links.py --fit`` (FedAvg's 39 KB model
# and Persona's messages of 0.2 to 24 KB on 2G, 3G and 4G links; 108 transfers; bytes by
# least squares, seconds by the smallest median error per group). Objects include the
# message's own and its record dict's.
FLOWER_HTTP = RuntimeCosts(
    download=RequestCosts(
        forward_fixed_bytes=955.0,
        forward_object_bytes=417.5,
        forward_per_byte=1.0461,
        backward_fixed_bytes=2575.0,
        backward_object_bytes=1116.8,
        backward_per_byte=0.0308,
        fixed_rounds=2,
        request_s=0.02,
    ),
    upload=RequestCosts(
        forward_fixed_bytes=3465.8,
        forward_object_bytes=1244.4,
        forward_per_byte=1.0479,
        backward_fixed_bytes=1327.3,
        backward_object_bytes=396.9,
        backward_per_byte=0.0400,
        fixed_rounds=1,
        request_s=0.05,
    ),
    parallel_requests=2,
    overlap=0.3,
)


class Transport:
    """The scenario's transport: what each download and upload of a device costs.

    ``runtime`` is ``payload`` or ``flower-http``; ``request_s`` replaces the
    runtime's measured seconds per request round, both ways (None: keep them).
    """

    def __init__(self, runtime: str = "payload", request_s: float | None = None):
        if runtime not in ("payload", "flower-http"):
            raise ValueError(f"unknown transport runtime {runtime!r}")
        self.costs = FLOWER_HTTP if runtime == "flower-http" else None
        self.request_s = request_s

    def download(self, size: MessageSize) -> Transfer:
        """A message from the cloud to the device."""
        if self.costs is None:
            return Transfer(size.payload_bytes, 0, 0)
        costs = self.costs
        return costs.download.transfer(size, costs.parallel_requests, costs.overlap, self.request_s)

    def upload(self, size: MessageSize) -> Transfer:
        """A reply from the device to the cloud."""
        if self.costs is None:
            return Transfer(size.payload_bytes, 0, 0)
        costs = self.costs
        return costs.upload.transfer(size, costs.parallel_requests, costs.overlap, self.request_s)

    def round_trips(self, download: Transfer, upload: Transfer) -> int:
        """Round trips of latency a device-round phase pays: one, or one per request round."""
        if self.costs is None:
            return 1
        return download.request_rounds + upload.request_rounds


def transport_words(runtime: str, request_s: float | None) -> str | None:
    """The run log's line for a transport other than the payload's (None for ``payload``)."""
    if runtime == "payload":
        return None
    costs = FLOWER_HTTP
    seconds = (
        f"{request_s * 1000:g} ms per request round"
        if request_s is not None
        else f"{costs.download.request_s * 1000:g}/{costs.upload.request_s * 1000:g} ms per "
        "download/upload request round"
    )
    return (
        f"transport: {runtime} (bytes and time of Flower 1.41's SuperNode over HTTP/1.1 beside "
        f"the records: a request per object, headers, acknowledgements; {seconds}; a round "
        "trip per request round)"
    )
