"""GET /metrics: exact counts after known requests, the exposition format, and several workers."""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

import signing
from app import create_app
from observability.metrics import Metrics, service_version
from persistence.database import create_engine
from settings import Settings
from tests.conftest import TEST_KEY
from tests.signed_client import SignedClient

type Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

NAMESPACE = "operations"
STARTUP_SECONDS = 120
MAX_REQUESTS = 400


def parse(exposition: str) -> Samples:
    """Every sample of a scrape, keyed by name and labels (the parser rejects a bad format)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def scrape(client: TestClient | SignedClient) -> Samples:
    raw = client.raw if isinstance(client, SignedClient) else client
    response = raw.get("/metrics")
    assert response.status_code == 200, response.text
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_total(samples: Samples, operation: str, method: str, status: int) -> float:
    return value(
        samples,
        f"{NAMESPACE}_http_requests_total",
        operation=operation,
        method=method,
        status=str(status),
    )


class TestCounts:
    def test_a_known_sequence_of_requests_gives_exact_counter_deltas(
        self, pg_client: SignedClient
    ) -> None:
        before = scrape(pg_client)
        pg_client.raw.get("/health/live")
        pg_client.raw.get("/health/live")
        pg_client.get("/api/teams")
        pg_client.post("/api/teams", json={"name": "Avengers", "headquarters": "Stark Tower"})
        pg_client.post("/api/teams", json={"name": "Avengers", "headquarters": "Stark Tower"})
        pg_client.raw.get("/api/teams")
        pg_client.get("/api/teams", timestamp=signing.now_ms() - 3_600_000)
        pg_client.raw.get("/no/such/path")
        after = scrape(pg_client)

        expected = {
            ("getLiveness", "GET", 200): 2,
            ("listTeams", "GET", 200): 1,
            ("createTeam", "POST", 201): 1,
            ("createTeam", "POST", 409): 1,
            # A refused signature is counted under the operation the request named.
            ("listTeams", "GET", 401): 2,
            ("unmatched", "GET", 404): 1,
            # The first scrape is counted once it has been answered.
            ("getMetrics", "GET", 200): 1,
        }
        for (operation, method, status), count in expected.items():
            delta = requests_total(after, operation, method, status) - requests_total(
                before, operation, method, status
            )
            assert delta == count, (operation, method, status)
            histogram_count = f"{NAMESPACE}_http_request_duration_seconds_count"
            labels = {"operation": operation, "method": method, "status": str(status)}
            assert value(after, histogram_count, **labels) == value(
                after, f"{NAMESPACE}_http_requests_total", **labels
            )
        rejections = f"{NAMESPACE}_signature_rejections_total"
        for reason in ("missing_header", "stale_timestamp"):
            delta = value(after, rejections, reason=reason) - value(
                before, rejections, reason=reason
            )
            assert delta == 1, reason

    def test_database_queries_are_timed_by_statement_kind(self, pg_client: SignedClient) -> None:
        count = f"{NAMESPACE}_db_query_duration_seconds_count"
        before = scrape(pg_client)
        pg_client.post("/api/teams", json={"name": "X-Men", "headquarters": "Westchester"})
        pg_client.get("/api/teams")
        after = scrape(pg_client)
        for statement in ("insert", "select"):
            assert value(after, count, statement=statement) > value(
                before, count, statement=statement
            )

    def test_the_pool_in_flight_and_build_gauges_describe_the_running_app(
        self, pg_client: SignedClient, backend_settings: dict[str, Settings]
    ) -> None:
        pg_client.get("/api/teams")
        samples = scrape(pg_client)
        settings = backend_settings["postgresql"]
        assert value(samples, f"{NAMESPACE}_db_pool_size") == settings.db_pool_size
        assert value(samples, f"{NAMESPACE}_db_pool_overflow") == 0
        # Only the scrape itself is in flight, and it holds no connection.
        assert value(samples, f"{NAMESPACE}_http_requests_in_flight") == 1
        assert value(samples, f"{NAMESPACE}_db_pool_checked_out") == 0
        build = [
            labels
            for name, labels in samples
            if name == f"{NAMESPACE}_build_info" and samples[(name, labels)] == 1
        ]
        assert [dict(labels)["version"] for labels in build] == [service_version()]
        assert value(samples, "process_resident_memory_bytes") > 0


class TestPoolGauges:
    def test_the_pool_gauges_follow_each_checkout_and_checkin_between_scrapes(
        self, backend_settings: dict[str, Settings]
    ) -> None:
        settings = backend_settings["postgresql"].model_copy(
            update={"db_pool_size": 1, "db_max_overflow": 1}
        )
        telemetry = Metrics(NAMESPACE)

        def gauges() -> tuple[float | None, float | None]:
            """Read from the registry, without the refresh that a scrape does first."""
            return (
                telemetry.registry.get_sample_value(f"{NAMESPACE}_db_pool_checked_out"),
                telemetry.registry.get_sample_value(f"{NAMESPACE}_db_pool_overflow"),
            )

        async def hold_two_connections() -> list[tuple[float | None, float | None]]:
            engine = create_engine(settings)
            telemetry.instrument(engine)
            seen = [gauges()]
            try:
                async with engine.connect():
                    seen.append(gauges())
                    async with engine.connect():
                        seen.append(gauges())
                    seen.append(gauges())
                seen.append(gauges())
            finally:
                await engine.dispose()
            return seen

        # The second connection is one beyond the pool size of 1; given back first, it stays
        # open in the pool, so the pool is full when the first comes back and closes that one.
        assert asyncio.run(hold_two_connections()) == [(0, 0), (1, 0), (2, 1), (1, 1), (0, 0)]


class TestExposition:
    def test_the_scrape_is_the_prometheus_text_format_unsigned(
        self, app_clients: dict[str, TestClient]
    ) -> None:
        response = app_clients["sqlite"].get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        families = {family.name for family in text_string_to_metric_families(response.text)}
        assert f"{NAMESPACE}_http_requests" in families

    def test_every_metric_name_starts_with_the_configured_namespace(
        self, backend_settings: dict[str, Settings]
    ) -> None:
        settings = backend_settings["sqlite"].model_copy(update={"namespace": "backoffice_test"})
        with TestClient(create_app(settings)) as client:
            client.get("/health/live")
            samples = scrape(client)
        names = {name for name, _labels in samples}
        standard = ("process_", "python_")
        ours = {name for name in names if not name.startswith(standard)}
        assert ours
        assert all(name.startswith("backoffice_test_") for name in ours), ours
        assert (
            value(
                samples,
                "backoffice_test_http_requests_total",
                operation="getLiveness",
                method="GET",
                status="200",
            )
            == 1
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker_pids(directory: Path, kind: str = "counter") -> set[int]:
    """Workers that have written a file of this kind: `counter` once they have counted a
    request, `gauge_livesum` as soon as their app is built."""
    return {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob(f"{kind}_*.db")}


@pytest.fixture
def two_workers(
    backend_settings: dict[str, Settings], tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """`backoffice serve --workers 2` on a free local port; yields its URL and metrics dir."""
    settings = backend_settings["postgresql"]
    port = _free_port()
    directory = tmp_path / "metrics"
    log = tmp_path / "serve.log"
    environment = {
        **os.environ,
        "APP_DB_URL": settings.database_url.render_as_string(hide_password=False),
        "APP_SECRET_KEY": TEST_KEY,
        "APP_DEBUG": "false",
        "APP_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
    }
    command = [
        "timeout",
        "300",
        str(Path(sys.executable).parent / "backoffice"),
        "serve",
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, log.read_text()
            files = sorted(p.name for p in directory.glob("*")) if directory.exists() else []
            assert time.monotonic() < deadline, f"{files}\n{log.read_text()}"
            if len(_worker_pids(directory, "gauge_livesum")) == 2:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/health/live", timeout=2).status_code == 200:
                        break
            time.sleep(0.2)
        yield url, directory
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _get_on_a_new_connection(url: str) -> int:
    return httpx.get(url, headers={"Connection": "close"}, timeout=10).status_code


@pytest.mark.slow
def test_a_scrape_of_any_worker_counts_the_requests_of_every_worker(
    two_workers: tuple[str, Path],
) -> None:
    url, directory = two_workers
    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        while len(_worker_pids(directory)) < 2 and sent < MAX_REQUESTS:
            statuses = list(pool.map(_get_on_a_new_connection, [f"{url}/health/live"] * 8))
            assert statuses == [200] * 8
            sent += 8
    workers = _worker_pids(directory)
    assert len(workers) == 2, f"one worker answered all {sent} requests"

    for _ in range(4):
        response = httpx.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10)
        samples = parse(response.text)
        # The startup probe above answered one more.
        assert requests_total(samples, "getLiveness", "GET", 200) == sent + 1
        for pid in workers:
            assert value(samples, "process_resident_memory_bytes", pid=str(pid)) > 0
        # As the README's "Several workers" says: no python_* family in multiprocess mode.
        assert not [name for name, _labels in samples if name.startswith("python_")]


def test_a_method_no_operation_knows_is_counted_as_other(pg_client: SignedClient) -> None:
    before = scrape(pg_client)
    response = pg_client.request("BREW", "/api/teams")
    assert response.status_code == 405
    after = scrape(pg_client)
    assert (
        requests_total(after, "unmatched", "other", 405)
        - requests_total(before, "unmatched", "other", 405)
        == 1
    )
    assert not [labels for _name, labels in after if ("method", "BREW") in labels]
