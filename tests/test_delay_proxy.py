"""The benchmark's delaying relay: an answer waits a round trip, bytes arrive whole, in order."""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "delay_proxy", Path(__file__).resolve().parent.parent / "benchmarks" / "delay_proxy.py"
)
_MODULE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_MODULE)
DelayProxy = _MODULE.DelayProxy


def _server(answer_once: bool) -> tuple[socket.socket, int]:
    """A loopback echo server; ``answer_once``: it closes each connection after one answer."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                while data := connection.recv(65536):
                    connection.sendall(data)
                    if answer_once:
                        break

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def _relay(port: int, delay_s: float) -> tuple[DelayProxy, int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        listen = probe.getsockname()[1]
    relay = DelayProxy(("127.0.0.1", listen), ("127.0.0.1", port), delay_s)
    relay.start()
    assert relay.ready.wait(10)
    return relay, listen


def test_an_answer_comes_one_round_trip_later_whole_and_in_order():
    server, port = _server(answer_once=False)
    relay, listen = _relay(port, delay_s=0.1)
    try:
        with socket.create_connection(("127.0.0.1", listen)) as client:
            payload = bytes(range(256)) * 800  # 200 KB, several chunks
            started = time.perf_counter()
            client.sendall(payload)
            received = b""
            while len(received) < len(payload):
                received += client.recv(65536)
            assert time.perf_counter() - started >= 0.2  # half a round trip each way
            assert received == payload
    finally:
        relay.stop()
        server.close()
    assert not relay.is_alive()


def test_a_connection_the_server_closes_is_closed_for_the_client_too():
    server, port = _server(answer_once=True)
    relay, listen = _relay(port, delay_s=0.05)
    try:
        with socket.create_connection(("127.0.0.1", listen)) as client:
            client.sendall(b"ping")
            assert client.recv(100) == b"ping"
            client.settimeout(5)
            assert client.recv(100) == b""  # closed, not left half open
    finally:
        relay.stop()
        server.close()
