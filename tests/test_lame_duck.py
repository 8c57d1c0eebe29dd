"""SIGTERM on a real `backoffice serve`: readiness fails at once, requests are still served for
the lame-duck period (each answer closing its connection), and only then does the listener close."""

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import URL

from server.lame_duck import drop_new_connections
from settings import Settings
from tests.backoffice_process import AsyncSignedClient, BackofficeServer, signed_server_environment
from tests.conftest import TEST_KEY, fresh_postgres_database
from tests.problem_assertions import assert_problem

pytestmark = pytest.mark.slow

LAME_DUCK_SECONDS = 3.0
# A reset this soon after a probe was sent is its listener closing under it (refuses_connections).
RESET_AT_CLOSE_SECONDS = 0.5


@pytest.fixture(scope="module")
def database(postgres_server: URL) -> Iterator[str]:
    for url in fresh_postgres_database(postgres_server):
        yield url.set(drivername="postgresql").render_as_string(hide_password=False)


def signed_get(url: str, path: str) -> httpx.Response:
    async def once() -> httpx.Response:
        client = AsyncSignedClient(url, TEST_KEY, timeout=5)
        try:
            return await client.get(path)
        finally:
            await client.aclose()

    return asyncio.run(once())


def refuses_connections(url: str) -> bool:
    """True once nothing listens; a connection held and then reset fails the test.

    A probe that reaches the listen queue in the instant the last listener closes is reset at
    once: the kernel does that to whatever is still queued, for any server (about one run in
    twenty hit it). A connection the kernel accepted for a socket that nobody reads any more
    (the supervisor's copy, kept open) is held until that socket closes, then reset.
    """
    sent = time.monotonic()
    try:
        httpx.get(f"{url}/health/live", timeout=3)
    except httpx.ConnectError:
        return True
    except httpx.TimeoutException:
        return False  # a slow answer on a loaded machine: still listening
    except (httpx.RemoteProtocolError, httpx.ReadError):
        if time.monotonic() - sent < RESET_AT_CLOSE_SECONDS:
            return True
        raise
    return False


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_fails_readiness_at_once_and_serves_until_the_lame_duck_ends(
    database: str, tmp_path: Path, workers: int
) -> None:
    environment = signed_server_environment(
        database, TEST_KEY, APP_SHUTDOWN_LAME_DUCK_SECONDS=str(LAME_DUCK_SECONDS)
    )
    with BackofficeServer(environment, tmp_path / "server.log", workers=workers) as server:
        assert httpx.get(f"{server.url}/health/ready").status_code == 200
        server.terminate()
        signalled = time.monotonic()
        time.sleep(0.3)

        ready = httpx.get(f"{server.url}/health/ready")
        served = signed_get(server.url, "/api/heroes")
        assert time.monotonic() - signalled < LAME_DUCK_SECONDS

        assert_problem(ready, 503, "the service is shutting down")
        assert ready.headers["retry-after"] == "1"
        assert served.status_code == 200
        while not refuses_connections(server.url):
            assert time.monotonic() - signalled < LAME_DUCK_SECONDS + 10
            time.sleep(0.05)
        assert time.monotonic() - signalled >= LAME_DUCK_SECONDS - 0.2
        # One worker re-raises the SIGTERM it was handed; uvicorn's supervisor exits with 0.
        assert server.wait(15) == (-signal.SIGTERM if workers == 1 else 0)


class KeepAliveClient:
    """Sends signed GETs and POSTs, one after another, on the connection it keeps (httpx's
    pool), until a new connection is refused: what a client or a proxy does across a restart."""

    def __init__(self, url: str, number: int) -> None:
        self.client = AsyncSignedClient(url, TEST_KEY, timeout=10)
        self.number = number
        # (seconds since the start when sent, and when answered, method, response).
        self.answered: list[tuple[float, float, str, httpx.Response]] = []
        self.lost: list[str] = []

    async def run(self, started: float) -> None:
        try:
            for sent in range(10_000):
                method = "POST" if sent % 2 else "GET"
                at = time.monotonic() - started
                try:
                    if method == "POST":
                        body = {"name": f"keeper {self.number}-{sent}", "secret_name": "K"}
                        response = await self.client.post("/api/heroes", json=body)
                    else:
                        response = await self.client.get("/api/heroes?limit=1")
                except httpx.ConnectError:
                    return  # nothing was sent: the listener has closed
                except httpx.TransportError as error:
                    self.lost.append(f"{method} sent at {at:.2f} s: {error!r}")
                    return
                self.answered.append((at, time.monotonic() - started, method, response))
                await asyncio.sleep(0.01)
        finally:
            await self.client.aclose()


