"""What the readiness check asks the database: does it answer, which migration is it at, and
would it take a write now.

The write check writes and rolls back, so it changes nothing; what it writes is chosen so that
each refusal a real write would meet shows: in one round trip on PostgreSQL, it takes the lock
that writes take on every table of the schema (waiting at most `lock_wait_seconds`: a table
locked by a migration, a `LOCK TABLE`, a long `ALTER`), then empties a temporary table and inserts
a row, which allocates a new block on disk (a full disk refuses it, 53100, where an update of a
row in place would not). A read-only database (a standby after failover,
`default_transaction_read_only`) refuses the first statement. The temporary table is made once
per server session, and emptying it rewrites one catalog row; it works through PgBouncer too
(the whole message runs on one server connection). On SQLite, `BEGIN IMMEDIATE` takes the write
lock.
"""

import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, MetaData, String, Table, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from persistence.tables import metadata
from settings import ROOT

# Alembic's bookkeeping table, read here without Alembic's runtime (which logs on every use).
alembic_version = Table("alembic_version", MetaData(), Column("version_num", String(32)))


@cache
def migration_heads() -> tuple[str, ...]:
    """The head revision(s) of the migrations in this build."""
    return tuple(sorted(ScriptDirectory(str(ROOT / "migrations")).get_heads()))


def _current_heads(sync_conn: Connection) -> tuple[str, ...]:
    if not inspect(sync_conn).has_table(alembic_version.name):
        return ()
    return tuple(sync_conn.scalars(select(alembic_version.c.version_num)))


async def schema_revisions(*, conn: AsyncConnection) -> tuple[str, ...]:
    """The Alembic revision(s) the schema is at; none before the first migration."""
    return await conn.run_sync(_current_heads)


@dataclass(frozen=True, slots=True)
class DatabaseReport:
    """What a check found: the schema's revisions, and how long each part took (no write is
    tried on a schema that is not at the migrations head: its tables may not exist yet)."""

    current: tuple[str, ...]
    revisions_ms: float
    writes_ms: float | None


class ReadFailed(Exception):
    """The database did not answer the read (the error is the cause)."""


class WriteRefused(Exception):
    """The database answered, but would not take a write now (the error is the cause)."""


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


def _write_probe(lock_wait_seconds: float) -> str:
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    statements = [
        # Made once per server session, outside the transaction that is rolled back.
        "SET LOCAL client_min_messages = error",
        "CREATE TEMPORARY TABLE IF NOT EXISTS readiness_probe (filler integer)",
        "COMMIT",
        "BEGIN",
        f"SET LOCAL lock_timeout = {round(lock_wait_seconds * 1000)}",
        f"LOCK TABLE {tables} IN ROW EXCLUSIVE MODE",
        "TRUNCATE pg_temp.readiness_probe",
        "INSERT INTO pg_temp.readiness_probe VALUES (0)",
        "ROLLBACK",
    ]
    return "; ".join(statements)


async def check_database(engine: AsyncEngine, *, lock_wait_seconds: float) -> DatabaseReport:
    """Read the schema's revisions and, at the migrations head, try a write; raise ReadFailed or
    WriteRefused."""
    if engine.dialect.name == "sqlite":
        return await _check_sqlite(engine)
    try:
        async with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            started = time.perf_counter()
            current = await schema_revisions(conn=conn)
            revisions_ms = _ms(started)
            if tuple(sorted(current)) != migration_heads():
                return DatabaseReport(current, revisions_ms, None)
            started = time.perf_counter()
            try:
                await _probe_writes(conn, lock_wait_seconds)
            except Exception as error:
                raise WriteRefused from error
    except WriteRefused:
        raise
    except Exception as error:
        raise ReadFailed from error
    return DatabaseReport(current, revisions_ms, _ms(started))


async def _probe_writes(conn: AsyncConnection, lock_wait_seconds: float) -> None:
    # One message of several statements, which only the driver's simple query protocol takes.
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    try:
        await driver.execute(_write_probe(lock_wait_seconds))
    except Exception:
        if not driver.is_closed() and driver.is_in_transaction():
            await driver.execute("ROLLBACK")
        raise


async def _check_sqlite(engine: AsyncEngine) -> DatabaseReport:
    conn = engine.connect()
    try:
        await conn.start()
    except Exception as error:
        raise ReadFailed from error
    try:
        started = time.perf_counter()
        try:
            # BEGIN IMMEDIATE (persistence/database.py): SQLite's write lock, or a wait for it.
            transaction = await conn.begin()
        except Exception as error:
            raise WriteRefused from error
        writes_ms = _ms(started)
        started = time.perf_counter()
        try:
            current = await schema_revisions(conn=conn)
        except Exception as error:
            raise ReadFailed from error
        finally:
            await transaction.rollback()
    finally:
        await conn.close()
    return DatabaseReport(current, _ms(started), writes_ms)
