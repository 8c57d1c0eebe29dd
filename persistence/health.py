"""What the readiness probe asks the database: is it there, and which migration is it at."""

from sqlalchemy import Column, Connection, MetaData, String, Table, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection

# Alembic's bookkeeping table, read here without Alembic's runtime (which logs on every use).
alembic_version = Table("alembic_version", MetaData(), Column("version_num", String(32)))


async def ping(*, conn: AsyncConnection) -> None:
    await conn.execute(select(1))


def _current_heads(sync_conn: Connection) -> tuple[str, ...]:
    if not inspect(sync_conn).has_table(alembic_version.name):
        return ()
    return tuple(sync_conn.scalars(select(alembic_version.c.version_num)))


async def schema_revisions(*, conn: AsyncConnection) -> tuple[str, ...]:
    """The Alembic revision(s) the schema is at; none before the first migration."""
    return await conn.run_sync(_current_heads)
