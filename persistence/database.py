"""Engines and connections: built from settings by the app's lifespan (never at import) and by
migrations; a request's database work gets its connection here, and only here."""

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import URL, Select, event
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.dml import ReturningInsert

from settings import Settings

# The execution option that marks a connection whose statements may run on asyncpg (`fetch`).
ON_DRIVER = "on_driver"
# A connection used this recently is taken to be alive; one idle for longer is pinged first.
PING_AFTER_IDLE_SECONDS = 1.0
IDLE_SINCE = "idle_since"


def create_engine(
    settings: Settings, *, pooled: bool = True, url: URL | None = None
) -> AsyncEngine:
    """An engine for the configured database (or `url` on the same server); `pooled=False` for
    one-shot tools (migrations)."""
    url = settings.database_url if url is None else url
    options: dict[str, Any] = {}
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
        if settings.db_pgbouncer:
            url = url.update_query_dict({"prepared_statement_cache_size": "0"})
            options["connect_args"] |= _through_pgbouncer(settings)
    if pooled:
        options |= {
            "pool_size": settings.db_pool_size,
            "max_overflow": settings.db_max_overflow,
            "pool_timeout": settings.db_pool_timeout,
        }
    else:
        options["poolclass"] = NullPool
    # Parameters stay out of error messages: a failed write would log its values (secret_name).
    engine = create_async_engine(url, hide_parameters=True, **options)
    _ping_idle_connections(engine)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
    return engine


def _through_pgbouncer(settings: Settings) -> dict[str, Any]:
    """asyncpg's options for PgBouncer's transaction pooling (SQLAlchemy's asyncpg notes).

    A prepared statement lives on the server connection that prepared it, which the next
    transaction may not get: nothing is cached (asyncpg's cache, SQLAlchemy's), and each
    statement gets a name of its own so that two clients never collide on `__asyncpg_stmt_1__`.
    PgBouncer 1.18 refuses a startup packet carrying `statement_timeout`; set it on the role
    instead (`ALTER ROLE ... SET statement_timeout`): `command_timeout` still bounds the wait.
    """
    return {
        "statement_cache_size": 0,
        "prepared_statement_name_func": lambda: f"__asyncpg_{uuid.uuid4()}__",
        "server_settings": {"application_name": settings.name},
    }


type Opener = Callable[[], AbstractAsyncContextManager[AsyncConnection]]
# Where the app's lifespan state keeps the engine, and `lone_statements(engine, settings)`.
ENGINE = "engine"
LONE_STATEMENTS = "lone_statements"


# A request's ASGI scope, or Connexion's proxy of it (`connexion.context.scope`, which no Mapping
# type describes): where its connections are found.
type RequestScope = Any


# The request scope's key for a transaction opened before the handler ran (a POST with an
# Idempotency-Key): the handler's work joins it, and whoever opened it commits or rolls back.
OPEN_TRANSACTION = "open_transaction"


def lone_statements(engine: AsyncEngine, settings: Settings) -> Opener:
    """How to open a connection for work that is one statement, which is its own transaction.

    On PostgreSQL a single statement is atomic by itself, so it runs without BEGIN and COMMIT:
    two round trips fewer, a third of a simple request's database time. SQLite keeps its
    explicit transaction: `BEGIN IMMEDIATE` is what takes its write lock up front.
    """
    if engine.dialect.name == "sqlite" or settings.db_pgbouncer:
        # Through PgBouncer too: outside a transaction, the statement asyncpg prepares and the
        # one it then executes may go to two different server connections.
        return engine.begin
    return engine.execution_options(isolation_level="AUTOCOMMIT", **{ON_DRIVER: True}).connect


type Rows = list[dict[str, Any]]
type Statement = Select[*tuple[Any, ...]] | ReturningInsert[*tuple[Any, ...]]
# Per statement: its SQL as asyncpg takes it, and its parameters' order. The statements `fetch`
# is given are built once, at import; a statement built per request would only be compiled.
type Bound = tuple[tuple[str, Callable[[Any], Any] | None], ...]
_DRIVER_SQL: dict[tuple[int, tuple[str, ...]], tuple[Statement, str, Bound]] = {}
_DRIVER_SQL_MAX = 64


