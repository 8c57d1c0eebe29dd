"""Many clients at once against a real two-worker server on PostgreSQL: no update lost, nothing
doubled."""

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import URL, create_engine, text

from settings import Settings
from tests.backoffice_process import AsyncSignedClient, BackofficeServer, signed_server_environment
from tests.conftest import TEST_KEY, fresh_postgres_database, truncate_all
from tests.problem_assertions import assert_problem

pytestmark = pytest.mark.slow

CLIENTS = 20
DEADPOND = {"name": "Deadpond", "secret_name": "Dive Wilson", "age": 30}


@pytest.fixture(scope="module")
def database(postgres_server: URL) -> Iterator[URL]:
    yield from fresh_postgres_database(postgres_server)


@pytest.fixture(scope="module")
def server(database: URL, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("concurrency") / "server.log"
    url = database.set(drivername="postgresql").render_as_string(hide_password=False)
    environment = signed_server_environment(url, TEST_KEY, APP_DB_POOL_SIZE="5")
    with BackofficeServer(environment, log, workers=2) as served:
        yield served.url


@pytest.fixture
def base_url(server: str, database: URL) -> str:
    truncate_all(Settings(db_url=database.render_as_string(hide_password=False), debug=True))
    return server


def run(scenario: Callable[[AsyncSignedClient], Awaitable[Any]], base_url: str) -> Any:
    async def with_client() -> Any:
        client = AsyncSignedClient(base_url, TEST_KEY)
        try:
            return await scenario(client)
        finally:
            await client.aclose()

    return asyncio.run(with_client())


def query(database: URL, sql: str) -> list[Any]:
    engine = create_engine(database.set(drivername="postgresql+psycopg"))
    with engine.connect() as conn:
        rows = list(conn.execute(text(sql)))
    engine.dispose()
    return rows


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


class TestConditionalUpdates:
    def test_parallel_patches_with_the_same_if_match_let_exactly_one_win(
        self, base_url: str
    ) -> None:
        async def scenario(client: AsyncSignedClient) -> tuple[list[httpx.Response], Any]:
            hero = (await client.post("/api/heroes", json=DEADPOND)).json()
            path = f"/api/heroes/{hero['id']}"
            patches = await asyncio.gather(
                *(
                    client.patch(path, json={"age": age}, headers={"If-Match": '"1"'})
                    for age in range(CLIENTS)
                )
            )
            return patches, (await client.get(path))

        patches, final = run(scenario, base_url)

        assert statuses(patches) == {200: 1, 412: CLIENTS - 1}
        (winner,) = [patch for patch in patches if patch.status_code == 200]
        assert final.json()["age"] == winner.json()["age"]
        assert final.headers["etag"] == '"2"'
        for loser in (patch for patch in patches if patch.status_code == 412):
            hero_id = winner.json()["id"]
            assert_problem(loser, 412, f'hero {hero_id} has changed: its ETag is now "2"')

    def test_read_modify_write_clients_that_retry_on_412_lose_no_increment(
        self, base_url: str
    ) -> None:
        increments_per_client = 3

        async def increment(client: AsyncSignedClient, path: str) -> int:
            refused = 0
            for _ in range(increments_per_client):
                while True:
                    current = await client.get(path)
                    changed = await client.patch(
                        path,
                        json={"age": current.json()["age"] + 1},
                        headers={"If-Match": current.headers["etag"]},
                    )
                    if changed.status_code == 200:
                        break
                    assert changed.status_code == 412, changed.text
                    refused += 1
            return refused

        async def scenario(client: AsyncSignedClient) -> tuple[int, list[int]]:
            hero = (await client.post("/api/heroes", json=DEADPOND | {"age": 0})).json()
            path = f"/api/heroes/{hero['id']}"
            refusals = await asyncio.gather(*(increment(client, path) for _ in range(10)))
            return (await client.get(path)).json()["age"], refusals

        age, refusals = run(scenario, base_url)

        assert age == 10 * increments_per_client
        assert sum(refusals) > 0, "the clients never collided: the test proved nothing"


class TestUniqueNames:
    def test_concurrent_creates_of_one_team_name_give_one_201_and_409s(
        self, base_url: str, database: URL
    ) -> None:
        async def scenario(client: AsyncSignedClient) -> list[httpx.Response]:
            return await asyncio.gather(
                *(
                    client.post("/api/teams", json={"name": "Avengers", "headquarters": f"HQ {n}"})
                    for n in range(CLIENTS)
                )
            )

        responses = run(scenario, base_url)

        assert statuses(responses) == {201: 1, 409: CLIENTS - 1}
        (winner,) = [response.json()["id"] for response in responses if response.status_code == 201]
        for refused in (response for response in responses if response.status_code == 409):
            assert_problem(
                refused, 409, f"a team named 'Avengers' already exists (team {winner})", "name"
            )
        assert query(database, "SELECT count(*) FROM teams") == [(1,)]


class TestTeamDeletion:
    def test_deleting_a_team_while_heroes_join_it_leaves_no_hero_in_a_missing_team(
        self, base_url: str, database: URL
    ) -> None:
        async def round_of(client: AsyncSignedClient, n: int) -> list[httpx.Response]:
            team = (
                await client.post("/api/teams", json={"name": f"Team {n}", "headquarters": "HQ"})
            ).json()
            members = [
                (await client.post("/api/heroes", json=DEADPOND)).json()["id"] for _ in range(5)
            ]
            joins = [
                client.post("/api/heroes", json=DEADPOND | {"team_id": team["id"]})
                for _ in range(8)
            ] + [
                client.patch(f"/api/heroes/{hero_id}", json={"team_id": team["id"]})
                for hero_id in members
            ]
            deletion = client.delete(f"/api/teams/{team['id']}")
            return await asyncio.gather(*joins[:6], deletion, *joins[6:])

        async def scenario(client: AsyncSignedClient) -> list[httpx.Response]:
            return [response for n in range(5) for response in await round_of(client, n)]

        responses = run(scenario, base_url)

        assert set(statuses(responses)) <= {200, 201, 204, 409}
        assert statuses(responses)[204] == 5
        for refused in (response for response in responses if response.status_code == 409):
            assert refused.json()["field"] == "team_id"
        assert query(database, "SELECT count(*) FROM heroes WHERE team_id IS NOT NULL") == [(0,)]
        assert query(database, "SELECT count(*) FROM teams") == [(0,)]


class TestIdempotencyKeys:
    def test_parallel_posts_with_one_idempotency_key_create_exactly_one_row(
        self, base_url: str, database: URL
    ) -> None:
        key = {"Idempotency-Key": str(uuid.uuid4())}

        async def scenario(client: AsyncSignedClient) -> tuple[list[httpx.Response], Any]:
            burst = await asyncio.gather(
                *(client.post("/api/heroes", json=DEADPOND, headers=key) for _ in range(CLIENTS))
            )
            return burst, await client.post("/api/heroes", json=DEADPOND, headers=key)

        burst, later = run(scenario, base_url)

        assert set(statuses(burst)) <= {201, 409}
        created = [response for response in burst if response.status_code == 201]
        assert created
        assert {response.json()["id"] for response in created} == {later.json()["id"]}
        assert [r.headers.get("idempotent-replayed") for r in created].count(None) == 1
        for in_flight in (response for response in burst if response.status_code == 409):
            assert in_flight.headers["retry-after"] == "1"
        assert later.headers["idempotent-replayed"] == "true"
        assert query(database, "SELECT count(*) FROM heroes") == [(1,)]
