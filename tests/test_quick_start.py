"""The README's Quick start, for real: `backoffice dev` serves the API with demo data.

Its block is read from README.md (and docs/index.md, which repeats it): the first line is run
here, on a free port; the second is the test suite itself, which .ci/run runs as written.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import signing
from settings import DEVELOPMENT_SECRET_KEY, ROOT
from tests.markdown_docs import command_lines, shell_blocks

STARTUP_SECONDS = 60
RUNNER = "tests/test_quick_start.py"


def quick_start() -> list[str]:
    (block,) = shell_blocks(ROOT / "README.md", RUNNER)
    assert shell_blocks(ROOT / "docs/index.md", RUNNER) == [block]
    return command_lines(block)


def test_the_quick_start_is_the_two_commands() -> None:
    assert quick_start() == ["uv run backoffice dev", "uv run pytest --cov"]


def test_the_second_command_is_the_one_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()

    assert ci.rstrip().splitlines()[-1] == '"${UV[@]}" run pytest --cov'
    assert quick_start()[1] == "uv run pytest --cov"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def dev_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dev-output") / "backoffice-dev.log"


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory, dev_output: Path) -> Iterator[str]:
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    environment["APP_SQLITE_PATH"] = str(tmp_path_factory.mktemp("dev") / "backoffice.db")
    backoffice = Path(sys.executable).parent / "backoffice"
    with dev_output.open("wb") as output:
        process = subprocess.Popen(
            [
                str(backoffice),
                *quick_start()[0].removeprefix("uv run backoffice ").split(),
                "--port",
                str(port),
            ],
            env=environment,
            stdout=output,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail(f"backoffice dev did not answer within {STARTUP_SECONDS} s")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_dev_server_serves_swagger_ui(dev_server: str) -> None:
    response = httpx.get(f"{dev_server}/docs", follow_redirects=True)

    assert response.status_code == 200
    assert "swagger-ui" in response.text.lower()


def test_dev_server_has_demo_heroes_behind_signed_requests(dev_server: str) -> None:
    headers = signing.signed_headers("GET", "/api/heroes", b"", DEVELOPMENT_SECRET_KEY)

    response = httpx.get(f"{dev_server}/api/heroes", headers=headers)

    assert response.status_code == 200
    names = [hero["name"] for hero in response.json()["items"]]
    assert names[:2] == ["Deadpond", "Rusty-Man"]
    assert len(names) == 7


def test_dev_server_refuses_unsigned_requests(dev_server: str) -> None:
    assert httpx.get(f"{dev_server}/api/heroes").status_code == 401


def test_dev_server_says_which_key_it_signs_with(dev_server: str, dev_output: Path) -> None:
    assert dev_server

    announced = f"the public development key {DEVELOPMENT_SECRET_KEY!r}"
    assert announced in dev_output.read_text()
