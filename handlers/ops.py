"""Probes and metrics for the people who run the service: unsigned, outside `/api`."""

from connexion.context import scope
from starlette.responses import Response

from contract.problems import RETRY_AFTER_SECONDS, Problem
from handlers.representation import JSON, Reply
from observability.metrics import CONTENT_TYPE, Metrics, service_version
from server.lame_duck import DRAINING
from server.readiness import READINESS, Readiness

# Where the app's state holds openapi.yaml's info.version, read once at start-up.
CONTRACT_VERSION = "contract_version"


def _not_ready(detail: str) -> Problem:
    return Problem(503, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def _versions() -> dict[str, str]:
    return {"version": service_version(), "contract": scope["state"][CONTRACT_VERSION]}


async def live() -> Reply:
    return {"status": "ok", **_versions()}, 200, JSON


async def health() -> Reply:
    """The worker's readiness verdict (`server/readiness.py`), as its last checks found it."""
    readiness: Readiness = scope["state"][READINESS]
    verdict = readiness.verdict
    if not verdict.ready:
        raise _not_ready(verdict.reason)
    return {"status": "ok", "checks": verdict.checks, **_versions()}, 200, JSON


async def ready() -> Reply:
    if scope["state"][DRAINING].is_set():
        raise _not_ready("the service is shutting down")
    return await health()


def metrics() -> Response:
    """Synchronous: in multiprocess mode the scrape reads every worker's files."""
    telemetry: Metrics = scope["state"]["metrics"]
    # A Response of our own: Connexion would insist the content type equal the spec's key.
    return Response(telemetry.exposition(), media_type=CONTENT_TYPE)
