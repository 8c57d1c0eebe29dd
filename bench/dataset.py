"""The benchmark's own PostgreSQL database: created, migrated and bulk-loaded at each size."""

import asyncio
import os

import asyncpg
from alembic import command
from sqlalchemy import URL, make_url

from cli import alembic_config
from persistence.teams import name_key
from settings import Settings

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/backoffice_bench"
# Few teams, so that a team's page is full (50 heroes) at every size, 1 thousand included.
TEAMS = 10


def bench_url() -> URL:
    return make_url(os.environ.get("APP_BENCH_DB_URL", DEFAULT_URL))


def plain_dsn(url: URL) -> str:
    """The URL as asyncpg takes it (no SQLAlchemy driver suffix)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _recreate(url: URL) -> None:
    admin = await asyncpg.connect(plain_dsn(url.set(database="postgres")))
    try:
        name = url.database
        assert name, "APP_BENCH_DB_URL must name a database"
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


def create_database(url: URL, settings: Settings) -> None:
    """A new, empty database built by the migrations, exactly as `backoffice migrate` would."""
    asyncio.run(_recreate(url))
    command.upgrade(alembic_config(settings), "head")


async def _load(url: URL, heroes: int) -> None:
    conn = await asyncpg.connect(plain_dsn(url))
    try:
        await conn.execute("TRUNCATE heroes, teams, used_signatures RESTART IDENTITY CASCADE")
        await conn.executemany(
            "INSERT INTO teams (name, name_key, headquarters, version, created_at, updated_at) "
            "VALUES ($1, $2, $3, 1, now(), now())",
            [
                (f"Team {n}", name_key(f"Team {n}"), f"Headquarters {n}")
                for n in range(1, TEAMS + 1)
            ],
        )
        await conn.execute(
            "INSERT INTO heroes (name, secret_name, age, team_id, version, created_at, updated_at) "
            "SELECT 'Hero ' || g, 'Secret ' || g, g % 100, 1 + g % $2::int, 1, now(), now() "
            "FROM generate_series(1, $1::int) AS g",
            heroes,
            TEAMS,
        )
        # Fresh statistics and visibility map, as a long-lived table would have.
        await conn.execute("VACUUM ANALYZE heroes")
        await conn.execute("VACUUM ANALYZE teams")
    finally:
        await conn.close()


def load_heroes(url: URL, heroes: int) -> None:
    """Replace every row with `heroes` heroes (ids 1..heroes) spread over `TEAMS` teams."""
    asyncio.run(_load(url, heroes))
