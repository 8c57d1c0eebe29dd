"""The `backoffice` command: serve, migrate, seed, and call the API with signed requests."""

import contextlib
import errno
import json
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from typer.core import TyperGroup

from settings import DEVELOPMENT_SECRET_KEY, ROOT, DatabaseSettings, Settings

# Alembic, SQLAlchemy, uvicorn, asyncio and the signing library are imported by the
# commands that use them, so that `backoffice call` and `--help` start in a fraction of a second.
if TYPE_CHECKING:
    from alembic.config import Config

WORKER_HEALTHCHECK_SECONDS = 30


class InWorkflowOrder(TyperGroup):
    """`--help` lists the commands in the order a user needs them, as the README's table does
    (Typer lists plain commands before groups, which put `seed` before `migrate`)."""

    ORDER = ("dev", "serve", "migrate", "seed", "call")

    def list_commands(self, ctx: Any) -> list[str]:  # typer.Context: Typer vendors Click
        ranks = {name: rank for (rank, name) in enumerate(self.ORDER)}
        return sorted(super().list_commands(ctx), key=lambda name: ranks.get(name, len(ranks)))


cli = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, cls=InWorkflowOrder)
migrate_cli = typer.Typer(help="Apply or inspect the database migrations.", no_args_is_help=True)
cli.add_typer(migrate_cli, name="migrate")


@dataclass(frozen=True)
class Output:
    """Where a command's own messages go: lines on standard error for a person, or, for `serve`
    in production, JSON log lines on stdout like every other line it prints."""

    as_json: bool = False

    @classmethod
    def serving(cls, settings: Settings | None) -> "Output":
        """`serve`'s output: JSON unless APP_DEBUG, which is read alone when the configuration
        as a whole is refused."""
        production = not (settings.debug if settings else _debug_requested())
        if production:
            from observability.logs import configure_logging

            # Validation is skipped: only `debug` and `log_level` are read, and both are known.
            configure_logging(settings or Settings.model_construct(debug=False))
        return cls(as_json=production)

    def info(self, message: str) -> None:
        if self.as_json:
            _startup_log().info(message)
        else:
            typer.echo(message, err=True)

    def fail(self, message: str, *, code: int = 2, hint: str | None = None) -> NoReturn:
        """Say why the command stops, and stop it with `code`."""
        if self.as_json:
            _startup_log().error(message)
        else:
            typer.secho(message, fg="red", err=True)
            if hint:
                typer.echo(hint, err=True)
        raise typer.Exit(code)


class _Mode(BaseSettings):
    model_config = Settings.model_config
    debug: bool = False


def _debug_requested() -> bool:
    try:
        return _Mode().debug
    except ValidationError:
        return False


def _startup_log() -> Any:
    import structlog

    return structlog.get_logger("backoffice")


def load_settings(
    kind: type[Settings] = Settings, *, serving: bool = False, **overrides: Any
) -> Settings:
    try:
        return kind(**overrides)
    except ValidationError as error:
        problems = "\n".join(
            f"  APP_{'_'.join(str(p) for p in e['loc']).upper() or '*'}: {e['msg']}"
            for e in error.errors()
        )
        output = Output.serving(None) if serving else Output()
        output.fail(f"invalid configuration:\n{problems}")


def alembic_config(settings: Settings) -> "Config":
    from alembic.config import Config

    # Alembic's default stdout is bound at import; pass the current one so output can be captured.
    config = Config(ROOT / "alembic.ini", stdout=sys.stdout)
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["settings"] = settings
    return config


def _describe(settings: Settings) -> str:
    return settings.database_url.render_as_string(hide_password=True)


def _describe_key(settings: Settings) -> str:
    """Which key requests are signed with: the public development key by value, a real one never."""
    if settings.secret_key is None:
        return (
            f"the public development key {DEVELOPMENT_SECRET_KEY!r} (APP_SECRET_KEY is not set; "
            "Swagger UI at /docs fills it in)"
        )
    return "APP_SECRET_KEY (not shown)"


def database_ready(
    settings: Settings, *, create_missing: bool, tracebacks: bool, output: Output | None = None
) -> None:
    """Stop with a short message naming the setting when the database cannot be used."""
    import asyncio

    from persistence.provisioning import DatabaseUnreachable, prepare_database

    output = output or Output()
    try:
        done = asyncio.run(prepare_database(settings, create_missing=create_missing))
    except DatabaseUnreachable as error:
        if tracebacks:
            traceback.print_exc()
        hint = None if tracebacks else "(APP_DEBUG=true shows the full traceback)"
        output.fail(str(error), hint=hint)
    if done:
        output.info(done)


