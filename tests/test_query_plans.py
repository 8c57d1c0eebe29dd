"""The list and get queries read through an index however large the table: EXPLAIN proves it.

The plans are those PostgreSQL picks for the statements `persistence/heroes.py` really sends
(captured as they execute), on a hundred thousand analysed rows in a thousand teams: enough
that a sequential scan, or a sort of a whole team, would be chosen if no index served the
query. (With a handful of large teams the planner may rightly walk the primary key and filter,
since every few rows match; with many teams only the team index keeps a page's cost flat.)
"""

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import URL, event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence import heroes
from persistence.database import create_engine
from persistence.pagination import encode_cursor
from persistence.teams import name_key
from settings import Settings
from tests.conftest import fresh_postgres_database, make_settings, migrated

HEROES = 100_000
TEAMS = 1000


@pytest.fixture(scope="module")
def settings(postgres_server: URL) -> Iterator[Settings]:
    """A database of its own, heroes dealt to teams in turn, with fresh statistics."""
    for url in fresh_postgres_database(postgres_server):
        settings = migrated(make_settings(url))
        asyncio.run(_load(settings))
        yield settings


async def _load(settings: Settings) -> None:
    engine = create_engine(settings, pooled=False)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO teams (name, name_key, headquarters, version, created_at, "
                    "updated_at) VALUES (:name, :key, 'HQ', 1, now(), now())"
                ),
                [{"name": f"Team {n}", "key": name_key(f"Team {n}")} for n in range(1, TEAMS + 1)],
            )
            await conn.execute(
                text(
                    "INSERT INTO heroes (name, secret_name, age, team_id, version, created_at, "
                    "updated_at) SELECT 'Hero ' || g, 'Secret', g % 100, 1 + g % :teams, 1, "
                    "now(), now() FROM generate_series(1, :n) g"
                ),
                {"n": HEROES, "teams": TEAMS},
            )
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE heroes"))
    finally:
        await engine.dispose()


def plan_of(settings: Settings, run: Any) -> dict[str, Any]:
    """The JSON plan of the one statement `run(conn)` sends to the database."""

    async def explain() -> dict[str, Any]:
        engine = create_engine(settings, pooled=False)
        sent: list[tuple[str, Any]] = []

        def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            sent.append((statement, parameters))

        event.listen(engine.sync_engine, "before_cursor_execute", capture)
        try:
            async with engine.connect() as conn:
                await run(conn)
                assert len(sent) == 1, sent
                statement, parameters = sent[0]
                result = await conn.exec_driver_sql(
                    f"EXPLAIN (FORMAT JSON) {statement}", parameters
                )
                return result.scalar_one()[0]["Plan"]
        finally:
            await engine.dispose()

    return asyncio.run(explain())


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def assert_index_scan(plan: dict[str, Any], index: str) -> None:
    """An index scan of `index` on heroes, and neither a sequential scan nor a sort."""
    kinds = [(node["Node Type"], node.get("Index Name")) for node in nodes(plan)]
    assert ("Index Scan", index) in kinds or ("Index Only Scan", index) in kinds, kinds
    assert not [kind for kind, _ in kinds if kind in ("Seq Scan", "Sort", "Incremental Sort")]


def page(**filters: Any) -> Any:
    async def run(conn: AsyncConnection) -> None:
        await heroes.list_heroes(conn=conn, limit=50, **filters)

    return run


DEEP = encode_cursor(HEROES // 4)


class TestListHeroesPlans:
    @pytest.mark.parametrize("cursor", [None, DEEP], ids=["first page", "deep page"])
    def test_an_unfiltered_page_walks_the_primary_key(
        self, settings: Settings, cursor: str | None
    ) -> None:
        assert_index_scan(plan_of(settings, page(cursor=cursor)), "pk_heroes")

    @pytest.mark.parametrize("cursor", [None, DEEP], ids=["first page", "deep page"])
    def test_a_page_of_one_team_walks_the_team_index(
        self, settings: Settings, cursor: str | None
    ) -> None:
        plan = plan_of(settings, page(cursor=cursor, team_id=3))

        assert_index_scan(plan, "ix_heroes_team_id_id")

    @pytest.mark.parametrize("cursor", [None, DEEP], ids=["first page", "deep page"])
    def test_a_page_of_one_name_walks_the_name_index(
        self, settings: Settings, cursor: str | None
    ) -> None:
        plan = plan_of(settings, page(cursor=cursor, name="Hero 4242"))

        assert_index_scan(plan, "ix_heroes_name_id")


class TestGetHeroPlan:
    def test_one_hero_is_read_through_the_primary_key(self, settings: Settings) -> None:
        async def run(conn: AsyncConnection) -> None:
            await heroes.get_hero(conn=conn, hero_id=HEROES // 2)

        assert_index_scan(plan_of(settings, run), "pk_heroes")
