"""Idempotency-Key on POST: a retry replays the first response and never creates twice."""

import asyncio
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Connection, Engine, create_engine, select, text, update
from starlette.testclient import TestClient

from app import create_app
from persistence.database import create_engine as create_async_engine
from persistence.idempotency import purge_expired_keys
from persistence.tables import idempotency_keys
from settings import Settings
from tests.conftest import TEST_KEY
from tests.problem_assertions import assert_problem
from tests.signed_client import SignedClient

DEADPOND = {"name": "Deadpond", "secret_name": "Dive Wilson", "age": 30}
PREVENTERS = {"name": "Preventers", "headquarters": "Sharp Tower"}


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def new_key() -> str:
    return str(uuid.uuid4())


def assert_replayed(replay: httpx.Response, first: httpx.Response) -> None:
    assert replay.status_code == first.status_code
    assert replay.json() == first.json()
    for header in ("location", "etag", "content-type"):
        assert replay.headers[header] == first.headers[header]
    assert replay.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers


def sync_engine(settings: Settings) -> Engine:
    url = settings.database_url
    driver = "postgresql+psycopg" if url.get_backend_name() == "postgresql" else "sqlite"
    return create_engine(url.set(drivername=driver))


def expire_all_keys(settings: Settings) -> None:
    engine = sync_engine(settings)
    with engine.begin() as conn:
        conn.execute(
            update(idempotency_keys).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    engine.dispose()


def stored_keys(settings: Settings) -> list[str]:
    engine = sync_engine(settings)
    with engine.connect() as conn:
        keys = list(conn.execute(select(idempotency_keys.c.key)).scalars())
    engine.dispose()
    return keys


def run_purge(settings: Settings) -> int:
    async def purge() -> int:
        engine = create_async_engine(settings, pooled=False)
        try:
            async with engine.begin() as conn:
                return await purge_expired_keys(conn=conn, now=datetime.now(UTC))
        finally:
            await engine.dispose()

    return asyncio.run(purge())


@pytest.fixture
def pg_engine(backend_settings: dict[str, Settings]) -> Iterator[Engine]:
    engine = sync_engine(backend_settings["postgresql"])
    yield engine
    engine.dispose()


class TestRetryWithTheSameKey:
    def test_retried_hero_creation_replays_the_first_response_and_creates_nothing(
        self, client: SignedClient
    ) -> None:
        key = new_key()
        first = client.post("/api/heroes", json=DEADPOND, headers=keyed(key))

        retry = client.post("/api/heroes", json=DEADPOND, headers=keyed(key))

        assert first.status_code == 201
        assert_replayed(retry, first)
        assert [hero["id"] for hero in client.get("/api/heroes").json()["items"]] == [
            first.json()["id"]
        ]

    def test_retried_team_creation_replays_the_first_response_and_creates_nothing(
        self, client: SignedClient
    ) -> None:
        key = new_key()
        first = client.post("/api/teams", json=PREVENTERS, headers=keyed(key))

        retry = client.post("/api/teams", json=PREVENTERS, headers=keyed(key))

        assert first.status_code == 201
        assert_replayed(retry, first)
        assert len(client.get("/api/teams").json()["items"]) == 1

    def test_replay_is_the_first_response_even_after_the_resource_changed(
        self, client: SignedClient
    ) -> None:
        key = new_key()
        first = client.post("/api/heroes", json=DEADPOND, headers=keyed(key))
        client.patch(first.headers["location"], json={"age": 31})

        retry = client.post("/api/heroes", json=DEADPOND, headers=keyed(key))

        assert_replayed(retry, first)
        assert retry.json()["age"] == 30
        assert retry.headers["etag"] == '"1"'

    def test_requests_without_a_key_are_not_deduplicated(self, client: SignedClient) -> None:
        client.post("/api/heroes", json=DEADPOND)
        client.post("/api/heroes", json=DEADPOND)

        assert len(client.get("/api/heroes").json()["items"]) == 2

    def test_retry_served_by_another_app_instance_is_replayed(
        self, pg_client: SignedClient, backend_settings: dict[str, Settings]
    ) -> None:
        key = new_key()
        first = pg_client.post("/api/teams", json=PREVENTERS, headers=keyed(key))

        with TestClient(create_app(backend_settings["postgresql"])) as other_worker:
            retry = SignedClient(other_worker, TEST_KEY).post(
                "/api/teams", json=PREVENTERS, headers=keyed(key)
            )

        assert_replayed(retry, first)


class TestKeyReuse:
    def test_same_key_with_a_different_payload_is_refused_with_422(
        self, client: SignedClient
    ) -> None:
        key = new_key()
        client.post("/api/heroes", json=DEADPOND, headers=keyed(key))

        response = client.post("/api/heroes", json=DEADPOND | {"age": 31}, headers=keyed(key))

        assert_problem(
            response,
            422,
            "this Idempotency-Key was used with a different request payload",
            "Idempotency-Key",
        )
        assert len(client.get("/api/heroes").json()["items"]) == 1

    def test_same_key_on_another_operation_is_a_separate_request(
        self, client: SignedClient
    ) -> None:
        key = new_key()
        team = client.post("/api/teams", json=PREVENTERS, headers=keyed(key))

        hero = client.post("/api/heroes", json=DEADPOND, headers=keyed(key))

        assert (team.status_code, hero.status_code) == (201, 201)
        assert "idempotent-replayed" not in hero.headers

    def test_key_longer_than_255_characters_is_refused_with_400(self, client: SignedClient) -> None:
        key = "k" * 256

        response = client.post("/api/heroes", json=DEADPOND, headers=keyed(key))

        assert_problem(
            response,
            400,
            f"header parameter 'Idempotency-Key': '{key}' is too long",
            "Idempotency-Key",
        )

    def test_key_with_a_space_is_refused_with_400(self, client: SignedClient) -> None:
        response = client.post("/api/heroes", json=DEADPOND, headers=keyed("two words"))

        assert_problem(
            response,
            400,
            "header parameter 'Idempotency-Key': 'two words' does not match '^[!-~]+$'",
            "Idempotency-Key",
        )


class TestFailedRequestsAreNotStored:
    def test_refused_request_can_be_retried_with_its_key_once_the_cause_is_fixed(
        self, client: SignedClient
    ) -> None:
        key = new_key()
        recruit = DEADPOND | {"team_id": 1}
        refused = client.post("/api/heroes", json=recruit, headers=keyed(key))
        client.post("/api/teams", json=PREVENTERS)

        retry = client.post("/api/heroes", json=recruit, headers=keyed(key))

        assert_problem(refused, 409, "team 1 does not exist", "team_id")
        assert retry.status_code == 201
        assert "idempotent-replayed" not in retry.headers

    def test_duplicate_name_conflict_is_answered_afresh_on_retry(
        self, client: SignedClient
    ) -> None:
        client.post("/api/teams", json=PREVENTERS)
        key = new_key()

        answers = [client.post("/api/teams", json=PREVENTERS, headers=keyed(key)) for _ in range(2)]

        for answer in answers:
            assert_problem(answer, 409, "a team named 'Preventers' already exists (team 1)", "name")
            assert "idempotent-replayed" not in answer.headers


class TestKeyInFlight:
    def test_retry_while_the_first_request_is_in_flight_is_refused_with_409(
        self, pg_client: SignedClient, pg_engine: Engine
    ) -> None:
        key = new_key()
        results: list[httpx.Response] = []
        with pg_engine.connect() as blocker:
            # The first request takes the key, then waits for this lock inside its transaction.
            blocker.execute(text("LOCK TABLE heroes IN EXCLUSIVE MODE"))
            first = threading.Thread(
                target=lambda: results.append(
                    pg_client.post("/api/heroes", json=DEADPOND, headers=keyed(key))
                )
            )
            first.start()
            wait_until_waiting_for_a_lock(blocker)
            retry = pg_client.post("/api/heroes", json=DEADPOND, headers=keyed(key))
            blocker.rollback()
        first.join(timeout=30)

        assert_problem(
            retry,
            409,
            "a request with this Idempotency-Key is still in progress; retry after Retry-After",
            "Idempotency-Key",
        )
        assert retry.headers["retry-after"] == "1"
        assert [response.status_code for response in results] == [201]
        later = pg_client.post("/api/heroes", json=DEADPOND, headers=keyed(key))
        assert_replayed(later, results[0])


def wait_until_waiting_for_a_lock(observer: Connection) -> None:
    """Until some other session of this database is waiting for a lock (bounded)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(300):
        if observer.execute(query).scalar_one():
            return
        threading.Event().wait(0.02)
    raise AssertionError("no request came to wait for the lock within 6 s")


class TestExpiry:
    def test_expired_key_is_a_new_request(
        self, client: SignedClient, backend: str, backend_settings: dict[str, Settings]
    ) -> None:
        key = new_key()
        client.post("/api/heroes", json=DEADPOND, headers=keyed(key))
        expire_all_keys(backend_settings[backend])

        retry = client.post("/api/heroes", json=DEADPOND, headers=keyed(key))

        assert retry.status_code == 201
        assert "idempotent-replayed" not in retry.headers
        assert len(client.get("/api/heroes").json()["items"]) == 2

    def test_purge_removes_expired_keys_only(
        self, client: SignedClient, backend: str, backend_settings: dict[str, Settings]
    ) -> None:
        settings = backend_settings[backend]
        client.post("/api/heroes", json=DEADPOND, headers=keyed(new_key()))
        expire_all_keys(settings)
        live = new_key()
        client.post("/api/heroes", json=DEADPOND, headers=keyed(live))

        purged = run_purge(settings)

        assert purged == 1
        assert stored_keys(settings) == [live]
