"""The application factory: Connexion routes and validates from `openapi.yaml`."""

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Any, cast

# First: it silences a warning that importing Connexion raises (see contract/__init__.py).
import contract  # noqa: F401  # pyright: ignore[reportUnusedImport]  # isort: skip
from connexion import AsyncApp
from connexion.middleware import MiddlewarePosition
from connexion.resolver import Resolver
from connexion.spec import Specification
from sqlalchemy.ext.asyncio import AsyncEngine

import signing
from contract import problems
from contract.docs_page import SpecDocuments, SwaggerUIDist, swagger_ui_options
from contract.jsonifier import OrjsonJsonifier
from contract.operations import PrebuiltAsyncApp
from contract.routes import Routes
from contract.validation import validator_map
from handlers import handler_of
from handlers.ops import CONTRACT_VERSION
from middleware.access import AccessMiddleware
from middleware.caching import CacheControlMiddleware
from middleware.cors import Cors
from middleware.deadline import DeadlineMiddleware
from middleware.idempotency import IdempotencyMiddleware
from middleware.media_types import MediaTypes
from middleware.signature import SignatureMiddleware, SignatureRejected
from observability import logs, metrics
from persistence.database import ENGINE, LONE_STATEMENTS, create_engine, lone_statements
from persistence.idempotency import purge_expired_keys
from persistence.signatures import purge_expired_signatures
from server.lame_duck import DRAINING, lame_duck
from server.protocol import LIMITS, Limits
from server.readiness import READINESS, checking
from settings import ROOT, Settings

logger = logging.getLogger(__name__)

SPEC = ROOT / "openapi.yaml"
PURGE_SECONDS = 60


async def _purge_expired(engine: AsyncEngine) -> None:
    while True:
        await asyncio.sleep(PURGE_SECONDS)
        try:
            async with engine.begin() as conn:
                await purge_expired_signatures(conn=conn, now=datetime.now(UTC))
                await purge_expired_keys(conn=conn, now=datetime.now(UTC))
        except Exception:  # a database outage must not end the purge loop
            logger.warning("could not purge expired signatures and keys", exc_info=True)


def _warn_of_risky_settings(settings: Settings) -> None:
    """Settings that work, but not as an operator would expect: said once, at start-up."""
    if settings.secret_key is None:
        logger.warning(
            "APP_SECRET_KEY is not set: requests are signed with the public development key"
        )
    if settings.db_statement_timeout / 1000 >= settings.request_timeout_seconds:
        logger.warning(
            "APP_DB_STATEMENT_TIMEOUT (%g s) is not below APP_REQUEST_TIMEOUT_SECONDS (%g s): a "
            "slow statement is stopped by the deadline, which discards its connection, rather "
            "than by PostgreSQL",
            settings.db_statement_timeout / 1000,
            settings.request_timeout_seconds,
        )
    if 0 < settings.lame_duck_seconds < settings.keep_alive_seconds:
        logger.warning(
            "APP_KEEP_ALIVE_SECONDS (%d s) is above APP_SHUTDOWN_LAME_DUCK_SECONDS (%g s): a "
            "connection idle since before a SIGTERM may still be open when the listener closes, "
            "and a request sent on it then is reset",
            settings.keep_alive_seconds,
            settings.lame_duck_seconds,
        )


def create_app(
    settings: Settings | None = None, *, clock: Callable[[], int] = signing.now_ms
) -> AsyncApp:
    """`clock` (Unix time in ms) judges signature freshness; tests fix it to replay vectors."""
    settings = settings or Settings()
    logs.configure_logging(settings)
    telemetry = metrics.Metrics(settings.namespace)
    specification = Specification.load(SPEC)

    @contextlib.asynccontextmanager
    async def lifespan(_app: AsyncApp) -> AsyncGenerator[dict[str, Any]]:
        _warn_of_risky_settings(settings)
        engine = create_engine(settings)
        telemetry.instrument(engine)
        purge = asyncio.create_task(_purge_expired(engine))
        # What exists now (the parsed spec, routes, validators, modules) lives as long as the
        # worker: taken out of the collector's view, a full collection no longer walks its
        # 100,000 objects (a 50 ms pause, felt by every request in flight).
        gc.freeze()
        draining = asyncio.Event()
        try:
            with lame_duck(settings.lame_duck_seconds, draining):
                async with checking(settings) as readiness:
                    yield {
                        LIMITS: Limits(
                            max_header_bytes=settings.max_header_bytes,
                            header_timeout_seconds=settings.header_timeout_seconds,
                            limit_concurrency=settings.limit_concurrency,
                        ),
                        ENGINE: engine,
                        LONE_STATEMENTS: lone_statements(engine, settings),
                        "metrics": telemetry,
                        DRAINING: draining,
                        READINESS: readiness,
                        CONTRACT_VERSION: specification["info"]["version"],
                    }
        finally:
            gc.unfreeze()
            telemetry.close()
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
            await engine.dispose()

    app = PrebuiltAsyncApp(
        __name__,
        lifespan=lifespan,
        jsonifier=OrjsonJsonifier(),
        strict_validation=True,
        validate_responses=settings.validate_responses,
        validator_map=validator_map(),
        swagger_ui_options=swagger_ui_options(settings),
    )
    app.add_api(SPEC, name="backoffice", resolver=Resolver(function_resolver=handler_of))
    paths = specification["paths"]
    problems.register(
        app,
        paths,
        count_database_failure=lambda failure: telemetry.count_database_failure(
            failure.sqlstate_class, failure.class_name
        ),
    )
    # Counted where they are rendered, rather than by an ASGI layer that every request crosses.
    app.add_error_handler(
        SignatureRejected,
        problems.counted(
            SignatureRejected, lambda rejected: telemetry.count_rejection(rejected.reason)
        ),
    )
    # The first of our layers (only Connexion's ServerErrorMiddleware is outside it; the others
    # added before ExceptionMiddleware come after it): the request id, the access line and the
    # metrics also cover problem+json.
    app.add_middleware(
        cast(Any, AccessMiddleware),
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        metrics=telemetry,
        routes=Routes(paths),
    )
    # Before routing: an unsigned request is refused before the router could redirect it.
    app.add_middleware(
        cast(Any, SignatureMiddleware),
        position=MiddlewarePosition.BEFORE_ROUTING,
        settings=settings,
        clock=clock,
    )
    app.add_middleware(
        cast(Any, SwaggerUIDist),
        position=MiddlewarePosition.BEFORE_SWAGGER,
        documents=SpecDocuments(specification.raw),
    )
    app.add_middleware(cast(Any, MediaTypes), position=MiddlewarePosition.BEFORE_VALIDATION)
    app.add_middleware(
        cast(Any, IdempotencyMiddleware),
        position=MiddlewarePosition.BEFORE_CONTEXT,
        settings=settings,
    )
    app.add_middleware(
        cast(Any, CacheControlMiddleware),
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        settings=settings,
    )
    app.add_middleware(
        cast(Any, Cors),
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        origins=settings.cors_origins,
        credentials=settings.cors_allow_credentials,
    )
    # Inside CORS and the cache policy, so that a stopped request's 503 carries their headers.
    app.add_middleware(
        cast(Any, DeadlineMiddleware),
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        seconds=settings.request_timeout_seconds,
        metrics=telemetry,
    )
    return app
