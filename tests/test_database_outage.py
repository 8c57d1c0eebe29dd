"""The database fails for real under a running `backoffice serve`: a private PostgreSQL cluster
is stopped, frozen, locked and has its sessions killed. Requests get a quick 503, the service
recovers by itself, and no acknowledged write is lost or doubled, nor any write half-done.
"""

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

import signing
from server.readiness import CHECK_INTERVAL_SECONDS, FALL, RISE
from tests.backoffice_process import AsyncSignedClient, BackofficeServer, signed_server_environment
from tests.conftest import TEST_KEY
from tests.latency_proxy import latency_proxy
from tests.postgres_cluster import PrivateCluster, running_cluster
from tests.problem_assertions import assert_problem

pytestmark = pytest.mark.slow

APP_NAME = "backoffice-outage-test"
AS_POSTGRES = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
UNAVAILABLE = "the database is unavailable, retry later"
REFUSED_WRITE = "the database refused the write, retry later"
# Small bounds, so that a failing database shows quickly: every request must end within them.
BOUNDS = {
    "APP_DB_CONNECT_TIMEOUT": "1",
    "APP_DB_STATEMENT_TIMEOUT": "3000",
    "APP_DB_POOL_TIMEOUT": "1",
    "APP_DB_POOL_SIZE": "3",
    "APP_DB_MAX_OVERFLOW": "0",
}
# Longer than any bound above allows a request to take; a hang fails the test with ReadTimeout.
CLIENT_TIMEOUT_SECONDS = 15
RECOVERY_SECONDS = 30
DEADPOND = {"name": "Deadpond", "secret_name": "Dive Wilson", "age": 30}


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    with running_cluster() as private:
        yield private


@pytest.fixture(scope="module")
def served(
    cluster: PrivateCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BackofficeServer]:
    log = tmp_path_factory.mktemp("outage") / "server.log"
    environment = signed_server_environment(cluster.url, TEST_KEY, APP_NAME=APP_NAME, **BOUNDS)
    with BackofficeServer(environment, log) as server:
        yield server


@pytest.fixture
def server(served: BackofficeServer, cluster: PrivateCluster) -> Iterator[str]:
    """The module's server, with its database up and answering at the start of each test."""
    _restart_if_down(cluster)
    wait_until_serving(served.url)
    yield served.url
    _restart_if_down(cluster)


