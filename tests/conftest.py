"""Test fixtures: a fresh PostgreSQL database (and an SQLite file) per run, built by migrations."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from pytest_postgresql.janitor import DatabaseJanitor
from sqlalchemy import URL, create_engine, make_url, text
from starlette.testclient import TestClient

from app import create_app
from cli import alembic_config
from settings import Settings
from tests.postgres_cluster import PrivateCluster, server_answers
from tests.signed_client import SignedClient

TEST_KEY = "test-signing-key-0123456789abcdef-0123456789"
BACKENDS = ["postgresql", "sqlite"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[URL]:
    """APP_TEST_DB_URL if set; else the server on 127.0.0.1:5432; else a private cluster."""
    if configured := os.environ.get("APP_TEST_DB_URL"):
        yield make_url(configured)
        return
    if server_answers("127.0.0.1", 5432):
        yield make_url("postgresql://postgres@127.0.0.1:5432/postgres")
        return
    cluster = PrivateCluster().init()
    cluster.start()
    try:
        yield make_url(cluster.url)
    finally:
        cluster.destroy()


def fresh_postgres_database(server: URL) -> Iterator[URL]:
    """A new, empty database on `server`, dropped afterwards."""
    name = f"backoffice_test_{uuid.uuid4().hex[:12]}"
    janitor = DatabaseJanitor(
        user=server.username or "postgres",
        host=server.host or "127.0.0.1",
        port=server.port or 5432,
        dbname=name,
        password=server.password,
        maintenance_dbname=server.database or "postgres",
    )
    janitor.init()
    try:
        yield server.set(drivername="postgresql+asyncpg", database=name)
    finally:
        janitor.drop()


def missing_postgres_database(server: URL) -> Iterator[URL]:
    """The URL of a database that does not exist yet on `server`, dropped afterwards if a test
    made it."""
    name = f"backoffice_missing_{uuid.uuid4().hex[:12]}"
    yield server.set(drivername="postgresql", database=name)
    admin = server.set(drivername="postgresql+psycopg")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    engine.dispose()


def database_exists(server: URL, name: str) -> bool:
    engine = create_engine(server.set(drivername="postgresql+psycopg"))
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        )
        exists = found.first() is not None
    engine.dispose()
    return exists


@pytest.fixture(scope="session")
def postgres_url(postgres_server: URL) -> Iterator[URL]:
    yield from fresh_postgres_database(postgres_server)


def make_settings(database_url: URL | str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "db_url": str(database_url)
        if isinstance(database_url, str)
        else database_url.render_as_string(hide_password=False),
        "secret_key": TEST_KEY,
        "validate_responses": True,
        "debug": False,
    }
    return Settings(**(values | overrides))


def migrated(settings: Settings) -> Settings:
    command.upgrade(alembic_config(settings), "head")
    return settings


@pytest.fixture(scope="session")
def database_urls(postgres_url: URL, tmp_path_factory: pytest.TempPathFactory) -> dict[str, URL]:
    sqlite_file: Path = tmp_path_factory.mktemp("sqlite") / "backoffice.db"
    return {
        "postgresql": postgres_url,
        "sqlite": URL.create("sqlite+aiosqlite", database=str(sqlite_file)),
    }


@pytest.fixture(scope="session")
def backend_settings(database_urls: dict[str, URL]) -> dict[str, Settings]:
    return {name: migrated(make_settings(url)) for name, url in database_urls.items()}


def truncate_all(settings: Settings) -> None:
    """Remove every row (keeping the schema), with a synchronous driver."""
    url = settings.database_url
    if url.get_backend_name() == "postgresql":
        engine = create_engine(url.set(drivername="postgresql+psycopg"))
        tables = "heroes, teams, used_signatures, idempotency_keys"
        statement = f"TRUNCATE {tables} RESTART IDENTITY CASCADE"
        with engine.begin() as conn:
            conn.execute(text(statement))
    else:
        engine = create_engine(url.set(drivername="sqlite"))
        with engine.begin() as conn:
            for table in ("heroes", "teams", "used_signatures", "idempotency_keys"):
                conn.execute(text(f"DELETE FROM {table}"))
            # Ids start again at 1, as RESTART IDENTITY does on PostgreSQL (AUTOINCREMENT tables).
            conn.execute(text("DELETE FROM sqlite_sequence"))
    engine.dispose()


@pytest.fixture(scope="session")
def app_clients(backend_settings: dict[str, Settings]) -> Iterator[dict[str, TestClient]]:
    """One running app per backend for the whole session (lifespan entered once)."""
    clients = {
        name: TestClient(create_app(settings), raise_server_exceptions=False)
        for name, settings in backend_settings.items()
    }
    for test_client in clients.values():
        test_client.__enter__()
    try:
        yield clients
    finally:
        for test_client in clients.values():
            test_client.__exit__(None, None, None)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def client(
    backend: str, app_clients: dict[str, TestClient], backend_settings: dict[str, Settings]
) -> SignedClient:
    """A client that signs every request, on a clean database of each backend in turn."""
    truncate_all(backend_settings[backend])
    return SignedClient(app_clients[backend], TEST_KEY)


@pytest.fixture
def pg_client(
    app_clients: dict[str, TestClient], backend_settings: dict[str, Settings]
) -> SignedClient:
    """Like `client`, on PostgreSQL only (for behaviour that SQLite cannot show)."""
    truncate_all(backend_settings["postgresql"])
    return SignedClient(app_clients["postgresql"], TEST_KEY)


@pytest.fixture(scope="session")
def live_server(
    backend_settings: dict[str, Settings], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`backoffice serve` on 127.0.0.1 and the PostgreSQL test database (key TEST_KEY): its URL.

    For clients that must go through a real socket (`backoffice call`, curl, Node's fetch).
    """
    from tests.backoffice_process import BackofficeServer, signed_server_environment

    database = backend_settings["postgresql"].database_url.render_as_string(hide_password=False)
    log = tmp_path_factory.mktemp("live-server") / "server.log"
    with BackofficeServer(signed_server_environment(database, TEST_KEY), log) as server:
        yield server.url


@pytest.fixture(scope="module")
def live_api(postgres_server: URL, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`backoffice serve` on a fresh PostgreSQL database of its own, validating its responses:
    for the clients that generate from the spec and run their flow against it."""
    from tests.backoffice_process import BackofficeServer, signed_server_environment

    database = fresh_postgres_database(postgres_server)
    url = next(database).render_as_string(hide_password=False)
    environment = signed_server_environment(url, TEST_KEY, APP_VALIDATE_RESPONSES="true")
    try:
        with BackofficeServer(environment, tmp_path_factory.mktemp("api") / "server.log") as server:
            yield server.url
    finally:
        next(database, None)  # past its `yield`: drops the database
