"""The migrations build the whole schema from empty, and take it back down, on both backends."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import URL, create_engine, inspect, text

from cli import alembic_config
from settings import Settings
from tests.conftest import fresh_postgres_database, make_settings

TABLES = {"heroes", "teams", "used_signatures"}


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_database(
    request: pytest.FixtureRequest, postgres_server: URL, tmp_path: Path
) -> Iterator[Settings]:
    if request.param == "sqlite":
        yield make_settings(URL.create("sqlite+aiosqlite", database=str(tmp_path / "m.db")))
    else:
        for url in fresh_postgres_database(postgres_server):
            yield make_settings(url)


def table_names(settings: Settings) -> set[str]:
    url = settings.database_url
    sync_driver = "postgresql+psycopg" if url.get_backend_name() == "postgresql" else "sqlite"
    engine = create_engine(url.set(drivername=sync_driver))
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_from_empty_creates_every_table(empty_database: Settings) -> None:
    command.upgrade(alembic_config(empty_database), "head")

    assert table_names(empty_database) >= TABLES


def test_downgrade_to_base_removes_every_table_and_upgrade_restores_them(
    empty_database: Settings,
) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "head")

    command.downgrade(config, "base")
    assert table_names(empty_database) == set()

    command.upgrade(config, "head")
    assert table_names(empty_database) >= TABLES


def test_tables_match_the_migrations(empty_database: Settings) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "head")

    # Raises if autogenerate would find a difference between persistence/tables.py and the DB.
    command.check(config)


def test_migration_history_is_linear() -> None:
    script = ScriptDirectory.from_config(alembic_config(make_settings("sqlite+aiosqlite://")))

    assert len(script.get_heads()) == 1


def sqlite_schema_and_heroes(path: Path) -> tuple[dict[str, str], list[tuple[int, int | None]]]:
    engine = create_engine(URL.create("sqlite", database=str(path)))
    try:
        with engine.connect() as connection:
            tables = connection.execute(
                text("SELECT name, sql FROM sqlite_master WHERE name IN ('heroes', 'teams')")
            ).all()
            heroes = connection.execute(text("SELECT id, team_id FROM heroes ORDER BY id")).all()
    finally:
        engine.dispose()
    return {row[0]: row[1] for row in tables}, [(row[0], row[1]) for row in heroes]


def test_sqlite_tables_become_autoincrement_keeping_every_row_and_team(tmp_path: Path) -> None:
    path = tmp_path / "existing.db"
    config = alembic_config(make_settings(URL.create("sqlite+aiosqlite", database=str(path))))
    command.upgrade(config, "fed12c2faf10")
    engine = create_engine(URL.create("sqlite", database=str(path)))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO teams (id, name, headquarters, version, created_at, updated_at) "
                "VALUES (1, 'Preventers', 'Sharp Tower', 1, '2026-11-26', '2026-11-26')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO heroes (id, name, secret_name, team_id, version, created_at, "
                "updated_at) VALUES (1, 'Deadpond', 'Dive Wilson', 1, 1, '2026-11-26', "
                "'2026-11-26'), (2, 'Rusty-Man', 'Tommy', NULL, 1, '2026-11-26', '2026-11-26')"
            )
        )
    engine.dispose()

    command.upgrade(config, "head")
    upgraded, heroes = sqlite_schema_and_heroes(path)
    command.downgrade(config, "fed12c2faf10")
    downgraded, heroes_after_downgrade = sqlite_schema_and_heroes(path)

    assert all("AUTOINCREMENT" in sql for sql in upgraded.values()), upgraded
    assert heroes == [(1, 1), (2, None)]
    assert not any("AUTOINCREMENT" in sql for sql in downgraded.values()), downgraded
    assert heroes_after_downgrade == [(1, 1), (2, None)]