def _migrate(
    settings: Settings,
    revision: str,
    *,
    tracebacks: bool | None = None,
    serving: Output | None = None,
) -> None:
    """Upgrade the schema; before serving, Alembic logs through the service's own logging."""
    from alembic import command

    tracebacks = settings.debug if tracebacks is None else tracebacks
    database_ready(settings, create_missing=True, tracebacks=tracebacks, output=serving)
    config = alembic_config(settings)
    if serving:
        from observability.logs import configure_logging

        configure_logging(settings)
        config.attributes["configure_logger"] = False
    try:
        command.upgrade(config, revision)
    except RuntimeError as error:
        # A migration that refuses to run on this data says why, and what to do, in its message.
        if tracebacks:
            traceback.print_exc()
        (serving or Output()).fail(f"the schema was not upgraded: {error}")


# Relative revisions such as -1 look like options to the parser: take them as arguments.
REVISION_ARGUMENTS = {"ignore_unknown_options": True}
Revision = Annotated[
    str, typer.Argument(help="A revision id, head, base, or relative: +1, -1, head-1.")
]


@migrate_cli.command("upgrade", context_settings=REVISION_ARGUMENTS)
def migrate_upgrade(revision: Revision = "head") -> None:
    """Upgrade the schema to REVISION (the latest by default); creates a missing database."""
    from alembic import command

    settings = load_settings(DatabaseSettings)
    _migrate(settings, revision)
    command.current(alembic_config(settings))


@migrate_cli.command("downgrade", context_settings=REVISION_ARGUMENTS)
def migrate_downgrade(revision: Revision) -> None:
    """Downgrade the schema to REVISION (`base` removes every table, -1 undoes one)."""
    from alembic import command

    settings = load_settings(DatabaseSettings)
    database_ready(settings, create_missing=False, tracebacks=settings.debug)
    command.downgrade(alembic_config(settings), revision)
    command.current(alembic_config(settings))


@migrate_cli.command("current")
def migrate_current() -> None:
    """Show the schema's current revision."""
    from alembic import command

    settings = load_settings(DatabaseSettings)
    database_ready(settings, create_missing=False, tracebacks=settings.debug)
    command.current(alembic_config(settings), verbose=True)


@cli.command()
def seed() -> None:
    """Add demo teams and heroes to an empty database."""
    settings = load_settings(DatabaseSettings)
    database_ready(settings, create_missing=False, tracebacks=settings.debug)
    _seed(settings)


def _seed(settings: Settings) -> None:
    import asyncio

    from persistence.database import create_engine
    from persistence.demo import seed as seed_demo

    async def run() -> bool:
        engine = create_engine(settings, pooled=False)
        try:
            return await seed_demo(engine)
        finally:
            await engine.dispose()

    added = asyncio.run(run())
    typer.echo("demo data added" if added else "the database already has teams: nothing added")