def logged(served: BackofficeServer, response: httpx.Response) -> list[dict[str, Any]]:
    """The server's log lines about `response`'s request (its id), but the access line."""
    request_id = response.headers["x-request-id"]
    lines = [json.loads(line) for line in served.log.read_text().splitlines()]
    return [
        line
        for line in lines
        if line.get("request_id") == request_id and line["logger"] != "access"
    ]


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"{url}/metrics", timeout=CLIENT_TIMEOUT_SECONDS).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def increase(before: dict[Any, float], after: dict[Any, float], name: str, **labels: str) -> float:
    key = (f"operations_{name}", frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def _restart_if_down(cluster: PrivateCluster) -> None:
    if _answers(cluster):
        return
    # A server may be half-way through a shutdown: finish it (or find none running), then start.
    with contextlib.suppress(subprocess.CalledProcessError):
        cluster.stop("fast")
    cluster.start()


def _answers(cluster: PrivateCluster) -> bool:
    with (
        contextlib.suppress(psycopg.OperationalError),
        psycopg.connect(cluster.url, connect_timeout=2),
    ):
        return True
    return False


def wait_until_serving(url: str) -> None:
    deadline = time.monotonic() + RECOVERY_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/health/ready", timeout=5).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"the service did not recover within {RECOVERY_SECONDS} s")


def signed(url: str) -> AsyncSignedClient:
    return AsyncSignedClient(url, TEST_KEY, timeout=CLIENT_TIMEOUT_SECONDS)


def call(url: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def once() -> httpx.Response:
        client = signed(url)
        try:
            return await client.request(method, path, **kwargs)
        finally:
            await client.aclose()

    return asyncio.run(once())


def assert_unavailable(response: httpx.Response) -> None:
    assert_problem(response, 503, UNAVAILABLE)
    assert response.headers["retry-after"] == "1"


def sql(cluster: PrivateCluster, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        cursor = conn.execute(statement)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def wait_for_lock_waiters(cluster: PrivateCluster, count: int, app_name: str = APP_NAME) -> None:
    query = (
        "SELECT count(*) FROM pg_stat_activity "
        f"WHERE application_name = '{app_name}' AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sql(cluster, query)[0][0] >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{count} requests did not come to wait for the lock within 10 s")


@contextlib.contextmanager
def locked_heroes(cluster: PrivateCluster) -> Generator[None]:
    """Hold an exclusive lock on `heroes`, so that requests touching it wait inside PostgreSQL."""
    with psycopg.connect(cluster.url) as blocker:
        blocker.execute("LOCK TABLE heroes IN ACCESS EXCLUSIVE MODE")
        yield
        blocker.rollback()


def in_background(request: Any) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(request()))
    thread.start()
    return thread, answers


@contextlib.contextmanager
def frozen(cluster: PrivateCluster) -> Generator[None]:
    """SIGSTOP the postmaster and its backends: the server accepts TCP and answers nothing."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(
        ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
    ).stdout.split()
    pids = [postmaster, *map(int, children)]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


class TestDatabaseDown:
    def test_requests_get_503_and_readiness_fails_while_liveness_stays_up(
        self, server: str, cluster: PrivateCluster
    ) -> None:
        cluster.stop("fast")

        read = call(server, "GET", "/api/heroes")
        write = call(server, "POST", "/api/heroes", json=DEADPOND)
        seconds_until(server, 503)
        ready = readiness(server)
        live = httpx.get(f"{server}/health/live", timeout=CLIENT_TIMEOUT_SECONDS)

        assert_unavailable(read)
        assert_unavailable(write)
        assert_problem(ready, 503, "the database is unreachable (ConnectionRefusedError)")
        assert ready.headers["retry-after"] == "1"
        assert live.status_code == 200

    def test_service_recovers_without_a_restart_when_the_database_returns(
        self, server: str, cluster: PrivateCluster
    ) -> None:
        cluster.stop("fast")
        assert_unavailable(call(server, "GET", "/api/heroes"))

        cluster.start()

        wait_until_serving(server)
        assert call(server, "GET", "/api/heroes").status_code == 200
        assert call(server, "POST", "/api/heroes", json=DEADPOND).status_code == 201

    def test_server_refusing_connections_while_shutting_down_gives_503(
        self, server: str, cluster: PrivateCluster
    ) -> None:
        with psycopg.connect(cluster.url, autocommit=True) as lingering:
            # A smart shutdown waits for this session, refusing new ones ("shutting down").
            subprocess.run(
                [*AS_POSTGRES, "pg_ctl", "-D", str(cluster.data), "-m", "smart", "-W", "stop"],
                check=True,
                capture_output=True,
            )
            lingering.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE application_name = '{APP_NAME}'"
            )

            response = call(server, "GET", "/api/heroes")

        assert_unavailable(response)


class TestDatabaseTooSlow:
    def test_statement_timeout_gives_503(self, server: str, cluster: PrivateCluster) -> None:
        with locked_heroes(cluster):
            response = call(server, "GET", "/api/heroes")

        assert_unavailable(response)
        assert call(server, "GET", "/api/heroes").status_code == 200

    def test_frozen_database_gives_503_not_a_hang(
        self, server: str, cluster: PrivateCluster
    ) -> None:
        with frozen(cluster):
            read = call(server, "GET", "/api/heroes")
            seconds_until(server, 503)
            ready = readiness(server)

        assert_unavailable(read)
        # The check hung past the statement bound (command_timeout): one such is enough.
        assert_problem(
            ready, 503, "the database did not answer within its connect or statement timeout"
        )
        wait_until_serving(server)

    def test_exhausted_pool_gives_503_after_a_bounded_wait(
        self, server: str, cluster: PrivateCluster
    ) -> None:
        with locked_heroes(cluster):
            waiting = [
                in_background(lambda: call(server, "GET", "/api/heroes"))
                for _ in range(int(BOUNDS["APP_DB_POOL_SIZE"]))
            ]
            wait_for_lock_waiters(cluster, len(waiting))

            starved = call(server, "GET", "/api/teams")

            for thread, _ in waiting:
                thread.join(CLIENT_TIMEOUT_SECONDS)

        assert_unavailable(starved)
        for _, answers in waiting:
            assert_unavailable(answers[0])

    def test_session_killed_mid_request_gives_503_and_the_next_request_succeeds(
        self, server: str, cluster: PrivateCluster
    ) -> None:
        with locked_heroes(cluster):
            thread, answers = in_background(lambda: call(server, "GET", "/api/heroes"))
            wait_for_lock_waiters(cluster, 1)
            sql(
                cluster,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE application_name = '{APP_NAME}'",
            )
            thread.join(CLIENT_TIMEOUT_SECONDS)

        assert_unavailable(answers[0])
        assert call(server, "GET", "/api/heroes").status_code == 200


@contextlib.contextmanager
def read_only(cluster: PrivateCluster) -> Generator[None]:
    """Every transaction read-only, as on a standby after a failover or in maintenance mode; the
    sessions already open take it on at the reload."""
    sql(cluster, "ALTER SYSTEM SET default_transaction_read_only = on")
    sql(cluster, "SELECT pg_reload_conf()")
    try:
        yield
    finally:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute("SET default_transaction_read_only = off")
            conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
            conn.execute("SELECT pg_reload_conf()")


@contextlib.contextmanager
def writes_locked(cluster: PrivateCluster) -> Generator[None]:
    """An EXCLUSIVE lock on `heroes`: reads go on, every write waits for it."""
    with psycopg.connect(cluster.url) as blocker:
        blocker.execute("LOCK TABLE heroes IN EXCLUSIVE MODE")
        yield
        blocker.rollback()


class TestWritesRefused:
    def test_a_read_only_database_refuses_the_write_by_its_sqlstate_while_reads_are_served(
        self, server: str, served: BackofficeServer, cluster: PrivateCluster
    ) -> None:
        before = scrape(server)
        with read_only(cluster):
            time.sleep(0.5)  # the reload reaches every session
            write = call(server, "POST", "/api/heroes", json=DEADPOND)
            read = call(server, "GET", "/api/heroes")
        after = scrape(server)

        assert_problem(write, 503, REFUSED_WRITE)
        assert write.headers["retry-after"] == "1"
        assert read.status_code == 200
        [line] = logged(served, write)
        assert line | {"timestamp": ""} == {
            "event": "the database refused the write: SQLSTATE 25006 (invalid_transaction_state): "
            "cannot execute INSERT in a read-only transaction",
            "level": "warning",
            "logger": "contract.problems",
            "timestamp": "",
            "request_id": write.headers["x-request-id"],
            "sqlstate": "25006",
            "sqlstate_class": "25",
            "class_name": "invalid_transaction_state",
            "error": "ReadOnlySQLTransactionError",
            "server_message": "cannot execute INSERT in a read-only transaction",
            "statement": "insert",
        }
        failures = {"sqlstate_class": "25", "class_name": "invalid_transaction_state"}
        assert increase(before, after, "db_errors_total", **failures) == 1
        # Refused before its handler ran (the signature's record is the first write), it is
        # counted under the operation it named.
        labels = {"operation": "createHero", "method": "POST", "status": "503"}
        assert increase(before, after, "http_requests_total", **labels) == 1

    def test_a_write_held_by_a_lock_past_the_statement_timeout_is_refused_while_reads_go_on(
        self, server: str, served: BackofficeServer, cluster: PrivateCluster
    ) -> None:
        hero = call(server, "POST", "/api/heroes", json=DEADPOND).json()
        with writes_locked(cluster):
            read = call(server, "GET", f"/api/heroes/{hero['id']}")
            write = call(
                server,
                "PATCH",
                f"/api/heroes/{hero['id']}",
                json={"age": 31},
                headers={"Content-Type": "application/merge-patch+json"},
            )

        assert read.status_code == 200
        assert_problem(write, 503, REFUSED_WRITE)
        [line] = logged(served, write)
        assert (line["sqlstate"], line["class_name"], line["statement"]) == (
            "57014",
            "operator_intervention",
            "update",
        )
        assert line["server_message"] == "canceling statement due to statement timeout"


DEADLINE_APP = "backoffice-deadline-test"
DEADLINE_SECONDS = 2
DEADLINE_POOL_SIZE = 3
STOPPED = f"the request did not complete within {DEADLINE_SECONDS} s and was stopped; retry later"


@pytest.fixture(scope="module")
def deadline_served(
    cluster: PrivateCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BackofficeServer]:
    """No statement timeout, and connect and pool bounds past the deadline: only the deadline
    can end a request that the database holds."""
    environment = signed_server_environment(
        cluster.url,
        TEST_KEY,
        APP_NAME=DEADLINE_APP,
        APP_REQUEST_TIMEOUT_SECONDS=str(DEADLINE_SECONDS),
        APP_DB_STATEMENT_TIMEOUT="0",
        APP_DB_CONNECT_TIMEOUT="10",
        APP_DB_POOL_TIMEOUT="10",
        APP_DB_POOL_SIZE=str(DEADLINE_POOL_SIZE),
    )
    log = tmp_path_factory.mktemp("deadline") / "server.log"
    with BackofficeServer(environment, log) as server:
        yield server


@pytest.fixture
def deadline_server(deadline_served: BackofficeServer, server: str) -> str:
    """The deadline's server, with the database up (the module's `server` sees to it)."""
    del server
    wait_until_serving(deadline_served.url)
    return deadline_served.url


def timed(request: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = request()
    return response, time.monotonic() - started


def app_sessions_waiting_on_a_lock(cluster: PrivateCluster) -> int:
    return sql(
        cluster,
        "SELECT count(*) FROM pg_stat_activity "
        f"WHERE application_name = '{DEADLINE_APP}' AND wait_event_type = 'Lock'",
    )[0][0]


class TestRequestDeadline:
    def test_a_read_held_by_a_lock_gets_503_at_the_deadline_and_its_statement_is_cancelled(
        self, deadline_server: str, deadline_served: BackofficeServer, cluster: PrivateCluster
    ) -> None:
        before = scrape(deadline_server)
        with locked_heroes(cluster):
            response, seconds = timed(lambda: call(deadline_server, "GET", "/api/heroes"))
            deadline = time.monotonic() + 2
            while app_sessions_waiting_on_a_lock(cluster) and time.monotonic() < deadline:
                time.sleep(0.05)
            still_waiting = app_sessions_waiting_on_a_lock(cluster)
        after = scrape(deadline_server)

        assert_problem(response, 503, STOPPED)
        assert response.headers["retry-after"] == "1"
        assert DEADLINE_SECONDS <= seconds < DEADLINE_SECONDS + 1.5
        # Cancelled in PostgreSQL while the lock was still held: not left waiting for it.
        assert still_waiting == 0
        assert increase(before, after, "http_request_deadline_exceeded_total") == 1
        [line] = logged(deadline_served, response)
        assert (line["level"], line["operation"], line["event"]) == (
            "warning",
            "listHeroes",
            f"stopped a request at the {DEADLINE_SECONDS} s deadline "
            "(APP_REQUEST_TIMEOUT_SECONDS), waiting for the service",
        )
        # The pool took no harm: the next requests are served at once.
        for _ in range(DEADLINE_POOL_SIZE + 1):
            assert call(deadline_server, "GET", "/api/heroes").status_code == 200

    def test_a_frozen_database_gets_503_at_the_deadline_not_a_hang(
        self, deadline_server: str, cluster: PrivateCluster
    ) -> None:
        with frozen(cluster):
            read, read_seconds = timed(lambda: call(deadline_server, "GET", "/api/heroes"))
            write, write_seconds = timed(
                lambda: call(deadline_server, "POST", "/api/heroes", json=DEADPOND)
            )

        assert_problem(read, 503, STOPPED)
        assert_problem(write, 503, STOPPED)
        assert read_seconds < DEADLINE_SECONDS + 1.5
        assert write_seconds < DEADLINE_SECONDS + 1.5
        wait_until_serving(deadline_server)

    def test_a_body_that_does_not_arrive_gets_408_at_the_deadline_and_the_connection_closes(
        self, deadline_server: str
    ) -> None:
        body = orjson.dumps(DEADPOND)
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        headers |= signing.signed_headers("POST", "/api/heroes", body, TEST_KEY, 2, headers=headers)
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        port = int(deadline_server.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(
                f"POST /api/heroes HTTP/1.1\r\nHost: test\r\n{head}\r\n".encode() + body[:5]
            )
            started = time.monotonic()
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
            seconds = time.monotonic() - started

        status, _, rest = answer.partition(b"\r\n")
        assert status == b"HTTP/1.1 408 Request Timeout"
        assert b"\r\nconnection: close\r\n" in rest.lower()
        problem = json.loads(rest.split(b"\r\n\r\n", 1)[1])
        assert problem["detail"] == f"the request's body did not arrive within {DEADLINE_SECONDS} s"
        assert DEADLINE_SECONDS <= seconds < DEADLINE_SECONDS + 1.5


def readiness(url: str) -> httpx.Response:
    return httpx.get(f"{url}/health/ready", timeout=CLIENT_TIMEOUT_SECONDS)


def seconds_until(url: str, status: int, *, within: float = 20) -> float:
    """How long until `/health/ready` answers `status`, probing every 0.1 s as a balancer does."""
    started = time.monotonic()
    while readiness(url).status_code != status:
        assert time.monotonic() - started < within, f"readiness not {status} within {within} s"
        time.sleep(0.1)
    return time.monotonic() - started


class TestReadiness:
    """Ready: this replica can serve reads and writes within the deadline, judged by a check
    every second; not ready after 3 failed checks in a row, ready again after 2 good ones."""

    def test_a_read_only_database_makes_it_unready_after_three_checks_while_reads_go_on(
        self, server: str, cluster: PrivateCluster
    ) -> None:
        assert readiness(server).status_code == 200
        with read_only(cluster):
            unready_after = seconds_until(server, 503)
            refused = readiness(server)
            read = call(server, "GET", "/api/heroes")
        ready_after = seconds_until(server, 200)

        assert_problem(
            refused, 503, "the database refuses writes: SQLSTATE 25006 (invalid_transaction_state)"
        )
        assert refused.headers["retry-after"] == "1"
        assert read.status_code == 200
        # Three failed checks, a second apart: not at the first one.
        assert (FALL - 1) * CHECK_INTERVAL_SECONDS - 0.5 <= unready_after < FALL * 2 + 2
        assert (RISE - 1) * CHECK_INTERVAL_SECONDS - 0.5 <= ready_after < RISE * 2 + 2

    def test_a_lock_that_holds_every_write_makes_it_unready_until_it_is_released(
        self, server: str, cluster: PrivateCluster
    ) -> None:
        with writes_locked(cluster):
            seconds_until(server, 503)
            refused = readiness(server)
            read = call(server, "GET", "/api/heroes")
        seconds_until(server, 200)

        assert_problem(
            refused,
            503,
            "writes wait for a lock on the API's tables: none was granted within 1 s "
            "(SQLSTATE 55P03)",
        )
        assert read.status_code == 200

    def test_a_lock_held_for_a_moment_leaves_it_ready_throughout(
        self, server: str, cluster: PrivateCluster
    ) -> None:
        statuses: list[int] = []

        def probe_for(seconds: float) -> None:
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                statuses.append(readiness(server).status_code)
                time.sleep(0.1)

        prober = threading.Thread(target=probe_for, args=(5,))
        prober.start()
        with writes_locked(cluster):
            time.sleep(1.2)  # fails a check or two: fewer than three in a row
        prober.join()

        assert len(statuses) > 20
        assert set(statuses) == {200}

    def test_a_400_ms_round_trip_leaves_it_ready_and_serving_without_flapping(
        self, server: str, cluster: PrivateCluster, tmp_path: Path
    ) -> None:
        del server  # only for its database, up and answering
        with latency_proxy(cluster.port) as proxy:
            far = f"postgresql://{cluster.user}@127.0.0.1:{proxy.port}/postgres"
            environment = signed_server_environment(far, TEST_KEY, APP_NAME="backoffice-far")
            with BackofficeServer(environment, tmp_path / "server.log") as process:
                seconds_until(process.url, 200)
                proxy.delay_seconds = 0.2
                statuses = []
                until = time.monotonic() + 8
                while time.monotonic() < until:
                    statuses.append(readiness(process.url).status_code)
                    time.sleep(0.1)
                reads = [timed(lambda: call(process.url, "GET", "/api/heroes")) for _ in range(3)]
                report = httpx.get(f"{process.url}/health", timeout=CLIENT_TIMEOUT_SECONDS).json()

        assert len(statuses) > 40
        assert set(statuses) == {200}
        for response, seconds in reads:
            assert response.status_code == 200
            assert 0.4 <= seconds < 10
        # The checks did meet the round trip: one of them takes several.
        assert report["checks"]["database"]["latency_ms"] >= 400


class TestWritesThroughAnOutage:
    def test_retried_writes_are_all_stored_exactly_once(
        self, server: str, cluster: PrivateCluster
    ) -> None:
        """Clients retry each create with its Idempotency-Key until acknowledged."""
        writes = 60
        outcomes: dict[int, list[int]] = {}

        async def create(client: AsyncSignedClient, n: int, key: str) -> None:
            hero = DEADPOND | {"name": f"hero {n}", "age": n}
            while True:
                response = await client.post(
                    "/api/heroes", json=hero, headers={"Idempotency-Key": key}
                )
                outcomes.setdefault(n, []).append(response.status_code)
                if response.status_code == 201:
                    return
                assert_unavailable(response)
                await asyncio.sleep(float(response.headers["retry-after"]) / 4)

        async def outage() -> None:
            await asyncio.sleep(0.5)
            await asyncio.to_thread(cluster.stop, "fast")
            await asyncio.sleep(2)
            await asyncio.to_thread(cluster.start)

        async def scenario() -> None:
            client = signed(server)
            try:
                failure = asyncio.create_task(outage())
                for n in range(writes):
                    await asyncio.gather(
                        *(create(client, n * 3 + i, str(uuid.uuid4())) for i in range(3))
                    )
                    await asyncio.sleep(0.05)
                await failure
            finally:
                await client.aclose()

        before = scrape(server)
        asyncio.run(scenario())
        after = scrape(server)

        rows = sql(cluster, "SELECT name, age FROM heroes WHERE name LIKE 'hero %' ORDER BY age")
        assert rows == [(f"hero {n}", n) for n in range(writes * 3)]
        assert any(503 in statuses for statuses in outcomes.values()), "no request met the outage"
        # Every attempt, refused or not, is counted under the operation it named: a dashboard
        # by operation sees each failed write.
        answered = [status for statuses in outcomes.values() for status in statuses]
        for status in (201, 503):
            labels = {"operation": "createHero", "method": "POST", "status": str(status)}
            assert increase(before, after, "http_requests_total", **labels) == answered.count(
                status
            )
        unmatched = {"operation": "unmatched", "method": "POST", "status": "503"}
        assert increase(before, after, "http_requests_total", **unmatched) == 0

    def test_unacknowledged_team_deletions_are_all_or_nothing(
        self, server: str, cluster: PrivateCluster
    ) -> None:
        """Deleting a team unassigns its heroes in the same transaction: both or neither."""
        teams = 30
        answers: dict[int, int] = {}

        async def scenario() -> None:
            client = signed(server)
            try:
                team_ids = []
                for n in range(teams):
                    team = await client.post(
                        "/api/teams", json={"name": f"doomed {n}", "headquarters": "HQ"}
                    )
                    team_ids.append(team.json()["id"])
                    for _ in range(3):
                        await client.post(
                            "/api/heroes",
                            json=DEADPOND | {"name": f"member {n}", "team_id": team.json()["id"]},
                        )
                stopping = asyncio.create_task(asyncio.to_thread(cluster.stop, "immediate"))
                for team_id in team_ids:
                    answers[team_id] = (await client.delete(f"/api/teams/{team_id}")).status_code
                await stopping
            finally:
                await client.aclose()

        asyncio.run(scenario())
        cluster.start()

        assert set(answers.values()) <= {204, 503}
        remaining = {
            row[0] for row in sql(cluster, "SELECT id FROM teams WHERE name LIKE 'doomed %'")
        }
        members = sql(
            cluster, "SELECT team_id, version, name FROM heroes WHERE name LIKE 'member %'"
        )
        assert len(members) == teams * 3
        for team_id, answer in answers.items():
            if answer == 204:
                assert team_id not in remaining
        for team_id, version, _name in members:
            if team_id is None:
                assert version == 2, "a hero was unassigned without its version moving on"
            else:
                assert team_id in remaining
                assert version == 1


def wait_until_refusing_connections(url: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/health/live", timeout=1)
        except httpx.ConnectError:
            return
        time.sleep(0.05)
    raise AssertionError("the server still accepts connections 10 s after SIGTERM")


class TestShutdown:
    def test_sigterm_lets_the_request_in_flight_finish_then_closes_the_pool(
        self, server: str, cluster: PrivateCluster, tmp_path: Path
    ) -> None:
        del server  # only for its database, up and answering
        name = "backoffice-shutdown-test"
        environment = signed_server_environment(
            cluster.url, TEST_KEY, APP_NAME=name, APP_SHUTDOWN_GRACE_SECONDS="20"
        )
        with BackofficeServer(environment, tmp_path / "server.log") as process:
            with locked_heroes(cluster):
                thread, answers = in_background(
                    lambda: call(process.url, "POST", "/api/heroes", json=DEADPOND)
                )
                wait_for_lock_waiters(cluster, 1, app_name=name)
                process.terminate()
                wait_until_refusing_connections(process.url)
            thread.join(CLIENT_TIMEOUT_SECONDS)
            exit_code = process.wait(CLIENT_TIMEOUT_SECONDS)

        assert answers[0].status_code == 201
        # uvicorn re-raises the SIGTERM it handled once shut down: the conventional exit status.
        assert exit_code == -signal.SIGTERM
        sessions = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}'"
        assert sql(cluster, sessions) == [(0,)]
        assert sql(
            cluster, f"SELECT count(*) FROM heroes WHERE id = {answers[0].json()['id']}"
        ) == [(1,)]
