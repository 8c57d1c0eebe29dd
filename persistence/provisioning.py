"""Before migrations: reach the configured database, and create it when it is missing."""

import socket

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL

from persistence.database import create_engine
from persistence.failures import causes
from settings import Settings

# Where `CREATE DATABASE` is sent from: every PostgreSQL server has these two.
MAINTENANCE_DATABASES = ("postgres", "template1")


class DatabaseUnreachable(Exception):
    """The configured database cannot be used; the message names the setting, never a secret."""


class MissingDatabase(Exception):
    pass


def _reason(error: BaseException, settings: Settings) -> str:
    """What failed, in a few words a user can act on."""
    chain = list(causes(error))
    for cause in chain:
        match cause:
            case asyncpg.InvalidCatalogNameError():
                return "the database does not exist"
            case asyncpg.InvalidPasswordError():
                return "the password was refused"
            case asyncpg.InvalidAuthorizationSpecificationError():
                return f"the server refused the login: {cause}"
            case socket.gaierror():
                return "unknown host (the name does not resolve)"
            case ConnectionRefusedError():
                return "connection refused (is PostgreSQL running and listening there?)"
            case TimeoutError():
                return (
                    f"no answer within {settings.db_connect_timeout:g} s (APP_DB_CONNECT_TIMEOUT)"
                )
            case _:
                pass
    # Every OSError the connect attempts raised is gathered into one; its text is the OS's.
    for cause in chain:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
    innermost = chain[-1] if chain else error
    return str(innermost).splitlines()[0] if str(innermost) else type(innermost).__name__


def describe(settings: Settings) -> str:
    """Where the service looks for its database, without the password."""
    url = settings.database_url
    if url.get_backend_name() == "sqlite":
        return f"SQLite file {url.database} (APP_SQLITE_PATH)"
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    return (
        f'PostgreSQL at {where}, database "{url.database}", user "{url.username}" '
        f"(from {settings.database_source})"
    )


async def _connect_once(settings: Settings, url: URL | None = None) -> None:
    engine = create_engine(settings, pooled=False, url=url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


async def _check(settings: Settings, url: URL | None = None) -> None:
    try:
        await _connect_once(settings, url)
    except Exception as error:
        if any(isinstance(c, asyncpg.InvalidCatalogNameError) for c in causes(error)):
            raise MissingDatabase from error
        raise DatabaseUnreachable(
            f"cannot connect to {describe(settings)}: {_reason(error, settings)}"
        ) from error


async def _create(settings: Settings) -> None:
    url = settings.database_url
    name = url.database or ""
    engine = None
    for maintenance in MAINTENANCE_DATABASES:
        candidate = create_engine(settings, pooled=False, url=url.set(database=maintenance))
        try:
            async with candidate.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            await candidate.dispose()
            continue
        engine = candidate
        break
    if engine is None:
        raise DatabaseUnreachable(
            f'the database "{name}" does not exist, and no maintenance database '
            f"({', '.join(MAINTENANCE_DATABASES)}) accepts {describe(settings)} to create it"
        )
    quoted = engine.dialect.identifier_preparer.quote(name)
    try:
        async with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            await conn.execute(text(f"CREATE DATABASE {quoted}"))
    except Exception as error:
        if any(isinstance(c, asyncpg.DuplicateDatabaseError) for c in causes(error)):
            return
        if any(isinstance(c, asyncpg.InsufficientPrivilegeError) for c in causes(error)):
            raise DatabaseUnreachable(
                f'the database "{name}" does not exist and user "{url.username}" may not '
                f"create databases: ask an administrator to run\n"
                f"  createdb -h {url.host or 'localhost'} -p {url.port or 5432} "
                f"-O {url.username} {name}"
            ) from error
        raise DatabaseUnreachable(
            f'could not create the database "{name}": {_reason(error, settings)}'
        ) from error
    finally:
        await engine.dispose()


async def prepare_database(settings: Settings, *, create_missing: bool) -> str | None:
    """Check the database answers; create a missing PostgreSQL database if asked to.

    Returns a line to show the user when something was done.
    """
    if settings.database_url.get_backend_name() == "sqlite":
        return None
    try:
        await _check(settings)
    except MissingDatabase:
        name = settings.database_url.database
        if not create_missing:
            raise DatabaseUnreachable(
                f'the database "{name}" does not exist ({describe(settings)}): '
                "`backoffice migrate upgrade` creates it"
            ) from None
        await _create(settings)
        await _check(settings)
        return f'created the database "{name}" ({describe(settings)})'
    return None