def test_keep_alive_requests_sent_across_a_sigterm_are_all_answered(
    database: str, tmp_path: Path
) -> None:
    """Once draining starts, every answer says `Connection: close`: the next request opens a
    new connection, which is either served or refused outright, never reset under it."""
    environment = signed_server_environment(
        database, TEST_KEY, APP_SHUTDOWN_LAME_DUCK_SECONDS=str(LAME_DUCK_SECONDS)
    )
    with BackofficeServer(environment, tmp_path / "server.log") as server:
        clients = [KeepAliveClient(server.url, n) for n in range(4)]

        async def scenario() -> float:
            started = time.monotonic()
            running = [asyncio.create_task(client.run(started)) for client in clients]
            await asyncio.sleep(1)
            server.terminate()
            signalled = time.monotonic() - started
            await asyncio.wait_for(asyncio.gather(*running), LAME_DUCK_SECONDS + 15)
            return signalled

        signalled = asyncio.run(scenario())
        server.wait(15)

    assert [lost for client in clients for lost in client.lost] == []
    answered = [answer for client in clients for answer in client.answered]
    before = [response for _, done, _, response in answered if done < signalled]
    draining = [response for sent, _, _, response in answered if sent > signalled + 0.5]
    assert len(draining) > 20, "too few requests met the lame duck"
    assert all(response.status_code in (200, 201) for *_, response in answered)
    assert all(response.headers.get("connection") == "close" for response in draining)
    assert not any(response.headers.get("connection") == "close" for response in before)
    created = [response.json()["id"] for *_, method, response in answered if method == "POST"]
    with psycopg.connect(database) as conn:
        stored = conn.execute("SELECT count(*) FROM heroes WHERE id = ANY(%s)", [created])
        assert stored.fetchone() == (len(created),)


def test_a_second_sigterm_is_ignored_and_a_sigint_ends_the_lame_duck_at_once(
    database: str, tmp_path: Path
) -> None:
    environment = signed_server_environment(database, TEST_KEY, APP_SHUTDOWN_LAME_DUCK_SECONDS="60")
    with BackofficeServer(environment, tmp_path / "server.log") as server:
        server.terminate()
        time.sleep(0.5)
        server.terminate()
        time.sleep(0.5)
        assert httpx.get(f"{server.url}/health/ready").status_code == 503
        assert server.process is not None
        server.process.send_signal(signal.SIGINT)
        stopped = time.monotonic()

        with contextlib.suppress(httpx.TransportError):
            while True:
                httpx.get(f"{server.url}/health/live", timeout=1)
                time.sleep(0.05)
        # The re-raised SIGINT becomes a KeyboardInterrupt, which `uvicorn.run` ends with 0.
        assert server.wait(15) == 0
        assert time.monotonic() - stopped < 10


def test_the_lame_duck_lasts_a_few_seconds_outside_development_and_none_in_it() -> None:
    production = Settings(
        _env_file=None,  # type: ignore[call-arg]
        secret_key="a-strong-signing-key-for-the-lame-duck-0123456789",
    )
    development = Settings(_env_file=None, debug=True)  # type: ignore[call-arg]
    chosen = Settings(_env_file=None, debug=True, shutdown_lame_duck_seconds=1.5)  # type: ignore[call-arg]

    assert (production.lame_duck_seconds, development.lame_duck_seconds) == (5.0, 0.0)
    assert chosen.lame_duck_seconds == 1.5


def test_a_filtered_listener_serves_its_queue_and_lets_no_new_connection_in() -> None:
    """The last moments of the lame duck, on a real socket of its own (the filter is never put
    on another listener of the test process): a connection already queued is accepted and read;
    a new one is never completed, so its client sends nothing. Finding the server's listeners
    is the keep-alive test's part."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        address = listener.getsockname()
        queued = socket.create_connection(address, timeout=2)
        queued.sendall(b"GET /health/live HTTP/1.1\r\n\r\n")

        drop_new_connections(listener)

        late = socket.socket()
        late.settimeout(0.5)
        with pytest.raises(TimeoutError):  # its SYN is dropped: no handshake, nothing sent
            late.connect(address)
        late.close()
        (accepted, _) = listener.accept()
        with accepted, queued:
            assert accepted.recv(100).startswith(b"GET /health/live")
