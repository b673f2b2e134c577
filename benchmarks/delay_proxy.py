"""A TCP relay that holds every chunk for a fixed time each way: round trips without netem.

``tc netem`` is not available on these machines, so ``benchmarks/real_links.py
--rtt`` puts this relay between each SuperNode's shaped link and the SuperLink:
whatever a SuperNode sends reaches the SuperLink half a round trip later, and
every answer reaches the link half a round trip after the SuperLink gave it.
A request therefore waits one round trip for its answer, as on a real link.
What it does not give is TCP's own view of the delay (the relay's kernel
acknowledges at once, so slow start and window limits see no round trip):
the request-per-round cost is emulated, the bandwidth-delay product is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class DelayProxy(threading.Thread):
    """Relays connections to ``listen`` (host, port) on to ``target``, ``delay_s`` each way."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int], delay_s: float):
        super().__init__(daemon=True)
        self.listen, self.target, self.delay_s = listen, target, delay_s
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._relay, *self.listen)
        self.ready.set()
        async with server:
            await self._stopped.wait()
        relaying = asyncio.all_tasks() - {asyncio.current_task()}
        for task in relaying:  # connections still open at the end: closed quietly
            task.cancel()
        await asyncio.gather(*relaying, return_exceptions=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stopped.set)
        self.join(timeout=5)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        pumps = [
            asyncio.create_task(self._pump(client_r, server_w)),
            asyncio.create_task(self._pump(server_r, client_w)),
        ]
        # One side closed (an idle keep-alive connection the server let go, say): close the
        # other too, so that the client opens a new connection instead of writing into one
        # that no longer reaches the server. The relay stopping closes both as well.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for writer in (client_w, server_w):
            writer.close()
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward what ``reader`` gives, each chunk ``delay_s`` after it came, in order."""
        loop = asyncio.get_running_loop()
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def release() -> None:
            while True:
                due, chunk = await held.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not chunk:
                    return
                writer.write(chunk)
                await writer.drain()

        releasing = asyncio.create_task(release())
        try:
            while chunk := await reader.read(65536):
                held.put_nowait((loop.time() + self.delay_s, chunk))
        finally:
            held.put_nowait((loop.time() + self.delay_s, b""))
            with contextlib.suppress(OSError, ConnectionError):
                await releasing
