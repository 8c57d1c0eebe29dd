"""Three replicas behind HAProxy, PgBouncer in transaction pooling mode in front of a private
PostgreSQL cluster (`bench/scaleout.py`): what one replica records, every other one honours,
and neither a rolling restart nor a PostgreSQL restart loses an acknowledged write."""

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest

import signing
from bench.scaleout import INSTALL_HINT, Rig, missing_programs
from tests.backoffice_process import AsyncSignedClient, BackofficeServer, signed_server_environment
from tests.conftest import TEST_KEY
from tests.postgres_cluster import PrivateCluster, running_cluster
from tests.problem_assertions import assert_problem

pytestmark = pytest.mark.slow

CLIENTS = 20
DEADPOND = {"name": "Deadpond", "secret_name": "Dive Wilson", "age": 30}
REPLAYED = "this signature was already used: sign each request afresh"
# Small bounds, so that a request meeting a stopped PostgreSQL ends quickly with a 503.
BOUNDS = {
    "APP_DB_CONNECT_TIMEOUT": "2",
    "APP_DB_STATEMENT_TIMEOUT": "3000",
    "APP_DB_POOL_TIMEOUT": "2",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    with running_cluster() as private:
        yield private


@pytest.fixture(scope="module")
def rig(cluster: PrivateCluster) -> Iterator[Rig]:
    if missing := missing_programs():
        pytest.fail(f"the scale-out tests need {', '.join(missing)}: {INSTALL_HINT}")
    with Rig(cluster.url, TEST_KEY, environment=BOUNDS) as started:
        yield started


def sql(cluster: PrivateCluster, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        cursor = conn.execute(statement)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def run[T](scenario: Callable[[AsyncSignedClient], Awaitable[T]], url: str) -> T:
    async def with_client() -> T:
        client = AsyncSignedClient(url, TEST_KEY, timeout=30)
        try:
            return await scenario(client)
        finally:
            await client.aclose()

    return asyncio.run(with_client())


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


def test_a_signature_accepted_by_one_replica_is_refused_as_a_replay_by_every_other(
    rig: Rig,
) -> None:
    body = orjson.dumps(DEADPOND)
    headers = {"Content-Type": "application/json"}
    headers |= signing.signed_headers("POST", "/api/heroes", body, TEST_KEY, 2, headers=headers)
    first, *others = rig.replicas

    accepted = httpx.post(f"{first.url}/api/heroes", content=body, headers=headers)
    refused = [
        httpx.post(f"{other.url}/api/heroes", content=body, headers=headers) for other in others
    ]

    assert accepted.status_code == 201, accepted.text
    assert len(refused) == 2
    for response in refused:
        assert_problem(response, 401, REPLAYED, "Signature")


def test_concurrent_creates_with_one_idempotency_key_over_the_replicas_make_one_row(
    rig: Rig, cluster: PrivateCluster
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    name = f"idempotent {uuid.uuid4()}"

    async def scenario(client: AsyncSignedClient) -> tuple[list[httpx.Response], httpx.Response]:
        body = DEADPOND | {"name": name}
        burst = await asyncio.gather(
            *(client.post("/api/heroes", json=body, headers=key) for _ in range(CLIENTS))
        )
        return burst, await client.post("/api/heroes", json=body, headers=key)

    burst, later = run(scenario, rig.url)

    assert set(statuses(burst)) <= {201, 409}, statuses(burst)
    created = [response for response in burst if response.status_code == 201]
    assert [r.headers.get("idempotent-replayed") for r in created].count(None) == 1
    assert {response.json()["id"] for response in created} == {later.json()["id"]}
    for in_flight in (response for response in burst if response.status_code == 409):
        assert in_flight.headers["retry-after"] == "1"
    assert later.headers["idempotent-replayed"] == "true"
    assert sql(cluster, f"SELECT count(*) FROM heroes WHERE name = '{name}'") == [(1,)]


def test_concurrent_if_match_patches_over_the_replicas_let_exactly_one_win(rig: Rig) -> None:
    async def scenario(client: AsyncSignedClient) -> list[httpx.Response]:
        hero = (await client.post("/api/heroes", json=DEADPOND)).json()
        return await asyncio.gather(
            *(
                client.patch(
                    f"/api/heroes/{hero['id']}", json={"age": age}, headers={"If-Match": '"1"'}
                )
                for age in range(CLIENTS)
            )
        )

    patches = run(scenario, rig.url)

    assert statuses(patches) == {200: 1, 412: CLIENTS - 1}


async def _api_flow(client: AsyncSignedClient) -> list[int]:
    body = {"name": f"team {uuid.uuid4().hex[:12]}", "headquarters": "Sharp Tower"}
    team = await client.post("/api/teams", json=body)
    hero = await client.post("/api/heroes", json=DEADPOND | {"team_id": team.json()["id"]})
    path = f"/api/heroes/{hero.json()['id']}"
    steps = [
        team,
        hero,
        await client.get(path),
        await client.get("/api/heroes?limit=5"),
        await client.get(f"/api/teams/{team.json()['id']}"),
        await client.patch(path, json={"age": 31}, headers={"If-Match": hero.headers["etag"]}),
        await client.patch(path, json={"age": 32}, headers={"If-Match": hero.headers["etag"]}),
        await client.delete(path),
        await client.get(path),
        await client.delete(f"/api/teams/{team.json()['id']}"),
    ]
    return [step.status_code for step in steps]


FLOW = [201, 201, 200, 200, 200, 200, 412, 204, 404, 204]


def test_the_whole_api_flow_works_through_pgbouncer_in_transaction_mode(rig: Rig) -> None:
    # Enough rounds that statements meet server connections other transactions prepared on.
    for _ in range(3):
        assert run(_api_flow, rig.url) == FLOW


def test_the_whole_api_flow_works_directly_against_postgresql(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    environment = signed_server_environment(cluster.url, TEST_KEY)
    with BackofficeServer(environment, tmp_path / "direct.log") as server:
        assert run(_api_flow, server.url) == FLOW


class Traffic:
    """Signed creates through HAProxy from a few clients until stopped; every answer kept."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url = url
        self.clients = clients
        self.answers: list[tuple[str, int | str, httpx.Response | None]] = []
        self.stopping = asyncio.Event()

    async def _client(self, number: int) -> None:
        client = AsyncSignedClient(self.url, TEST_KEY, timeout=30)
        try:
            for serial in itertools.count():
                if self.stopping.is_set():
                    return
                name = f"traffic {number}-{serial}-{uuid.uuid4().hex[:8]}"
                try:
                    response = await client.post("/api/heroes", json=DEADPOND | {"name": name})
                except httpx.TransportError as error:
                    self.answers.append((name, type(error).__name__, None))
                else:
                    self.answers.append((name, response.status_code, response))
                await asyncio.sleep(0.01)
        finally:
            await client.aclose()

    async def during(self, action: Any) -> None:
        tasks = [asyncio.create_task(self._client(n)) for n in range(self.clients)]
        try:
            await asyncio.to_thread(action)
        finally:
            self.stopping.set()
            await asyncio.gather(*tasks)

    def acknowledged(self) -> set[str]:
        return {name for name, status, _ in self.answers if status == 201}


def stored_names(cluster: PrivateCluster) -> set[str]:
    return {row[0] for row in sql(cluster, "SELECT name FROM heroes WHERE name LIKE 'traffic %'")}


def test_a_rolling_restart_under_signed_traffic_fails_no_request_and_loses_no_write(
    rig: Rig, cluster: PrivateCluster
) -> None:
    sql(cluster, "DELETE FROM heroes WHERE name LIKE 'traffic %'")
    traffic = Traffic(rig.url)
    exits: list[int | None] = []

    def roll() -> None:
        time.sleep(0.5)
        for replica in rig.replicas:
            exits.append(rig.restart(replica))
            rig.wait_until_balanced()
            time.sleep(0.5)  # HAProxy's two passing checks

    asyncio.run(traffic.during(roll))

    failed = [(name, status) for name, status, _ in traffic.answers if status != 201]
    assert failed == [], rig.logs()
    assert len(traffic.answers) > 20, "too little traffic to prove anything"
    assert exits == [-15, -15, -15]  # each stopped by its SIGTERM, not killed
    assert traffic.acknowledged() <= stored_names(cluster)


def test_a_postgresql_restart_gives_503s_with_retry_after_then_recovers_losing_nothing(
    rig: Rig, cluster: PrivateCluster
) -> None:
    sql(cluster, "DELETE FROM heroes WHERE name LIKE 'traffic %'")
    traffic = Traffic(rig.url)

    def restart_postgresql() -> None:
        time.sleep(0.5)
        cluster.stop("fast")
        # Longer than the rig's PgBouncer query_wait_timeout (5 s): a shorter outage may pass
        # unseen, PgBouncer holding each create until the server is back and the replicas
        # staying ready through it (a readiness check fails only after 3 s of failing).
        time.sleep(6)
        cluster.start()
        # Served again, with no replica restarted: wait for a create to succeed after this.
        deadline = time.monotonic() + 30
        seen = len(traffic.answers)
        while time.monotonic() < deadline:
            if any(status == 201 for _, status, _ in traffic.answers[seen:]):
                return
            time.sleep(0.1)

    asyncio.run(traffic.during(restart_postgresql))

    kinds = Counter(status for _, status, _ in traffic.answers)
    assert set(kinds) <= {201, 503}, kinds
    assert kinds[503] > 0, "PostgreSQL's restart went unnoticed: the test proved nothing"
    for _, status, response in traffic.answers:
        if status == 503:
            assert response is not None
            assert response.headers["retry-after"] == "1"
    # Recovered with no replica restarted: creates succeed again after the outage began (a
    # pooled connection that died with the server may still answer one late 503 of its own).
    statuses = [status for _, status, _ in traffic.answers]
    assert 201 in statuses[statuses.index(503) :], "the service did not recover"
    assert traffic.acknowledged() <= stored_names(cluster)
    with contextlib.suppress(Exception):
        rig.wait_until_balanced()
