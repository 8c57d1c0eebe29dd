"""Logs: one JSON line per request on stdout, tied to the response by its request id."""

import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import URL
from starlette.testclient import TestClient

import signing
from app import create_app
from observability import logs
from settings import Settings
from tests.backoffice_process import run_backoffice
from tests.conftest import TEST_KEY, make_settings, missing_postgres_database
from tests.problem_assertions import assert_problem
from tests.signed_client import SignedClient

ACCESS_FIELDS = {
    "event",
    "timestamp",
    "level",
    "logger",
    "request_id",
    "method",
    "path",
    "operation",
    "status",
    "duration_ms",
    "client",
}
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every line printed is one JSON object."""
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def access_lines(output: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(output) if line.get("logger") == "access"]


@pytest.fixture
def json_logs(backend_settings: dict[str, Settings]) -> Iterator[None]:
    """Production logging (JSON), restored after a test that changes it."""
    logs.configure_logging(backend_settings["postgresql"])
    yield
    logs.configure_logging(backend_settings["postgresql"])


@pytest.mark.usefixtures("json_logs")
class TestAccessLine:
    def test_a_request_logs_one_json_line_with_its_request_id_status_and_operation(
        self, pg_client: SignedClient, capsys: pytest.CaptureFixture[str]
    ) -> None:
        capsys.readouterr()
        response = pg_client.get("/api/heroes/424242")
        assert_problem(response, 404, "hero 424242 does not exist")
        request_id = response.headers["x-request-id"]
        assert GENERATED_ID.fullmatch(request_id)
        assert response.json()["request_id"] == request_id

        [line] = access_lines(capsys.readouterr().out)
        assert set(line) == ACCESS_FIELDS
        assert ISO_UTC.fullmatch(line["timestamp"])
        assert line["duration_ms"] >= 0
        assert line | {"timestamp": "", "duration_ms": 0} == {
            "event": "request",
            "timestamp": "",
            "level": "info",
            "logger": "access",
            "request_id": request_id,
            "method": "GET",
            "path": "/api/heroes/424242",
            "operation": "getHero",
            "status": 404,
            "duration_ms": 0,
            "client": "testclient",
        }

    def test_a_write_with_a_body_logs_its_access_line_and_nothing_else(
        self, pg_client: SignedClient, capsys: pytest.CaptureFixture[str]
    ) -> None:
        created = pg_client.post("/api/teams", json={"name": "Quiet", "headquarters": "Attic"})
        capsys.readouterr()
        response = pg_client.patch(
            f"/api/teams/{created.json()['id']}",
            json={"headquarters": "Cellar"},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert response.status_code == 200
        # The test client's own "HTTP Request" line aside, the server printed only its access line.
        [line] = [line for line in json_lines(capsys.readouterr().out) if line["logger"] != "httpx"]
        assert (line["logger"], line["operation"], line["status"]) == (
            "access",
            "updateTeam",
            200,
        )

    def test_a_well_formed_request_id_from_the_client_is_kept(
        self, pg_client: SignedClient, capsys: pytest.CaptureFixture[str]
    ) -> None:
        capsys.readouterr()
        response = pg_client.get("/api/teams", headers={"X-Request-ID": "frontend.7f3a-01_b"})
        assert response.headers["x-request-id"] == "frontend.7f3a-01_b"
        [line] = access_lines(capsys.readouterr().out)
        assert line["request_id"] == "frontend.7f3a-01_b"

    @pytest.mark.parametrize(
        "given", ["", "a" * 129, "has space", "semi;colon", 'quote"d', "é".encode()]
    )
    def test_a_malformed_request_id_is_replaced_by_a_generated_one(
        self, pg_client: SignedClient, given: str | bytes
    ) -> None:
        response = pg_client.raw.get("/no/such/path", headers={"X-Request-ID": given})
        request_id = response.headers["x-request-id"]
        assert GENERATED_ID.fullmatch(request_id)
        assert_problem(response, 404, "no resource at /no/such/path")
        assert response.json()["request_id"] == request_id

    def test_an_application_event_logged_while_serving_carries_the_request_id(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        port = closed_port()
        settings = make_settings(f"postgresql://postgres@127.0.0.1:{port}/nowhere")
        with TestClient(create_app(settings), raise_server_exceptions=False) as app:
            capsys.readouterr()
            response = SignedClient(app, TEST_KEY).get(
                "/api/teams", headers={"X-Request-ID": "trace-me"}
            )
        assert_problem(response, 503, "the database is unavailable, retry later")
        lines = json_lines(capsys.readouterr().out)
        warning = next(line for line in lines if line["logger"] == "contract.problems")
        refused = f"[Errno 111] Connect call failed ('127.0.0.1', {port})"
        assert warning | {"timestamp": ""} == {
            "event": f"the database is unavailable: no SQLSTATE (connection_failure): {refused}",
            "level": "warning",
            "logger": "contract.problems",
            "timestamp": "",
            "request_id": "trace-me",
            "sqlstate": None,
            "sqlstate_class": "none",
            "class_name": "connection_failure",
            "error": "ConnectionRefusedError",
            "server_message": None,
            "statement": None,
        }
        [access] = access_lines("\n".join(json.dumps(line) for line in lines))
        assert (access["request_id"], access["status"]) == ("trace-me", 503)


@pytest.mark.usefixtures("json_logs")
class TestNothingSecretIsLogged:
    def test_signatures_keys_and_bodies_never_reach_the_logs(
        self, pg_client: SignedClient, capsys: pytest.CaptureFixture[str]
    ) -> None:
        capsys.readouterr()
        team = pg_client.post("/api/teams", json={"name": "Avengers", "headquarters": "Tower"})
        hero = {"name": "Deadpond", "secret_name": "Dive-Wilson-7f3a", "team_id": team.json()["id"]}
        response = pg_client.post("/api/heroes", json=hero)
        assert response.status_code == 201
        bad = pg_client.raw.get(
            "/api/teams?name=x",
            headers={"x-timestamp": str(signing.now_ms()), "x-signature": "ab" * 32},
        )
        assert bad.status_code == 401
        # The test client logs its own requests through httpx: those lines are not the service's.
        service = [
            line for line in json_lines(capsys.readouterr().out) if line["logger"] != "httpx"
        ]
        output = "\n".join(json.dumps(line) for line in service)
        assert len(access_lines(output)) == 3
        for secret in ("Dive-Wilson-7f3a", "Avengers", "Tower", "ab" * 32, TEST_KEY, "name=x"):
            assert secret not in output


class TestStartupWarnings:
    @pytest.mark.parametrize(
        ("overrides", "warning"),
        [
            (
                {"db_statement_timeout": 10_000},
                "APP_DB_STATEMENT_TIMEOUT (10 s) is not below APP_REQUEST_TIMEOUT_SECONDS (10 s): "
                "a slow statement is stopped by the deadline, which discards its connection, "
                "rather than by PostgreSQL",
            ),
            (
                {"shutdown_lame_duck_seconds": 3, "keep_alive_seconds": 5},
                "APP_KEEP_ALIVE_SECONDS (5 s) is above APP_SHUTDOWN_LAME_DUCK_SECONDS (3 s): a "
                "connection idle since before a SIGTERM may still be open when the listener "
                "closes, and a request sent on it then is reset",
            ),
        ],
    )
    def test_timeouts_that_undo_each_other_are_warned_of_once_at_start_up(
        self,
        overrides: dict[str, Any],
        warning: str,
        backend_settings: dict[str, Settings],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        settings = backend_settings["postgresql"].model_copy(update=overrides)
        try:
            capsys.readouterr()
            with TestClient(create_app(settings)):
                lines = json_lines(capsys.readouterr().out)
        finally:
            logs.configure_logging(backend_settings["postgresql"])

        warnings = [line["event"] for line in lines if line["level"] == "warning"]
        assert warnings == [warning]


class TestDebugLogs:
    def test_development_mode_prints_readable_lines_instead_of_json(
        self,
        pg_client: SignedClient,
        backend_settings: dict[str, Settings],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        logs.configure_logging(backend_settings["postgresql"].model_copy(update={"debug": True}))
        try:
            capsys.readouterr()
            response = pg_client.raw.get("/health/live", headers={"X-Request-ID": "readable-1"})
            output = capsys.readouterr().out
        finally:
            logs.configure_logging(backend_settings["postgresql"])
        assert response.status_code == 200
        [line] = [line for line in output.splitlines() if "readable-1" in line]
        assert "request" in line
        assert "getLiveness" in line
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)

    def test_serving_without_a_secret_key_warns_that_the_development_key_is_used(
        self, backend_settings: dict[str, Settings], capsys: pytest.CaptureFixture[str]
    ) -> None:
        settings = backend_settings["postgresql"].model_copy(
            update={"debug": True, "secret_key": None}
        )
        try:
            with TestClient(create_app(settings)):
                output = capsys.readouterr().out
        finally:
            logs.configure_logging(backend_settings["postgresql"])

        assert "APP_SECRET_KEY is not set" in output
        assert "development key" in output


class TestProductionOutput:
    def test_serve_prints_json_lines_only_and_nothing_on_stderr(
        self, backend_settings: dict[str, Settings], tmp_path: Any
    ) -> None:
        """A log shipper parses every stdout line: no banner, no migration text, no warning."""
        from tests.backoffice_process import BackofficeServer, signed_server_environment

        database = backend_settings["postgresql"].database_url.render_as_string(hide_password=False)
        environment = signed_server_environment(database, TEST_KEY, APP_LOG_LEVEL="INFO")
        stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
        with BackofficeServer(environment, stdout, stderr=stderr) as server:
            assert server.url

        lines = stdout.read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert stderr.read_text() == ""
        assert all({"event", "level", "timestamp"} <= set(record) for record in records)
        assert "starting" in [record["event"] for record in records]

    def test_creating_migrating_and_serving_with_two_workers_prints_json_lines_only(
        self, postgres_server: URL, tmp_path: Any
    ) -> None:
        from tests.backoffice_process import BackofficeServer, signed_server_environment

        for missing in missing_postgres_database(postgres_server):
            database = missing.render_as_string(hide_password=False)
            environment = signed_server_environment(database, TEST_KEY, APP_LOG_LEVEL="INFO")
            stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
            with BackofficeServer(environment, stdout, stderr=stderr, workers=2) as server:
                assert server.url

            records = json_lines(stdout.read_text())
            assert stderr.read_text() == ""
            assert all({"event", "level", "timestamp", "logger"} <= set(line) for line in records)
            events = [record["event"] for record in records]
            assert events[0].startswith(f'created the database "{missing.database}"')
            assert any(event.startswith("Running upgrade  -> ") for event in events)
            assert "starting" in events
            assert events.count("Application startup complete.") == 2

    def test_an_invalid_setting_stops_serve_with_one_json_line(self, tmp_path: Any) -> None:
        result = run_backoffice(
            "serve", cwd=tmp_path, APP_SECRET_KEY=TEST_KEY, APP_DB_PORT="not-a-port"
        )

        assert result.returncode == 2
        assert result.stderr == ""
        [line] = json_lines(result.stdout)
        assert (line["level"], line["event"]) == (
            "error",
            "invalid configuration:\n  APP_DB_PORT: Input should be a valid integer, unable to "
            "parse string as an integer",
        )
