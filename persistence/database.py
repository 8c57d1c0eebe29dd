"""Engines: built from settings by the app's lifespan (never at import) and by migrations."""

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from settings import Settings


def create_engine(settings: Settings, *, pooled: bool = True) -> AsyncEngine:
    """An engine for the configured database; `pooled=False` for one-shot tools (migrations)."""
    url = settings.database_url
    options: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() == "sqlite":
        # One writer at a time: a short busy wait instead of "database is locked" errors.
        options["connect_args"] = {"timeout": settings.db_pool_timeout}
        if url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    else:
        options["connect_args"] = {
            "timeout": settings.db_connect_timeout,
            "command_timeout": settings.db_connect_timeout + settings.db_statement_timeout / 1000,
            "server_settings": {
                "application_name": settings.name,
                "statement_timeout": str(settings.db_statement_timeout),
            },
        }
    if pooled:
        options |= {
            "pool_size": settings.db_pool_size,
            "max_overflow": settings.db_max_overflow,
            "pool_timeout": settings.db_pool_timeout,
        }
    else:
        options["poolclass"] = NullPool
    engine = create_async_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
    return engine


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock up front: a transaction that reads and then writes would otherwise
    # fail at once with SQLITE_BUSY when another writer commits in between (WAL snapshots).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN instead of the driver's implicit one.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # SQLite leaves foreign keys unenforced unless asked, per connection.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
