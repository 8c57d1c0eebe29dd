"""The migrations build the whole schema from empty, and take it back down, on both backends."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import URL, create_engine, inspect

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
