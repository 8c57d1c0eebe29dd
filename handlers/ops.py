"""Probes and metrics for the people who run the service: unsigned, outside `/api`."""

import asyncio
import time
from functools import cache
from typing import Any

from alembic.script import ScriptDirectory
from connexion.context import scope
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from contract.problems import RETRY_AFTER_SECONDS, Problem
from handlers.representation import JSON, Reply
from observability.metrics import CONTENT_TYPE, Metrics, service_version
from persistence.database import ENGINE
from persistence.health import ping, schema_revisions
from server.lame_duck import DRAINING
from settings import ROOT

# A probe must answer before the orchestrator's own timeout, even when the database hangs.
READINESS_TIMEOUT_SECONDS = 2.0
# Where the app's state holds openapi.yaml's info.version, read once at start-up.
CONTRACT_VERSION = "contract_version"


@cache
def migration_heads() -> tuple[str, ...]:
    return tuple(sorted(ScriptDirectory(str(ROOT / "migrations")).get_heads()))


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


def _not_ready(detail: str) -> Problem:
    return Problem(503, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _checks(engine: AsyncEngine) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS), engine.connect() as conn:
            await ping(conn=conn)
            database = {"status": "ok", "latency_ms": _ms(started)}
            started = time.perf_counter()
            current = tuple(sorted(await schema_revisions(conn=conn)))
    except TimeoutError:
        raise _not_ready(
            f"the database did not answer within {READINESS_TIMEOUT_SECONDS:g} s"
        ) from None
    except (SQLAlchemyError, OSError) as error:
        raise _not_ready(f"the database is unreachable ({type(error).__name__})") from None
    head = migration_heads()
    if current != head:
        raise _not_ready(
            f"the schema is at {', '.join(current) or 'no revision'} but the migrations head is "
            f"{', '.join(head)}: run `alembic upgrade head`"
        )
    migrations = {"status": "ok", "latency_ms": _ms(started), "current": current, "head": head}
    return {"database": database, "migrations": migrations}


def _versions() -> dict[str, str]:
    return {"version": service_version(), "contract": scope["state"][CONTRACT_VERSION]}


async def live() -> Reply:
    return {"status": "ok", **_versions()}, 200, JSON


async def health() -> Reply:
    checks = await _checks(scope["state"][ENGINE])
    return {"status": "ok", "checks": checks, **_versions()}, 200, JSON


async def ready() -> Reply:
    if scope["state"][DRAINING].is_set():
        raise _not_ready("the service is shutting down")
    return await health()


def metrics() -> Response:
    """Synchronous: in multiprocess mode the scrape reads every worker's files."""
    telemetry: Metrics = scope["state"]["metrics"]
    # A Response of our own: Connexion would insist the content type equal the spec's key.
    return Response(telemetry.exposition(), media_type=CONTENT_TYPE)
