"""Statements on asyncpg's connection (`persistence.database.fetch`): the same rows and the same
errors as through SQLAlchemy, on PostgreSQL and SQLite, with a broken connection invalidated."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from observability.metrics import Metrics
from persistence import heroes
from persistence.database import ON_DRIVER, create_engine, fetch, lone_statements
from persistence.errors import Conflict, NotFound
from persistence.signatures import record_signature
from persistence.tables import heroes as heroes_table
from settings import Settings
from tests.conftest import truncate_all

type Work[T] = Callable[[AsyncConnection], Awaitable[T]]


def on_lone_statement[T](settings: Settings, work: Work[T]) -> T:
    async def run() -> T:
        engine = create_engine(settings)
        try:
            async with lone_statements(engine, settings)() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@pytest.fixture
def settings(backend_settings: dict[str, Settings], backend: str) -> Settings:
    truncate_all(backend_settings[backend])
    return backend_settings[backend]


def test_only_a_postgresql_lone_statement_reads_on_the_driver(settings: Settings) -> None:
    async def marked(conn: AsyncConnection) -> bool:
        return bool(
            conn.sync_connection and conn.sync_connection.get_execution_options().get(ON_DRIVER)
        )

    on_postgresql = settings.database_url.get_backend_name() == "postgresql"
    assert on_lone_statement(settings, marked) is on_postgresql


def test_a_read_is_timed_in_the_statement_metrics(settings: Settings) -> None:
    telemetry = Metrics("driver_reads")

    async def timed(conn: AsyncConnection) -> None:
        await heroes.list_heroes(conn=conn, limit=5, cursor=None)

    async def run() -> None:
        engine = create_engine(settings)
        telemetry.instrument(engine)
        try:
            async with lone_statements(engine, settings)() as conn:
                await timed(conn)
        finally:
            await engine.dispose()

    asyncio.run(run())
    count = telemetry.registry.get_sample_value(
        "driver_reads_db_query_duration_seconds_count", {"statement": "select"}
    )
    assert count == 1


def test_a_read_gives_the_same_rows_as_sqlalchemy(settings: Settings) -> None:
    async def both(conn: AsyncConnection) -> tuple[Any, Any, Any]:
        created = await heroes.create_hero(conn=conn, name="Read", secret_name="R", age=40)
        through_read = await heroes.get_hero(conn=conn, hero_id=created["id"])
        query = select(*heroes.COLUMNS).where(heroes_table.c.id == created["id"])
        through_sqlalchemy = (await conn.execute(query)).mappings().one()
        page, _ = await heroes.list_heroes(conn=conn, limit=5, cursor=None)
        return through_read, dict(through_sqlalchemy), page

    through_read, through_sqlalchemy, page = on_lone_statement(settings, both)
    assert through_read == through_sqlalchemy
    assert page == [{k: v for k, v in through_sqlalchemy.items() if k != "version"}]


def test_a_missing_row_is_not_found(settings: Settings) -> None:
    async def missing(conn: AsyncConnection) -> None:
        await heroes.get_hero(conn=conn, hero_id=424242)

    with pytest.raises(NotFound, match="hero 424242 does not exist"):
        on_lone_statement(settings, missing)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_server_error_is_raised_as_sqlalchemy_raises_it_with_its_sqlstate(
    settings: Settings,
) -> None:
    async def cancelled(conn: AsyncConnection) -> None:
        await conn.execute(text("SET statement_timeout = 1"))
        slow = select(text("1")).where(text("pg_sleep(0.2) IS NOT NULL"))
        await fetch(conn, slow, {})

    with pytest.raises(DBAPIError) as raised:
        on_lone_statement(settings, cancelled)
    assert getattr(raised.value.orig, "sqlstate", None) == "57014"
    assert not raised.value.connection_invalidated


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_broken_connection_is_invalidated_by_sqlalchemy(settings: Settings) -> None:
    async def broken(conn: AsyncConnection) -> tuple[bool, bool]:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        await driver.close()
        with pytest.raises(DBAPIError) as raised:
            await heroes.get_hero(conn=conn, hero_id=1)
        return raised.value.connection_invalidated, conn.invalidated

    assert on_lone_statement(settings, broken) == (True, True)


def test_a_broken_constraint_is_raised_as_sqlalchemy_raises_it(settings: Settings) -> None:
    async def orphan(conn: AsyncConnection) -> None:
        await heroes.create_hero(conn=conn, name="Orphan", secret_name="O", team_id=424242)

    with pytest.raises(Conflict, match="team 424242 does not exist") as raised:
        on_lone_statement(settings, orphan)
    assert isinstance(raised.value.__cause__, IntegrityError)


def test_a_signature_is_recorded_once(settings: Settings) -> None:
    async def twice(conn: AsyncConnection) -> tuple[bool, bool]:
        expires_at = datetime.now(UTC) + timedelta(minutes=5)
        first = await record_signature(conn=conn, digest=b"d" * 32, expires_at=expires_at)
        again = await record_signature(conn=conn, digest=b"d" * 32, expires_at=expires_at)
        return first, again

    assert on_lone_statement(settings, twice) == (True, False)


def test_the_sqlalchemy_internals_fetch_relies_on_are_still_there() -> None:
    """persistence.database.fetch reads three of SQLAlchemy's internals: a compiled statement's
    `positiontup` and `_bind_processors`, and the asyncpg dialect's error translation table.
    This fails, naming them, if an upgrade moves them (uv.lock pins the version tested)."""
    from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

    dialect = asyncpg_dialect()
    names = ["name", "secret_name", "age", "team_id", "version", "created_at", "updated_at"]
    compiled: Any = heroes.INSERT_ONE.compile(dialect=dialect, column_keys=names)
    assert compiled.positiontup == names, "positiontup"
    assert set(compiled._bind_processors) == {"created_at", "updated_at"}, "_bind_processors"
    translate = asyncpg_dialect.import_dbapi()._asyncpg_error_translate
    assert any(kind.__name__ == "IntegrityConstraintViolationError" for kind in translate), (
        "_asyncpg_error_translate"
    )


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_statement_that_needs_a_column_default_runs_through_sqlalchemy(
    settings: Settings,
) -> None:
    """`version` has a default, which only SQLAlchemy's execution computes: left out of the
    values, the insert still works (through SQLAlchemy) and gets it."""

    async def without_version(conn: AsyncConnection) -> Any:
        values = {"name": "D", "secret_name": "S", "created_at": datetime.now(UTC)}
        values["updated_at"] = values["created_at"]
        [hero] = await fetch(conn, heroes.INSERT_ONE, values)
        return hero["version"]

    assert on_lone_statement(settings, without_version) == 1
