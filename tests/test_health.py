"""GET /health/live, /health/ready and /health: unsigned probes, on PostgreSQL and SQLite."""

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from sqlalchemy import URL
from starlette.testclient import TestClient

from app import SPEC, create_app
from handlers import OPERATIONS
from observability.metrics import service_version
from persistence.database import create_engine
from persistence.health import migration_heads
from server.readiness import FALL, RISE, Readiness, database_check
from settings import Settings
from tests.conftest import fresh_postgres_database, make_settings
from tests.problem_assertions import assert_problem

PROBES = ["/health/live", "/health/ready", "/health"]
CONTRACT = yaml.safe_load(SPEC.read_text())["info"]["version"]


@pytest.fixture
def probe(backend: str, app_clients: dict[str, TestClient]) -> TestClient:
    """The running app of each backend, called without any signature."""
    return app_clients[backend]


@pytest.fixture
def unmigrated_settings(postgres_server: URL) -> Iterator[Settings]:
    """A PostgreSQL database that exists but has never been migrated."""
    for url in fresh_postgres_database(postgres_server):
        yield make_settings(url)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a hung database."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _app_on(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


class TestLive:
    def test_liveness_answers_ok_with_the_versions_unsigned(self, probe: TestClient) -> None:
        response = probe.get("/health/live")
        assert response.status_code == 200
        assert response.json() == {
            "status": "ok",
            "version": service_version(),
            "contract": CONTRACT,
        }

    def test_the_contract_version_is_the_served_spec_s_info_version(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        spec = yaml.safe_load(SPEC.read_text())
        spec["info"]["version"] = "9.8.7"
        served = tmp_path / "openapi.yaml"
        served.write_text(yaml.safe_dump(spec))
        monkeypatch.setattr("app.SPEC", served)
        settings = make_settings(f"postgresql://postgres@127.0.0.1:{_closed_port()}/nowhere")
        for client in _app_on(settings):
            assert client.get("/health/live").json()["contract"] == "9.8.7"

    def test_liveness_never_touches_the_database(self) -> None:
        settings = make_settings(f"postgresql://postgres@127.0.0.1:{_closed_port()}/nowhere")
        for client in _app_on(settings):
            assert client.get("/health/live").status_code == 200


class TestReady:
    @pytest.mark.parametrize("path", ["/health/ready", "/health"])
    def test_a_migrated_database_gives_the_full_report(self, probe: TestClient, path: str) -> None:
        response = probe.get(path)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        database = body["checks"]["database"]
        migrations = body["checks"]["migrations"]
        assert body == {
            "status": "ok",
            "version": service_version(),
            "contract": CONTRACT,
            "checks": {
                "database": {"status": "ok", "latency_ms": database["latency_ms"]},
                "migrations": {
                    "status": "ok",
                    "latency_ms": migrations["latency_ms"],
                    "current": list(migration_heads()),
                    "head": list(migration_heads()),
                },
            },
        }
        assert database["latency_ms"] >= 0
        assert migrations["latency_ms"] >= 0

    @pytest.mark.parametrize("path", ["/health/ready", "/health"])
    def test_a_database_without_the_schema_is_not_ready(
        self, unmigrated_settings: Settings, path: str
    ) -> None:
        for client in _app_on(unmigrated_settings):
            response = client.get(path)
            head = ", ".join(migration_heads())
            assert_problem(
                response,
                503,
                f"the schema is at no revision but the migrations head is {head}: "
                "run `alembic upgrade head`",
            )
            assert response.headers["retry-after"] == "1"
            assert response.json()["request_id"] == response.headers["x-request-id"]

    def test_an_unreachable_database_is_not_ready(self) -> None:
        settings = make_settings(f"postgresql://postgres@127.0.0.1:{_closed_port()}/nowhere")
        for client in _app_on(settings):
            response = client.get("/health/ready")
            assert_problem(response, 503, "the database is unreachable (ConnectionRefusedError)")

    def test_a_database_that_hangs_is_not_ready_within_the_probe_timeout(
        self, silent_server: int
    ) -> None:
        settings = make_settings(
            f"postgresql://postgres@127.0.0.1:{silent_server}/hung", request_timeout_seconds=2
        )
        for client in _app_on(settings):
            response = client.get("/health/ready")
            assert_problem(response, 503, "the database did not answer within 2 s")


class TestVerdict:
    """The hysteresis, check by check, on the PostgreSQL test database: writes locked out for a
    while, then let in again."""

    def test_three_failed_checks_make_it_unready_and_two_good_ones_ready_again(
        self, backend_settings: dict[str, Settings]
    ) -> None:
        settings = backend_settings["postgresql"]
        database = settings.database_url.set(drivername="postgresql")

        async def scenario() -> tuple[list[bool], list[bool], str]:
            engine = create_engine(settings)
            readiness = Readiness(database_check(engine), bound_seconds=5)
            try:
                await readiness.check_once()
                assert readiness.verdict.ready
                locked: list[bool] = []
                with psycopg.connect(database.render_as_string(hide_password=False)) as blocker:
                    blocker.execute("LOCK TABLE heroes IN EXCLUSIVE MODE")
                    for _ in range(FALL):
                        await readiness.check_once()
                        locked.append(readiness.verdict.ready)
                    reason = readiness.verdict.reason
                    blocker.rollback()
                released: list[bool] = []
                for _ in range(RISE):
                    await readiness.check_once()
                    released.append(readiness.verdict.ready)
                return locked, released, reason
            finally:
                await engine.dispose()

        locked, released, reason = asyncio.run(scenario())

        assert locked == [True] * (FALL - 1) + [False]
        assert released == [False] * (RISE - 1) + [True]
        assert reason == (
            "writes wait for a lock on the API's tables: none was granted within 1 s "
            "(SQLSTATE 55P03)"
        )


class TestContract:
    @pytest.mark.parametrize("path", [*PROBES, "/metrics"])
    def test_each_probe_is_declared_unsigned_under_the_operations_tag(self, path: str) -> None:
        spec = yaml.safe_load(SPEC.read_text())
        operation = spec["paths"][path]["get"]
        assert operation["security"] == []
        assert operation["tags"] == ["operations"]
        assert OPERATIONS[operation["operationId"]].__module__ == "handlers.ops"

    @pytest.mark.parametrize("path", PROBES)
    def test_a_probe_echoes_the_request_id(self, probe: TestClient, path: str) -> None:
        response = probe.get(path, headers={"X-Request-ID": "probe-42"})
        assert response.headers["x-request-id"] == "probe-42"
