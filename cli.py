"""The `backoffice` command: serve, migrate, seed, and call the API with signed requests."""

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from alembic import command
from alembic.config import Config
from pydantic import ValidationError

import signing
from settings import ROOT, Settings

WORKER_HEALTHCHECK_SECONDS = 30

cli = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
migrate_cli = typer.Typer(help="Apply or inspect the database migrations.", no_args_is_help=True)
cli.add_typer(migrate_cli, name="migrate")


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = "\n".join(
            f"  APP_{'_'.join(str(p) for p in e['loc']).upper() or '*'}: {e['msg']}"
            for e in error.errors()
        )
        typer.secho(f"invalid configuration:\n{problems}", fg="red", err=True)
        raise typer.Exit(2) from None


def alembic_config(settings: Settings) -> Config:
    # Alembic's default stdout is bound at import; pass the current one so output can be captured.
    config = Config(ROOT / "alembic.ini", stdout=sys.stdout)
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["settings"] = settings
    return config


def _describe(settings: Settings) -> str:
    return settings.database_url.render_as_string(hide_password=True)


@migrate_cli.command("upgrade")
def migrate_upgrade(revision: str = "head") -> None:
    """Upgrade the schema (to the latest revision by default)."""
    settings = load_settings()
    command.upgrade(alembic_config(settings), revision)
    typer.echo(f"{_describe(settings)} is at {revision}")


@migrate_cli.command("downgrade")
def migrate_downgrade(revision: str) -> None:
    """Downgrade the schema to REVISION (`base` removes every table)."""
    command.downgrade(alembic_config(load_settings()), revision)


@migrate_cli.command("current")
def migrate_current() -> None:
    """Show the schema's current revision."""
    command.current(alembic_config(load_settings()), verbose=True)


@cli.command()
def seed() -> None:
    """Add demo teams and heroes to an empty database."""
    _seed(load_settings())


def _seed(settings: Settings) -> None:
    from demo_data import seed as seed_demo
    from persistence.database import create_engine

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
    import uvicorn

    from logs import configure_logging

    typer.echo(f"database: {_describe(settings)}; API docs at http://{host}:{port}/docs")
    configure_logging(settings)
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "log_config": None,
        "server_header": False,
        "access_log": False,
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


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes.")] = False,
) -> None:
    """Apply pending migrations, then serve the API with uvicorn."""
    settings = load_settings()
    command.upgrade(alembic_config(settings), "head")
    _serve(settings, host, port, workers, reload)


@cli.command()
def dev(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Serve for local development: APP_DEBUG on, demo data, reload on code changes."""
    os.environ.setdefault("APP_DEBUG", "true")
    settings = load_settings()
    command.upgrade(alembic_config(settings), "head")
    _seed(settings)
    _serve(settings, host, port, 1, reload=True)


@cli.command()
def call(
    method: Annotated[str, typer.Argument(help="GET, POST, PATCH or DELETE.")],
    path: Annotated[str, typer.Argument(help="Path and query, e.g. /api/heroes?limit=5.")],
    data: Annotated[str | None, typer.Option("--data", "-d", help="JSON request body.")] = None,
    url: Annotated[str, typer.Option(envvar="BACKOFFICE_URL", help="The server.")] = (
        "http://127.0.0.1:8000"
    ),
    version: Annotated[int, typer.Option(min=1, max=2, help="Signature version.")] = 2,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="Extra 'Name: value' header.")
    ] = None,
) -> None:
    """Sign and send one request with APP_SECRET_KEY, and print the response."""
    # A client only needs the key: without APP_SECRET_KEY it signs with the development key,
    # which a server started by `backoffice dev` accepts.
    settings = load_settings(debug=True)
    body = b""
    headers: dict[str, str] = {}
    if data is not None:
        try:
            json.loads(data)
        except ValueError as error:
            typer.secho(f"--data is not valid JSON: {error}", fg="red", err=True)
            raise typer.Exit(2) from None
        body = data.encode()
        headers["Content-Type"] = "application/json"
    for extra in header or []:
        name, _, value = extra.partition(":")
        headers[name.strip()] = value.strip()
    sign_version: signing.Version = 2 if version == 2 else 1
    request = httpx.Request(method.upper(), url.rstrip("/") + path, content=body, headers=headers)
    # Version 2 signs the target as it goes on the wire, after httpx has percent-encoded it.
    target = request.url.raw_path.decode("ascii")
    request.headers.update(
        signing.signed_headers(method, target, body, settings.signing_key, sign_version)
    )
    try:
        with httpx.Client(timeout=30) as client:
            response = client.send(request)
    except httpx.HTTPError as error:
        typer.secho(f"could not reach {url}: {error}", fg="red", err=True)
        raise typer.Exit(3) from None
    typer.secho(
        f"HTTP {response.status_code} {response.reason_phrase}",
        fg="green" if response.is_success else "red",
    )
    for name in ("location", "etag", "retry-after", "x-request-id"):
        if name in response.headers:
            typer.echo(f"{name}: {response.headers[name]}")
    if response.content:
        try:
            typer.echo(json.dumps(response.json(), indent=2, ensure_ascii=False))
        except ValueError:
            typer.echo(response.text)
    if response.status_code >= 400:
        raise typer.Exit(1)


def main() -> None:
    sys.exit(cli())
