"""Every row of the README's Commands table, run as written by the real `backoffice` program.

So are the blocks that repeat rows of it (the Quick start's calls, the how-to's migrations), and
the PostgreSQL block of the README and of docs/configuration.md.

The database commands run against a PostgreSQL database that does not exist yet (`migrate
upgrade` creates it); `dev` runs in an empty folder holding a copy of `.env.example` as `.env`,
as a new user who followed the configuration advice would have it. Only the port of the two
servers is changed, to a free one.
"""

import json
import os
import re
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import URL

import signing
from settings import DEVELOPMENT_SECRET_KEY, EXAMPLE_SECRET_KEY, ROOT
from tests.backoffice_process import BACKOFFICE, free_port
from tests.conftest import TEST_KEY
from tests.markdown_docs import command_lines, shell_blocks

README = ROOT / "README.md"
CONFIGURATION = ROOT / "docs/configuration.md"
HOWTO = ROOT / "docs/howto-add-a-field.md"
RUNNER = "tests/test_readme_commands.py"
STARTUP_SECONDS = 120
COMMAND_SECONDS = 120
AVENGERS = '{"name": "Avengers", "headquarters": "Stark Tower"}'


def readme_commands() -> list[str]:
    """The first code span of each row of the table under '## Commands'."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Commands\n") :]
    section = section[: section.index("\n## ", 1)]
    return [
        match.group(1)
        for line in section.splitlines()
        if line.startswith("| `") and (match := re.match(r"\| `([^`]+)` \|", line))
    ]


def argv(command: str, **replacements: str) -> list[str]:
    words = shlex.split(command)
    assert words[0] == "backoffice", command
    for option, value in replacements.items():
        if f"--{option}" in words:
            words[words.index(f"--{option}") + 1] = value
        else:
            words += [f"--{option}", value]
    return [BACKOFFICE, *words[1:]]


def user_environment(**variables: str) -> dict[str, str]:
    """The caller's environment without any APP_* setting, plus `variables`."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("APP_")}
    return clean | variables


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_SECONDS
    )


class Served:
    """A server command in its own process group, stopped with SIGTERM as a user's Ctrl-C."""

    def __init__(
        self,
        command: list[str],
        cwd: Path,
        env: dict[str, str],
        port: int,
        *,
        log: Path | None = None,
    ) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log or cwd / "server.log"
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                ["timeout", "300", *command],
                cwd=cwd,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"no answer within {STARTUP_SECONDS} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def missing_database(postgres_server: URL) -> Iterator[str]:
    """The URL of a database that does not exist yet; dropped afterwards if it was created."""
    name = f"backoffice_readme_{uuid.uuid4().hex[:10]}"
    yield postgres_server.set(drivername="postgresql", database=name).render_as_string(
        hide_password=False
    )
    maintenance = postgres_server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def test_the_table_lists_each_command_once() -> None:
    commands = readme_commands()

    assert len(commands) == len(set(commands)) >= 9
    assert {shlex.split(command)[1] for command in commands} == {
        "dev",
        "serve",
        "migrate",
        "seed",
        "call",
        "--help",
    }


def test_the_quick_starts_calls_and_the_howtos_migrations_are_rows_of_the_table() -> None:
    """Those blocks run as the rows they repeat, below."""
    rows = readme_commands()
    (calls, postgres) = shell_blocks(README, RUNNER)
    (migrations,) = shell_blocks(HOWTO, RUNNER)
    repeated = command_lines(calls) + command_lines(migrations)

    assert "APP_DB_URL" in postgres
    assert len(repeated) == 5
    for command in repeated:
        assert command.startswith("uv run "), command
        assert command.removeprefix("uv run ") in rows, command


def test_the_postgresql_block_serves_as_written(missing_database: str, tmp_path: Path) -> None:
    """With this test's database, and on 127.0.0.1 and a free port instead of 0.0.0.0:8000."""
    (_, block) = shell_blocks(README, RUNNER)
    assert shell_blocks(CONFIGURATION, RUNNER) == [block]
    documented = "postgresql://postgres@127.0.0.1:5432/backoffice"
    assert documented in block
    assert "--host 0.0.0.0 --port 8000" in block
    port = free_port()
    script = (
        block.replace(documented, missing_database)
        .replace("--host 0.0.0.0 --port 8000", f"--host 127.0.0.1 --port {port}")
        .replace("uv run backoffice", BACKOFFICE)
    )

    server = Served(["bash", "-euo", "pipefail", "-c", script], tmp_path, user_environment(), port)
    try:
        server.wait_ready()
        health = httpx.get(f"{server.url}/health", timeout=5).json()
    finally:
        server.stop()

    assert health["status"] == "ok"
    events = [json.loads(line)["event"] for line in server.log.read_text().splitlines()]
    assert any(event.startswith('created the database "backoffice_readme_') for event in events)