@contextlib.contextmanager
def _shared_metrics(workers: int) -> Generator[None]:
    """Workers write their metrics to files in PROMETHEUS_MULTIPROC_DIR, so any one can answer
    a scrape for all of them. A directory of our own is made for the run if none is given."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not given and workers == 1:
        yield
        return
    directory = Path(given) if given else Path(tempfile.mkdtemp(prefix="backoffice-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    # A previous run's counts would be added to this one's.
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    try:
        yield
    finally:
        if not given:
            shutil.rmtree(directory, ignore_errors=True)


def _serve(settings: Settings, host: str, port: int, workers: int, reload: bool) -> None:
    import structlog
    import uvicorn

    from observability.logs import configure_logging
    from server.protocol import GuardedHttpToolsProtocol

    configure_logging(settings)
    # In production stdout carries JSON lines only, so the start-up line is a log record too.
    structlog.get_logger("backoffice").info(
        "starting",
        database=_describe(settings),
        docs=f"http://{host}:{port}/docs",
        signing_key=_describe_key(settings),
        workers=workers,
    )
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "log_config": None,
        "server_header": False,
        "access_log": False,
        "http": GuardedHttpToolsProtocol,
        "timeout_keep_alive": settings.keep_alive_seconds,
        # X-Forwarded-For and -Proto are believed only from the proxies named: uvicorn's
        # default believes 127.0.0.1, so anything local could write the logs' client address.
        "proxy_headers": bool(settings.forwarded_allow_ips),
        "forwarded_allow_ips": ",".join(settings.forwarded_allow_ips) or None,
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
        # uvicorn's 5 s default killed workers still importing on a loaded 2-core machine.
        "timeout_worker_healthcheck": WORKER_HEALTHCHECK_SECONDS,
    }
    with _shared_metrics(1 if reload else workers):
        if workers == 1 or reload:
            uvicorn.run(
                "app:create_app",
                reload=reload,
                reload_dirs=[str(ROOT)] if reload else None,
                app_dir=str(ROOT),
                **options,
            )
            return
        # What `uvicorn.run(app_dir=...)` does, for the workers to import `app` from here.
        sys.path.insert(0, str(ROOT))
        config = uvicorn.Config("app:create_app", workers=workers, **options)
        _run_workers(config)


def _run_workers(config: Any) -> None:
    from uvicorn.supervisors import Multiprocess

    class Workers(Multiprocess):
        """uvicorn's supervisor, letting go of the listening socket as it signals the workers.

        Otherwise the parent keeps it open until the last worker has drained: the kernel goes
        on accepting connections that no worker will ever read, and resets them at the end.
        """

        def terminate_all(self) -> None:
            super().terminate_all()
            for sock in self.sockets:
                sock.close()

    Workers(config, sockets=[config.bind_socket()]).run()


def unusable_address(host: str, port: int) -> str | None:
    """Why the server could not listen on `host`:`port`, or None; found by binding it (and
    closing it at once) as uvicorn will, before the database is created or migrated."""
    import socket

    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        return f"cannot listen on --host {host}: {error.strerror}"
    for family, kind, protocol, _name, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            # As uvicorn's: a port whose last connections are still in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as error:
                return _bind_refusal(host, port, error)
    return None


def _bind_refusal(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (another server is listening there): stop "
            "it, or serve on another port with --port"
        )
    if error.errno == errno.EACCES:
        return (
            f"not allowed to listen on port {port} (ports below 1024 need privileges): serve on "
            "another port with --port"
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}: no interface of this machine has that address (--host)"
    return f"cannot listen on {host}:{port}: {error.strerror} (--host, --port)"


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes.")] = False,
) -> None:
    """Apply pending migrations, then serve the API with uvicorn."""
    settings = load_settings(serving=True)
    output = Output.serving(settings)
    if refusal := unusable_address(host, port):
        output.fail(refusal)
    try:
        _migrate(settings, "head", serving=output)
        _serve(settings, host, port, workers, reload)
    except typer.Exit:
        raise
    except Exception:
        if not output.as_json:
            raise
        # A crash at start-up is one JSON line too (the traceback in its `exception` field).
        _startup_log().exception("the service stopped at start-up")
        raise typer.Exit(1) from None


@cli.command()
def dev(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Serve for local development: APP_DEBUG on, demo data, reload on code changes."""
    # Development mode implies APP_DEBUG; a traceback is shown only when a user asked for it.
    asked_for_tracebacks = "APP_DEBUG" in os.environ
    os.environ.setdefault("APP_DEBUG", "true")
    settings = load_settings()
    output = Output.serving(settings)
    if refusal := unusable_address(host, port):
        output.fail(refusal)
    _migrate(settings, "head", tracebacks=asked_for_tracebacks and settings.debug, serving=output)
    _seed(settings)
    _serve(settings, host, port, 1, reload=True)


def _read_body(data: str) -> bytes:
    """`--data` as given: JSON text, `@file`, or `-` for standard input (curl's convention)."""
    if data == "-":
        return sys.stdin.buffer.read()
    if data.startswith("@"):
        path = Path(data[1:])
        try:
            return path.read_bytes()
        except OSError as error:
            typer.secho(f"--data {data}: cannot read {path}: {error.strerror}", fg="red", err=True)
            raise typer.Exit(2) from None
    return data.encode()


# What `call` sends: the spec's methods, HEAD (answered wherever GET is) and OPTIONS (CORS).
CALL_METHODS = ("GET", "POST", "PATCH", "DELETE", "HEAD", "OPTIONS")


