"""A port `backoffice serve` (or `dev`) cannot listen on is found before the database is created
or migrated, and named with the option that changes it: in one JSON line on stdout in
production, in one plain line on stderr in development."""

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL
from typer.testing import CliRunner, Result

from cli import cli
from observability import logs
from settings import Settings
from tests.conftest import TEST_KEY, database_exists, missing_postgres_database

HOST = "127.0.0.1"


def backoffice(*arguments: str, **variables: str) -> Result:
    """The command run in this process, with only the `APP_*` variables given."""
    unset = dict.fromkeys(name for name in os.environ if name.startswith("APP_"))
    environment: dict[str, str | None] = {**unset, **variables}
    return CliRunner().invoke(cli, list(arguments), env=environment)


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


@pytest.fixture(autouse=True)
def restored_logging(backend_settings: dict[str, Settings]) -> Iterator[None]:
    """`serve` configures this process's logging for production: the tests' is put back."""
    yield
    logs.configure_logging(backend_settings["postgresql"])


@pytest.fixture
def port_in_use() -> Iterator[int]:
    """A port another server listens on."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture
def missing_database(postgres_server: URL) -> Iterator[URL]:
    yield from missing_postgres_database(postgres_server)


def test_serve_stops_before_creating_the_database_naming_the_port_and_the_option(
    port_in_use: int, missing_database: URL, postgres_server: URL
) -> None:
    url = missing_database.render_as_string(hide_password=False)

    result = backoffice(
        "serve", "--port", str(port_in_use), APP_DB_URL=url, APP_SECRET_KEY=TEST_KEY
    )

    assert result.exit_code == 2
    assert result.stderr == ""
    [line] = json_lines(result.stdout)
    assert line | {"timestamp": ""} == {
        "event": f"port {port_in_use} on {HOST} is already in use (another server is listening "
        "there): stop it, or serve on another port with --port",
        "level": "error",
        "logger": "backoffice",
        "timestamp": "",
    }
    assert not database_exists(postgres_server, str(missing_database.database))


@pytest.mark.parametrize("command", ["serve", "dev"])
def test_in_development_the_port_in_use_is_one_plain_line_on_stderr(
    command: str, port_in_use: int, tmp_path: Path
) -> None:
    result = backoffice(
        command,
        "--port",
        str(port_in_use),
        APP_DEBUG="true",
        APP_SQLITE_PATH=str(tmp_path / "never.db"),
    )

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"port {port_in_use} on {HOST} is already in use (another server is listening there): "
        "stop it, or serve on another port with --port\n"
    )
    assert not (tmp_path / "never.db").exists()


def test_an_address_this_machine_does_not_have_names_the_host_option(tmp_path: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): documentation only, on no machine's interface.
    result = backoffice(
        "serve",
        "--host",
        "192.0.2.1",
        "--port",
        "8000",
        APP_SECRET_KEY=TEST_KEY,
        APP_SQLITE_PATH=str(tmp_path / "never.db"),
    )

    assert result.exit_code == 2
    [line] = json_lines(result.stdout)
    assert line["event"] == (
        "cannot listen on 192.0.2.1: no interface of this machine has that address (--host)"
    )
