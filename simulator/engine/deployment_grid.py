"""The cloud's Grid on a real SuperLink: every message stamped, replies awaited in wall seconds.

Inside the ServerApp of a deployment the Grid talks to a real SuperLink.
``DeploymentGrid`` wraps it for one method-seed run:

- every outgoing message carries ``SIM_RUN`` (the scenario's fingerprint,
  the method, the seed), from which a SuperNode builds the device's world and
  refuses a run of another scenario;
- replies are polled every ``POLL_S`` (Flower's own Grid sleeps 3 s between
  polls, which would blur every measured duration);
- a training exchange waits at most the round's deadline in wall seconds, any
  other at most ``engine.reply_timeout_s``; a device that has not answered by
  then, or whose SuperNode went offline, gets an error reply naming why, so
  the round loop counts it as a failed device-round and goes on;
- with an exchange log (``PERSONA_FLEET_EXCHANGE_LOG``, a file), each reply of
  a training exchange appends a line: when the message was pushed and its
  reply pulled (wall clock, epoch seconds), what the device metered and what
  the message and its reply weighed with the simulation's own records, so
  that ``benchmarks/real_links.py`` can set each device's transfer on its
  shaped link against the time model.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path

from flwr.app import ConfigRecord, Error, Message
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid

from simulator.engine import protocol
from simulator.engine.delegating_grid import DelegatingGrid
from simulator.engine.metering import message_size

POLL_S = 0.05
EXCHANGE_LOG_ENV = "PERSONA_FLEET_EXCHANGE_LOG"
LOGGED_METER = (
    protocol.DEVICE,
    protocol.DOWNLOAD_BYTES,
    protocol.UPLOAD_BYTES,
    protocol.DOWNLOAD_S,
    protocol.UPLOAD_S,
    protocol.STATUS,
)
log = logging.getLogger("persona_fleet")


def run_stamp(fingerprint: str, method: str, seed: int) -> ConfigRecord:
    """The record that tells a SuperNode which run a message belongs to."""
    return ConfigRecord(
        {protocol.FINGERPRINT: fingerprint, protocol.METHOD: method, protocol.SEED: seed}
    )


def missing_reply(message: Message, reason: str) -> Message:
    """An error reply standing in for one that never came."""
    return Message(Error(code=ErrorCode.NODE_UNAVAILABLE, reason=reason), reply_to=message)


class DeploymentGrid(DelegatingGrid):
    """Delegates to a real SuperLink's Grid, for one method-seed run (see the module)."""

    def __init__(
        self,
        grid: Grid,
        stamp: ConfigRecord,
        reply_timeout_s: float,
        exchange_log: Path | None = None,
    ):
        super().__init__(grid)
        self._stamp = stamp
        self._reply_timeout_s = reply_timeout_s
        self._offline: set[int] = set()
        self._exchange_log = exchange_log

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        for message in messages:
            message.content[protocol.SIM_RUN] = self._stamp
        return self._grid.push_messages(messages)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        messages = list(messages)
        if not messages:
            return []
        limit = self._wait_s(messages, timeout)
        started, pushed_at = time.perf_counter(), time.time()
        ids = list(self.push_messages(messages))
        sent = dict(zip(ids, messages, strict=True))
        waiting = set(ids)
        replies: list[Message] = []
        while waiting and time.perf_counter() - started < limit:
            pulled = list(self.pull_messages(list(waiting)))
            self._log_exchange(pushed_at, pulled, sent)
            for reply in pulled:
                waiting.discard(reply.metadata.reply_to_message_id)
                replies.append(self._named(reply, sent))
            if waiting:
                time.sleep(POLL_S)
        for message_id in sorted(waiting):
            message = sent[message_id]
            replies.append(
                missing_reply(
                    message,
                    f"no reply within {limit:g} wall seconds (the device's SuperNode is "
                    "slow, stopped or cut off)",
                )
            )
        return replies

    def _log_exchange(
        self, pushed_at: float, replies: list[Message], sent: dict[str, Message]
    ) -> None:
        """One line per metered training reply, where an exchange log is kept."""
        if self._exchange_log is None or not replies:
            return
        lines, now = [], time.time()
        for reply in replies:
            meter = None if reply.has_error() else reply.content.get(protocol.SIM_METER)
            if not isinstance(meter, ConfigRecord) or protocol.DOWNLOAD_S not in meter:
                continue  # evaluation and control replies: not billed, not timed
            line = {k: meter[k] for k in LOGGED_METER}
            message = sent[reply.metadata.reply_to_message_id]
            config = message.content[protocol.SIM_CONFIG]
            # What crossed the wire, simulation records included (the meter bills without).
            as_sent, as_replied = message_size(message.content), message_size(reply.content)
            line.update(
                sent_bytes=as_sent.payload_bytes,
                sent_objects=as_sent.objects,
                reply_bytes=as_replied.payload_bytes,
                reply_objects=as_replied.objects,
                method=self._stamp[protocol.METHOD],
                round=config[protocol.ROUND],
                type=reply.metadata.message_type,
                pushed=pushed_at,
                replied=now,
            )
            lines.append(json.dumps(line))
        if lines:
            with self._exchange_log.open("a", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")

    def _wait_s(self, messages: list[Message], timeout: float | None) -> float:
        """A training exchange waits for the round's deadline; any other for the reply timeout."""
        limit = self._reply_timeout_s if timeout is None else min(timeout, self._reply_timeout_s)
        config = messages[0].content.get(protocol.SIM_CONFIG)
        if isinstance(config, ConfigRecord) and protocol.DEADLINE_S in config:
            limit = min(limit, float(config[protocol.DEADLINE_S]))
        return limit

    def _named(self, reply: Message, sent: dict[str, Message]) -> Message:
        """A reply; the SuperLink's own 'node offline' error says which node, once in the log."""
        if not reply.has_error() or reply.error.code != ErrorCode.NODE_UNAVAILABLE:
            return reply
        node = int(sent[reply.metadata.reply_to_message_id].metadata.dst_node_id)
        if node not in self._offline:
            self._offline.add(node)
            log.warning(
                "SuperNode %d went offline; its device's later messages count as failed", node
            )
        return missing_reply(
            sent[reply.metadata.reply_to_message_id], "the device's SuperNode went offline"
        )