def _misused_method(method: str, path: str) -> str | None:
    """Why METHOD PATH is not a call to send, or None: checked before anything is sent."""
    if method.upper() in CALL_METHODS:
        return None
    if method.startswith("/") and path.upper() in CALL_METHODS:
        return f"the method comes first: backoffice call {path.upper()} {method}"
    return (
        f"{method} is not a method of this API: use GET, POST, PATCH or DELETE (or HEAD, OPTIONS)"
    )


@cli.command()
def call(
    method: Annotated[str, typer.Argument(help="GET, POST, PATCH or DELETE (HEAD, OPTIONS).")],
    path: Annotated[str, typer.Argument(help="Path and query, e.g. /api/heroes?limit=5.")],
    data: Annotated[
        str | None,
        typer.Option(
            "--data", "-d", help="JSON request body, @FILE to read it from a file, - for stdin."
        ),
    ] = None,
    url: Annotated[str, typer.Option(envvar="BACKOFFICE_URL", help="The server.")] = (
        "http://127.0.0.1:8000"
    ),
    version: Annotated[int, typer.Option(min=1, max=2, help="Signature version.")] = 2,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="Extra 'Name: value' header.")
    ] = None,
) -> None:
    """Sign and send one request with APP_SECRET_KEY, and print the response."""
    if misuse := _misused_method(method, path):
        typer.secho(misuse, fg="red", err=True)
        raise typer.Exit(2)
    if not path.startswith("/"):
        typer.secho(f"the path must start with /: /{path}", fg="red", err=True)
        raise typer.Exit(2)
    # A client only needs the key: without APP_SECRET_KEY it signs with the development key,
    # which a server started by `backoffice dev` accepts, and says so.
    settings = load_settings(debug=True)
    if settings.secret_key is None:
        typer.secho(
            "APP_SECRET_KEY is not set: signing with the public development key, "
            "which only `backoffice dev` accepts",
            fg="yellow",
            err=True,
        )
    body = b""
    headers: dict[str, str] = {}
    if data is not None:
        body = _read_body(data)
        try:
            json.loads(body)
        except ValueError as error:
            typer.secho(f"--data is not valid JSON: {error}", fg="red", err=True)
            raise typer.Exit(2) from None
        # A PATCH body is a JSON merge patch: the one media type openapi.yaml declares for it.
        is_patch = method.upper() == "PATCH"
        headers["Content-Type"] = "application/merge-patch+json" if is_patch else "application/json"
    for extra in header or []:
        name, _, value = extra.partition(":")
        headers[name.strip()] = value.strip()
    _send(method.upper(), url.rstrip("/") + path, body, headers, settings, version)


# What a client leaves unescaped in a path and in a query (RFC 3986), as httpx and browsers do:
# version 2 signs the target as it goes on the wire.
PATH_SAFE = "/:@!$&'()*+,;=%"
QUERY_SAFE = PATH_SAFE + "?"


def _send(
    method: str, url: str, body: bytes, headers: dict[str, str], settings: Settings, version: int
) -> None:
    # The standard library's client: httpx alone took a fifth of a second to import (its own
    # command line pulls in click and rich), for one request.
    import http.client
    from urllib.parse import quote, urlsplit

    import signing

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        typer.secho(f"not a valid URL: {url} (http:// or https:// and a host)", fg="red", err=True)
        raise typer.Exit(2)
    target = quote(parts.path or "/", safe=PATH_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=QUERY_SAFE)
    sign_version: signing.Version = 2 if version == 2 else 1
    headers |= signing.signed_headers(
        method, target, body, settings.signing_key, sign_version, headers=headers
    )
    connect = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connect(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, target, body=body or None, headers=headers)
        response = connection.getresponse()
        content = response.read()
    except (OSError, http.client.HTTPException) as error:
        typer.secho(f"could not reach {url}: {error}", fg="red", err=True)
        raise typer.Exit(3) from None
    finally:
        connection.close()
    failed = response.status >= 400
    typer.secho(f"HTTP {response.status} {response.reason}", fg="red" if failed else "green")
    for name in ("location", "etag", "retry-after", "x-request-id"):
        if (value := response.getheader(name)) is not None:
            typer.echo(f"{name}: {value}")
    if content:
        try:
            typer.echo(json.dumps(json.loads(content), indent=2, ensure_ascii=False))
        except ValueError:
            typer.echo(content.decode(errors="replace"))
    if failed:
        raise typer.Exit(1)


def main() -> None:
    sys.exit(cli())
