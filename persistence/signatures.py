"""The record of signatures already served, shared by every worker and replica."""

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.database import fetch
from persistence.tables import used_signatures

# Built once: every unsafe request runs it, and building a statement costs more than binding it.
RECORD = {
    "postgresql": postgresql.insert(used_signatures)
    .on_conflict_do_nothing(index_elements=["digest"])
    .returning(used_signatures.c.digest),
    "sqlite": sqlite.insert(used_signatures)
    .on_conflict_do_nothing(index_elements=["digest"])
    .returning(used_signatures.c.digest),
}


async def record_signature(*, conn: AsyncConnection, digest: bytes, expires_at: datetime) -> bool:
    """Remember a signature until it expires; False if it was already recorded (a replay)."""
    values = {"digest": digest, "expires_at": expires_at}
    # A row comes back only if this call inserted it.
    return len(await fetch(conn, RECORD[conn.dialect.name], values)) == 1


async def purge_expired_signatures(*, conn: AsyncConnection, now: datetime) -> int:
    deleted = await conn.execute(delete(used_signatures).where(used_signatures.c.expires_at < now))
    return deleted.rowcount
