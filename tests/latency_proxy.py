"""A TCP proxy on 127.0.0.1 that delays every byte by a set time each way: a database a long
round trip away (another region, a saturated link), for the tests that need one. The delay may
change while connections are open, as a network's does."""

import asyncio
import contextlib
import threading
from collections.abc import Generator

CHUNK = 65536


class LatencyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        # Added to each direction, so twice this to each round trip; read for every chunk.
        self.delay_seconds = 0.0

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy `reader` to `writer`, each chunk the delay after it arrived, in order."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not chunk:
                    writer.close()
                    return
                writer.write(chunk)
                await writer.drain()

        delivering = asyncio.create_task(deliver())
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(CHUNK):
                queue.put_nowait((loop.time() + self.delay_seconds, chunk))
        queue.put_nowait((loop.time() + self.delay_seconds, b""))
        with contextlib.suppress(ConnectionError):
            await delivering

    async def _serve(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        try:
            server, to_server = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            to_client.close()
            return
        await asyncio.gather(self._pipe(client, to_server), self._pipe(server, to_client))


@contextlib.contextmanager
def latency_proxy(upstream_port: int) -> Generator[LatencyProxy]:
    """A proxy to `upstream_port` listening on a free port of 127.0.0.1 (no delay to begin
    with), in a thread of its own; stopped at the end."""
    proxy = LatencyProxy(upstream_port)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(proxy._serve, "127.0.0.1", 0))
        proxy.port = server.sockets[0].getsockname()[1]
        started.set()
        loop.run_forever()
        server.close()
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
