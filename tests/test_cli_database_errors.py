"""A database that cannot be used stops `backoffice` with a line a user can act on.

Each case runs the real program in a subprocess, as a user does: the message names the setting
in use, where it points and what failed, never the password, and comes within the connect
timeout; the traceback appears only with APP_DEBUG=true.
"""

import json
import os
import socket
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import URL

from tests.backoffice_process import BACKOFFICE, free_port
from tests.conftest import TEST_KEY
from tests.postgres_cluster import PrivateCluster, running_cluster

PASSWORD = "a-password-that-must-never-be-printed"
HINT = "(APP_DEBUG=true shows the full traceback)\n"


def backoffice(*arguments: str, cwd: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    environment |= {"APP_SECRET_KEY": TEST_KEY, "APP_DB_CONNECT_TIMEOUT": "2"} | variables
    return subprocess.run(
        [BACKOFFICE, *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word, like a frozen server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture(scope="module")
def password_cluster() -> Iterator[PrivateCluster]:
    with running_cluster(password=PASSWORD) as cluster:
        yield cluster


def test_a_refused_port_names_the_url_setting_and_what_failed(tmp_path: Path) -> None:
    port = free_port()

    result = backoffice(
        "migrate",
        "upgrade",
        cwd=tmp_path,
        APP_DB_URL=f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/backoffice",
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f'cannot connect to PostgreSQL at 127.0.0.1:{port}, database "backoffice", user '
        '"postgres" (from APP_DB_URL): connection refused (is PostgreSQL running and '
        "listening there?)\n" + HINT
    )


def test_an_unknown_host_names_the_host_setting(tmp_path: Path) -> None:
    result = backoffice("migrate", "upgrade", cwd=tmp_path, APP_DB_HOST="no-such-host.invalid")

    assert result.returncode == 2
    assert result.stderr == (
        'cannot connect to PostgreSQL at no-such-host.invalid:5432, database "backoffice", '
        'user "postgres" (from APP_DB_HOST): unknown host (the name does not resolve)\n' + HINT
    )


def test_serve_in_production_says_it_in_one_json_line_on_stdout(tmp_path: Path) -> None:
    result = backoffice(
        "serve", "--port", str(free_port()), cwd=tmp_path, APP_DB_HOST="no-such-host.invalid"
    )

    assert result.returncode == 2
    assert result.stderr == ""
    [line] = [json.loads(line) for line in result.stdout.splitlines()]
    assert line | {"timestamp": ""} == {
        "event": "cannot connect to PostgreSQL at no-such-host.invalid:5432, database "
        '"backoffice", user "postgres" (from APP_DB_HOST): unknown host (the name does not '
        "resolve)",
        "level": "error",
        "logger": "backoffice",
        "timestamp": "",
    }


def test_a_silent_server_fails_within_the_connect_timeout(
    tmp_path: Path, silent_server: int
) -> None:
    started = time.monotonic()

    result = backoffice(
        "migrate",
        "current",
        cwd=tmp_path,
        APP_DB_HOST="127.0.0.1",
        APP_DB_PORT=str(silent_server),
        APP_DB_CONNECT_TIMEOUT="1",
    )

    assert result.returncode == 2
    assert result.stderr == (
        f'cannot connect to PostgreSQL at 127.0.0.1:{silent_server}, database "backoffice", '
        'user "postgres" (from APP_DB_HOST, APP_DB_PORT): no answer within 1 s '
        "(APP_DB_CONNECT_TIMEOUT)\n" + HINT
    )
    # The connect timeout, plus the program's own start-up on a loaded two-core machine.
    assert time.monotonic() - started < 1 + 15


def test_a_wrong_password_is_reported_and_never_printed(
    tmp_path: Path, password_cluster: PrivateCluster
) -> None:
    result = backoffice(
        "migrate",
        "upgrade",
        cwd=tmp_path,
        APP_DB_USER="postgres",
        APP_DB_PASSWORD="not-the-password",
        APP_DB_PORT=str(password_cluster.port),
        APP_DB_NAME="postgres",
    )

    assert result.returncode == 2
    assert result.stderr == (
        f"cannot connect to PostgreSQL at 127.0.0.1:{password_cluster.port}, database "
        '"postgres", user "postgres" (from APP_DB_PORT, APP_DB_NAME, APP_DB_USER, '
        "APP_DB_PASSWORD): the password was refused\n" + HINT
    )
    assert "not-the-password" not in result.stdout + result.stderr


def test_the_traceback_comes_only_with_debug_and_still_hides_the_password(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/backoffice"

    quiet = backoffice("migrate", "current", cwd=tmp_path, APP_DB_URL=url)
    loud = backoffice("migrate", "current", cwd=tmp_path, APP_DB_URL=url, APP_DEBUG="true")

    assert "Traceback" not in quiet.stderr
    assert "Traceback (most recent call last)" in loud.stderr
    assert loud.stderr.endswith("connection refused (is PostgreSQL running and listening there?)\n")
    assert PASSWORD not in quiet.stderr + loud.stderr


def test_commands_other_than_upgrade_say_how_to_create_a_missing_database(
    tmp_path: Path, postgres_server: URL
) -> None:
    url = postgres_server.set(database=f"missing_{uuid.uuid4().hex[:8]}")

    result = backoffice("seed", cwd=tmp_path, APP_DB_URL=url.render_as_string(hide_password=False))

    assert result.returncode == 2
    assert result.stderr == (
        f'the database "{url.database}" does not exist (PostgreSQL at '
        f'{url.host}:{url.port}, database "{url.database}", user "{url.username}" (from '
        "APP_DB_URL)): `backoffice migrate upgrade` creates it\n" + HINT
    )


@pytest.fixture
def role_without_createdb(postgres_server: URL) -> Iterator[str]:
    role = f"nocreatedb_{uuid.uuid4().hex[:8]}"
    admin = postgres_server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN NOCREATEDB")  # type: ignore[arg-type]
    yield role
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"DROP ROLE {role}")  # type: ignore[arg-type]


def test_a_role_that_may_not_create_databases_is_told_which_command_to_ask_for(
    tmp_path: Path, postgres_server: URL, role_without_createdb: str
) -> None:
    url = postgres_server.set(
        username=role_without_createdb, database=f"missing_{uuid.uuid4().hex[:8]}"
    )

    result = backoffice(
        "migrate", "upgrade", cwd=tmp_path, APP_DB_URL=url.render_as_string(hide_password=False)
    )

    assert result.returncode == 2
    assert result.stderr == (
        f'the database "{url.database}" does not exist and user "{role_without_createdb}" may '
        "not create databases: ask an administrator to run\n"
        f"  createdb -h {url.host} -p {url.port} -O {role_without_createdb} {url.database}\n" + HINT
    )


def test_a_migration_refused_by_the_data_stops_serve_with_its_reason_in_one_line(
    tmp_path: Path,
) -> None:
    database = tmp_path / "clashing.db"
    url = f"sqlite+aiosqlite:///{database}"
    assert (
        backoffice("migrate", "upgrade", "5b1d2c7e9a40", cwd=tmp_path, APP_DB_URL=url).returncode
        == 0
    )
    with sqlite3.connect(database) as connection:
        connection.executemany(
            "INSERT INTO teams (name, headquarters, version, created_at, updated_at) "
            "VALUES (?, 'HQ', 1, '2026-11-26', '2026-11-26')",
            [("Avengers",), ("AVENGERS",)],
        )

    result = backoffice("serve", "--port", str(free_port()), cwd=tmp_path, APP_DB_URL=url)

    assert result.returncode == 2
    assert result.stderr == ""
    stopped = json.loads(result.stdout.splitlines()[-1])
    assert (stopped["level"], stopped["event"]) == (
        "error",
        "the schema was not upgraded: 1 set(s) of teams have names that differ only in case, "
        "white space or Unicode form: team 1 'Avengers', team 2 'AVENGERS'. Rename all but one "
        "of each (PATCH /api/teams/{id}), then upgrade again; nothing was changed.",
    )
