"""The service in a real uvicorn process on 127.0.0.1, for clients that send their own bytes.

Schemathesis and the TypeScript client talk HTTP to it exactly as the frontend does; the
process is bounded in time (`timeout`) so that it stops itself even if a test run is killed.
"""

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Generator
from pathlib import Path

import httpx

from settings import ROOT, Settings

STARTUP_SECONDS = 30
LIFETIME_SECONDS = 1800


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(settings: Settings) -> dict[str, str]:
    assert settings.secret_key is not None
    return {
        **os.environ,
        "APP_DB_URL": settings.database_url.render_as_string(hide_password=False),
        "APP_SECRET_KEY": settings.secret_key.get_secret_value(),
        "APP_VALIDATE_RESPONSES": str(settings.validate_responses).lower(),
        "APP_DEBUG": "false",
        "APP_LOG_LEVEL": "WARNING",
    }


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited at start-up:\n{log.read_text()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer within {STARTUP_SECONDS} s:\n{log.read_text()}")


@contextlib.contextmanager
def serve(settings: Settings, log: Path) -> Generator[str]:
    """Serve the app with `settings` (an already migrated database); yields its base URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        "timeout",
        str(LIFETIME_SECONDS),
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=_environment(settings), stdout=output, stderr=subprocess.STDOUT
        )
        try:
            _wait_until_ready(url, process, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
