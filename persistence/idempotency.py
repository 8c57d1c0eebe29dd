"""Stored responses of POSTs sent with an `Idempotency-Key`, shared by every worker and replica."""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.tables import idempotency_keys


@dataclass(frozen=True, slots=True)
class Scope:
    """A key is scoped to its method and path: one key may be reused on another operation."""

    key: str
    method: str
    path: str

    @property
    def lock_id(self) -> int:
        digest = hashlib.sha256(f"{self.method}\0{self.path}\0{self.key}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    fingerprint: bytes
    status: int
    headers: list[list[str]]
    body: bytes


def _where(scope: Scope) -> ColumnElement[bool]:
    return (
        (idempotency_keys.c.key == scope.key)
        & (idempotency_keys.c.method == scope.method)
        & (idempotency_keys.c.path == scope.path)
    )


async def try_lock(*, conn: AsyncConnection, scope: Scope) -> bool:
    """Hold the key until this transaction ends; False while another transaction holds it.

    PostgreSQL only: an advisory lock is what lets a concurrent retry answer 409 at once rather
    than wait. SQLite has one writer at a time, and `store_response` settles any race there.
    """
    if conn.dialect.name != "postgresql":
        return True
    locked = await conn.execute(select(func.pg_try_advisory_xact_lock(scope.lock_id)))
    return bool(locked.scalar_one())


async def find_response(
    *, conn: AsyncConnection, scope: Scope, now: datetime
) -> StoredResponse | None:
    """The response stored for this key, unless it has expired."""
    query = select(
        idempotency_keys.c.fingerprint,
        idempotency_keys.c.status,
        idempotency_keys.c.headers,
        idempotency_keys.c.body,
    ).where(_where(scope), idempotency_keys.c.expires_at > now)
    row = (await conn.execute(query)).first()
    return None if row is None else StoredResponse(*row)


async def store_response(
    *,
    conn: AsyncConnection,
    scope: Scope,
    response: StoredResponse,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """Record the response (replacing an expired record); False if a live one already exists."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    values = {
        "fingerprint": response.fingerprint,
        "status": response.status,
        "headers": response.headers,
        "body": response.body,
        "created_at": now,
        "expires_at": expires_at,
    }
    statement = (
        dialect.insert(idempotency_keys)
        .values(key=scope.key, method=scope.method, path=scope.path, **values)
        .on_conflict_do_update(
            index_elements=["key", "method", "path"],
            set_=values,
            where=idempotency_keys.c.expires_at <= now,
        )
    )
    return (await conn.execute(statement)).rowcount == 1


async def purge_expired_keys(*, conn: AsyncConnection, now: datetime) -> int:
    deleted = await conn.execute(
        delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now)
    )
    return deleted.rowcount
