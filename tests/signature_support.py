"""What the request-signing tests share: the worked vectors, extra app instances, row counts."""

import contextlib
import json
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, insert, text
from starlette.testclient import TestClient

import signing
from app import create_app
from persistence.tables import heroes
from settings import ROOT, Settings

# The worked examples are part of the contract with the frontend, kept beside openapi.yaml.
VECTORS_FILE = ROOT / "signing-vectors.json"


@dataclass(frozen=True)
class Vector:
    """A version 1 worked example."""

    label: str
    version: signing.Version
    method: str
    path_and_query: str
    body: str
    x_timestamp: str
    signed_string: str
    x_signature: str


@dataclass(frozen=True)
class Vector2:
    """A version 2 (RFC 9421) worked example."""

    label: str
    version: signing.Version
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str
    created: int
    keyid: str
    expect_headers: dict[str, str | None]
    signature_base: str

    @property
    def path_and_query(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")

    @property
    def signed_headers(self) -> dict[str, str]:
        return {name: value for name, value in self.expect_headers.items() if value is not None}


def vector_file() -> dict[str, Any]:
    return json.loads(VECTORS_FILE.read_text(encoding="utf-8"))


def vectors() -> list[Vector]:
    return [Vector(**vector) for vector in vector_file()["vectors"] if vector["version"] == 1]


def vectors_2() -> list[Vector2]:
    return [Vector2(**vector) for vector in vector_file()["vectors"] if vector["version"] == 2]


VECTOR_KEY: str = vector_file()["key"]


def fixed_clock(now_ms: int) -> Callable[[], int]:
    return lambda: now_ms


@contextlib.contextmanager
def running_app(
    settings: Settings, clock: Callable[[], int] = signing.now_ms
) -> Generator[TestClient]:
    """Another instance of the app (its own engine and lifespan), e.g. with other settings."""
    with TestClient(create_app(settings, clock=clock), raise_server_exceptions=False) as client:
        yield client


def sync_engine(settings: Settings) -> Engine:
    url = settings.database_url
    assert url.get_backend_name() == "postgresql"
    return create_engine(url.set(drivername="postgresql+psycopg"))


def row_counts(settings: Settings) -> dict[str, int]:
    """Rows in every table of the schema, so that "nothing changed" covers tables added later."""
    engine = sync_engine(settings)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' "
                    "AND table_name <> 'alembic_version'"
                )
            ).scalars()
            return {
                table: conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
                for table in tables
            }
    finally:
        engine.dispose()


def insert_hero(settings: Settings, hero_id: int, version: int = 1) -> None:
    """A hero with a chosen id, for requests recorded against that id."""
    engine = sync_engine(settings)
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(heroes).values(
                    id=hero_id,
                    name="Recorded",
                    secret_name="Recorded Hero",
                    version=version,
                    created_at=now,
                    updated_at=now,
                )
            )
    finally:
        engine.dispose()