def test_every_database_command_row_works_as_written(missing_database: str, tmp_path: Path) -> None:
    rows = readme_commands()
    environment = user_environment(APP_DB_URL=missing_database, APP_SECRET_KEY=TEST_KEY)
    ran: set[str] = set()

    def row(command: str) -> str:
        assert command in rows, f"the README no longer lists `{command}`"
        ran.add(command)
        return command

    upgraded = run(argv(row("backoffice migrate upgrade")), tmp_path, environment)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stderr.startswith('created the database "backoffice_readme_')
    assert "(head)" in upgraded.stdout

    down = run(argv(row("backoffice migrate downgrade -1")), tmp_path, environment)
    assert down.returncode == 0, down.stderr
    assert "(head)" not in down.stdout
    assert re.fullmatch(r"[0-9a-f]{12}\n", down.stdout), down.stdout

    up = run(argv(row("backoffice migrate upgrade +1")), tmp_path, environment)
    assert up.returncode == 0, up.stderr
    assert up.stdout.endswith("(head)\n")

    current = run(argv(row("backoffice migrate current")), tmp_path, environment)
    assert current.returncode == 0, current.stderr
    assert "(head)" in current.stdout

    seeded = run(argv(row("backoffice seed")), tmp_path, environment)
    assert (seeded.returncode, seeded.stdout) == (0, "demo data added\n"), seeded.stderr

    helped = run(argv(row("backoffice --help")), tmp_path, environment)
    assert helped.returncode == 0
    assert all(word in helped.stdout for word in ("dev", "serve", "migrate", "seed", "call"))

    port = free_port()
    server = Served(
        argv(row("backoffice serve --host 127.0.0.1 --port 8000 --workers 2"), port=str(port)),
        tmp_path,
        environment,
        port,
    )
    try:
        server.wait_ready()
        caller = environment | {"BACKOFFICE_URL": server.url}
        listed = run(argv(row("backoffice call GET '/api/heroes?limit=3'")), tmp_path, caller)
        created = run(
            argv(row(f"backoffice call POST /api/teams --data '{AVENGERS}'")),
            tmp_path,
            caller,
        )
    finally:
        server.stop()
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert listed.stdout.startswith("HTTP 200 OK\n")
    assert '"name": "Deadpond"' in listed.stdout
    assert created.returncode == 0, created.stdout + created.stderr
    assert created.stdout.startswith("HTTP 201 Created\n")
    assert '"name": "Avengers"' in created.stdout

    assert ran == {command for command in rows if not command.startswith("backoffice dev")}


def test_dev_runs_as_written_in_an_empty_folder_with_the_example_env_file(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    (command,) = [command for command in readme_commands() if command.startswith("backoffice dev")]
    port = free_port()

    server = Served(argv(command, port=str(port)), tmp_path, user_environment(), port)
    try:
        server.wait_ready()
        health = httpx.get(f"{server.url}/health", timeout=5).json()
        # The example key is what .env gives: dev signs with it, and so does `backoffice call`.
        created = create_team(server.url, EXAMPLE_SECRET_KEY)
    finally:
        server.stop()

    assert health["status"] == "ok"
    assert created.status_code == 201, created.text
    assert (tmp_path / "var" / "backoffice.db").exists()
    assert "Warning" not in server.log.read_text()


def create_team(url: str, key: str) -> httpx.Response:
    body = b'{"name": "Written in dev", "headquarters": "var/"}'
    headers = {"Content-Type": "application/json"}
    headers |= signing.signed_headers("POST", "/api/teams", body, key, headers=headers)
    return httpx.post(f"{url}/api/teams", content=body, headers=headers, timeout=10)


def test_dev_in_the_clone_does_not_reload_when_its_database_file_changes(tmp_path: Path) -> None:
    """The default SQLite file is var/ inside the clone, in the tree that dev watches for code."""
    (command,) = [command for command in readme_commands() if command.startswith("backoffice dev")]
    database = ROOT / "var" / f"reload-test-{uuid.uuid4().hex[:8]}.db"
    port = free_port()
    environment = user_environment(APP_SQLITE_PATH=str(database.relative_to(ROOT)))
    server = Served(argv(command, port=str(port)), ROOT, environment, port, log=tmp_path / "log")
    try:
        server.wait_ready()
        created = create_team(server.url, DEVELOPMENT_SECRET_KEY)
        time.sleep(2)  # watchfiles reports changes after a debounce of well under a second
    finally:
        server.stop()
        for written in database.parent.glob(f"{database.name}*"):
            written.unlink()

    assert created.status_code == 201, created.text
    log = server.log.read_text()
    assert "change detected" not in log
    assert "Reloading" not in log


def test_help_lists_the_commands_in_the_tables_order(tmp_path: Path) -> None:
    """`backoffice --help` and the table agree on the order a user needs them in."""
    documented = list(dict.fromkeys(command.split()[1] for command in readme_commands()))
    documented.remove("--help")

    shown = run(argv("backoffice --help"), tmp_path, user_environment())

    assert shown.returncode == 0, shown.stderr
    commands = shown.stdout[shown.stdout.index("Commands") :]
    listed = re.findall(r"^│ (\w+) ", commands, flags=re.MULTILINE)
    assert listed == documented