async def fetch(conn: AsyncConnection, statement: Statement, values: Mapping[str, Any]) -> Rows:
    """The rows of one statement (a read, or a write with RETURNING), as dicts.

    On a lone-statement PostgreSQL connection, the SQL that SQLAlchemy compiled once runs on
    asyncpg's connection itself: SQLAlchemy's execution path (a greenlet hop, the compiled
    cache's key, an execution context, a result) cost 75-90 us of a get's 230 us of database
    work, more than the query. SQLAlchemy still owns the connection (pool, ping, invalidation),
    processes the values bound, and its cursor events still fire (the statement metrics); the
    values read are asyncpg's, as SQLAlchemy's types leave them on PostgreSQL (`UtcDateTime`
    only zones SQLite's timestamps; asyncpg's already are). An error from the server on a
    live connection is raised as SQLAlchemy would raise it (`IntegrityError` for a broken
    constraint, a `DBAPIError` with its SQLSTATE), a timeout as it is. If the connection broke,
    the statement is handed to SQLAlchemy, which can send nothing on a closed connection: it
    invalidates the connection and raises its disconnect error. Elsewhere (SQLite, PgBouncer,
    inside a transaction) the statement runs through SQLAlchemy.
    """
    sync = conn.sync_connection
    if sync is None or sync.invalidated or not sync.get_execution_options().get(ON_DRIVER):
        return _as_dicts(await conn.execute(statement, values))
    driver_sql = _driver_sql(conn, statement, tuple(values))
    if driver_sql is None:
        return _as_dicts(await conn.execute(statement, values))
    sql, bound = driver_sql
    parameters = [
        values[name] if process is None else process(values[name]) for name, process in bound
    ]
    # The pooled connection this one holds (a valid one: checked above), read without the
    # greenlet hop of `AsyncConnection.get_raw_connection()`, 10 us.
    driver: Any = sync.connection.driver_connection
    dispatch = sync.dispatch
    dispatch.before_cursor_execute(sync, None, sql, parameters, None, False)
    try:
        records = await driver.fetch(sql, *parameters)
    except (asyncio.CancelledError, TimeoutError):
        raise
    except Exception as error:
        if isinstance(error, asyncpg.PostgresError) and not driver.is_closed():
            raise _as_sqlalchemy_error(conn, sql, parameters, error) from error
        return _as_dicts(await conn.execute(statement, values))
    dispatch.after_cursor_execute(sync, None, sql, parameters, None, False)
    return [dict(record.items()) for record in records]


def _as_sqlalchemy_error(
    conn: AsyncConnection, sql: str, parameters: list[Any], error: Exception
) -> BaseException:
    """The error SQLAlchemy's asyncpg dialect makes of `error`: the same class and SQLSTATE
    (from the dialect's translation table, an internal that tests/test_driver_reads.py checks)."""
    dbapi: Any = conn.dialect.loaded_dbapi
    translate: dict[type, Any] = dbapi._asyncpg_error_translate
    adapted = next(
        (translate[kind](str(error), error) for kind in type(error).__mro__ if kind in translate),
        error,
    )
    return DBAPIError.instance(
        sql, parameters, adapted, dbapi.Error, hide_parameters=True, dialect=conn.dialect
    )


def _as_dicts(result: Any) -> Rows:
    names = tuple(result.keys())
    return [dict(zip(names, row, strict=True)) for row in result]


def _driver_sql(
    conn: AsyncConnection, statement: Statement, names: tuple[str, ...]
) -> tuple[str, Bound] | None:
    """`statement` as asyncpg takes it, for values of these `names` (an INSERT's columns), and
    its parameters in order, each with SQLAlchemy's processing of its value (if any). None if
    it needs a value not given: a column default, which only SQLAlchemy's execution computes.

    It reads a compiled statement's `positiontup` and `_bind_processors`, SQLAlchemy internals
    (tests/test_driver_reads.py fails, naming them, if an upgrade moves them)."""
    key = (id(statement), names)
    known = _DRIVER_SQL.get(key)
    if known is not None and known[0] is statement:
        return known[1], known[2]
    compiled: Any = statement.compile(dialect=conn.dialect, column_keys=list(names))
    order = tuple(compiled.positiontup or ())
    if not set(order) <= set(names):
        return None
    # SQLAlchemy's own processing of each value (the types' `process_bind_param`), in order.
    bound = tuple((name, compiled._bind_processors.get(name)) for name in order)
    if len(_DRIVER_SQL) < _DRIVER_SQL_MAX:
        _DRIVER_SQL[key] = (statement, compiled.string, bound)
    return compiled.string, bound


@asynccontextmanager
async def lone_statement(scope: RequestScope) -> AsyncGenerator[AsyncConnection]:
    """A connection for a request whose work is one statement (another may follow only to
    explain a miss): on PostgreSQL it runs in autocommit, with no BEGIN or COMMIT (see
    `lone_statements`). Inside the request's open transaction, it is that transaction."""
    opened: AsyncConnection | None = scope.get(OPEN_TRANSACTION)
    if opened is not None:
        yield opened
        return
    connect: Opener = scope["state"][LONE_STATEMENTS]
    async with connect() as conn:
        yield conn


@asynccontextmanager
async def transaction(scope: RequestScope) -> AsyncGenerator[AsyncConnection]:
    """A transaction for a request's statements: committed on success, rolled back on any error,
    the connection always returned. Inside the request's open transaction, it is that one, which
    its opener commits once the response is known."""
    opened: AsyncConnection | None = scope.get(OPEN_TRANSACTION)
    if opened is not None:
        yield opened
        return
    engine: AsyncEngine = scope["state"][ENGINE]
    async with engine.begin() as conn:
        yield conn


def joining(scope: Mapping[str, Any], conn: AsyncConnection) -> dict[str, Any]:
    """The scope for the rest of a request whose database work joins `conn`'s transaction."""
    return {**scope, OPEN_TRANSACTION: conn}


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """Check a connection on checkout only if it has been idle, as HikariCP does.

    SQLAlchemy's `pool_pre_ping` pings on every checkout, and asyncpg's ping is three round
    trips (BEGIN, a query, ROLLBACK): half of a read's round trips went to it. A connection
    returned moments ago is almost surely alive; if not, the error invalidates the whole pool.
    """
    dialect = engine.sync_engine.dialect

    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[IDLE_SINCE] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(IDLE_SINCE)
        # A new connection has no mark: it has just been opened.
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError("the pooled connection is no longer alive") from error

    event.listen(engine.sync_engine.pool, "checkin", checked_in)
    event.listen(engine.sync_engine.pool, "checkout", checked_out)


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
