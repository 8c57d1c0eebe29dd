"""A real `backoffice serve` process on 127.0.0.1, and an async client that signs for it.

For the tests that need what an in-process client cannot give: several worker processes,
real sockets, a database that goes away underneath, and signals. Each process is bounded in
time (`timeout`), so it stops itself even if a test run is killed.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

import signing
from settings import ROOT

STARTUP_SECONDS = 120
LIFETIME_SECONDS = 900
BACKOFFICE = str(Path(sys.executable).parent / "backoffice")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BackofficeServer:
    """`backoffice serve` with the given `APP_*` variables; `start()` waits until it answers."""

    def __init__(
        self,
        environment: dict[str, str],
        log: Path,
        *,
        workers: int = 1,
        lifetime_seconds: int = LIFETIME_SECONDS,
        stderr: Path | None = None,
    ) -> None:
        """`log` takes stdout, and stderr too unless `stderr` names a file of its own."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.stderr = stderr
        # No lame duck unless a test asks for one: stopping a server would take seconds more.
        self.environment = {
            **os.environ,
            "APP_LOG_LEVEL": "WARNING",
            "APP_SHUTDOWN_LAME_DUCK_SECONDS": "0",
            **environment,
        }
        self.command = [
            "timeout",
            str(lifetime_seconds),
            BACKOFFICE,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "BackofficeServer":
        with contextlib.ExitStack() as files:
            output = files.enter_context(self.log.open("ab"))
            errors = files.enter_context(self.stderr.open("ab")) if self.stderr else None
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.environment,
                stdout=output,
                stderr=errors or subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start-up:\n{self.log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/openapi.json", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"the server did not answer in {STARTUP_SECONDS} s:\n{self.log.read_text()}"
        )

    def terminate(self) -> None:
        """SIGTERM, as an orchestrator sends it (`timeout` passes it on to the server)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, seconds: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=seconds)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "BackofficeServer":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class _Timestamps:
    """Distinct millisecond timestamps, so that identical concurrent requests sign differently
    (replay protection accepts each signature once)."""

    def __init__(self) -> None:
        self.last = 0
        self.lock = threading.Lock()

    def next(self) -> int:
        with self.lock:
            self.last = max(self.last + 1, signing.now_ms())
            return self.last


TIMESTAMPS = _Timestamps()


class AsyncSignedClient:
    """Signs each request afresh (version 2), as the frontend does, over a real socket."""

    def __init__(self, base_url: str, key: str, *, timeout: float = 30) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self.key = key

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        body = b"" if json is None else orjson.dumps(json)
        all_headers = {"Content-Type": "application/json"} if json is not None else {}
        all_headers |= headers or {}
        all_headers |= signing.signed_headers(
            method, path, body, self.key, 2, timestamp=TIMESTAMPS.next(), headers=all_headers
        )
        return await self.http.request(method, path, content=body, headers=all_headers)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)

    async def aclose(self) -> None:
        await self.http.aclose()


def run_backoffice(
    *arguments: str, cwd: Path, **variables: str
) -> subprocess.CompletedProcess[str]:
    """`backoffice ARGUMENTS` run to its end (at most a minute), with only the `APP_*` variables
    given, its stdout and stderr kept apart."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    environment |= variables
    return subprocess.run(
        ["timeout", "60", BACKOFFICE, *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=90,
    )


def signed_server_environment(database_url: str, key: str, **extra: str) -> dict[str, str]:
    return {"APP_DB_URL": database_url, "APP_SECRET_KEY": key, "APP_DEBUG": "false", **extra}
