"""The application factory: Connexion routes and validates from `openapi.yaml`."""

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from connexion import AsyncApp
from connexion.jsonifier import Jsonifier
from connexion.middleware import ConnexionMiddleware, MiddlewarePosition
from connexion.middleware.response_validation import ResponseValidationMiddleware
from connexion.options import SwaggerUIOptions
from connexion.spec import Specification
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.middleware.cors import CORSMiddleware

import logs
import metrics
import problems
import signing
from access import AccessMiddleware
from authentication import SignatureMiddleware, SignatureRejected
from idempotency import IdempotencyMiddleware
from lame_duck import DRAINING, lame_duck
from operations import PrebuiltAsyncApp
from persistence.database import LONE_STATEMENTS, create_engine, lone_statements
from persistence.idempotency import purge_expired_keys
from persistence.signatures import purge_expired_signatures
from settings import ROOT, Settings
from validation import VALIDATORS

logger = logging.getLogger(__name__)

SPEC = ROOT / "openapi.yaml"
# Connexion's Swagger UI, plus a request interceptor that signs "Try it out" calls in the browser.
SWAGGER_UI_DIR = ROOT / "swagger"
PURGE_SECONDS = 60
CORS_REQUEST_HEADERS = [
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "X-Request-ID",
    "x-signature",
    "x-signature-version",
    "x-timestamp",
]
CORS_EXPOSED_HEADERS = ["ETag", "Idempotent-Replayed", "Location", "Retry-After", "X-Request-ID"]


class OrjsonJsonifier(Jsonifier):
    """orjson serializes several times faster than the standard library, datetimes included.

    SQLAlchemy row keys are `str` subclasses, which orjson accepts only with OPT_NON_STR_KEYS.
    """

    def __init__(self) -> None:
        super().__init__(orjson)

    def dumps(self, data: Any, **kwargs: Any) -> Any:
        return orjson.dumps(
            data, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS
        )

    def loads(self, data: Any) -> Any:
        return orjson.loads(data)


async def _purge_expired(engine: AsyncEngine) -> None:
    while True:
        await asyncio.sleep(PURGE_SECONDS)
        try:
            async with engine.begin() as conn:
                await purge_expired_signatures(conn=conn, now=datetime.now(UTC))
                await purge_expired_keys(conn=conn, now=datetime.now(UTC))
        except Exception:  # a database outage must not end the purge loop
            logger.warning("could not purge expired signatures and keys", exc_info=True)


def create_app(
    settings: Settings | None = None, *, clock: Callable[[], int] = signing.now_ms
) -> AsyncApp:
    """`clock` (Unix time in ms) judges signature freshness; tests fix it to replay vectors."""
    settings = settings or Settings()
    logs.configure_logging(settings)
    telemetry = metrics.Metrics(settings.namespace)

    @contextlib.asynccontextmanager
    async def lifespan(_app: AsyncApp) -> AsyncGenerator[dict[str, Any]]:
        if settings.secret_key is None:
            logger.warning(
                "APP_SECRET_KEY is not set: requests are signed with the public development key"
            )
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
                yield {
                    "engine": engine,
                    LONE_STATEMENTS: lone_statements(engine, settings),
                    "settings": settings,
                    "metrics": telemetry,
                    DRAINING: draining,
                }
        finally:
            gc.unfreeze()
            telemetry.close()
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
            await engine.dispose()

    # Connexion keeps its response validation stage even when it validates nothing: one more
    # layer for every request to pass through, left out unless it is on.
    middlewares = [
        middleware
        for middleware in ConnexionMiddleware.default_middlewares
        if settings.validate_responses or middleware is not ResponseValidationMiddleware
    ]
    app = PrebuiltAsyncApp(
        __name__,
        lifespan=lifespan,
        middlewares=middlewares,
        jsonifier=OrjsonJsonifier(),
        strict_validation=True,
        validate_responses=settings.validate_responses,
        validator_map=VALIDATORS,
        swagger_ui_options=SwaggerUIOptions(
            swagger_ui_path="/docs", swagger_ui_template_dir=str(SWAGGER_UI_DIR)
        ),
    )
    app.add_api(SPEC, name="backoffice")
    problems.register(app, Specification.load(SPEC)["paths"])
    # Counted where they are rendered, rather than by an ASGI layer that every request crosses.
    app.add_error_handler(SignatureRejected, telemetry.count_rejection)
    # Outermost: the request id, the access line and the metrics also cover problem+json.
    app.add_middleware(
        cast(Any, AccessMiddleware),
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        metrics=telemetry,
    )
    app.add_middleware(
        cast(Any, SignatureMiddleware),
        position=MiddlewarePosition.BEFORE_SECURITY,
        settings=settings,
        clock=clock,
    )
    app.add_middleware(
        cast(Any, IdempotencyMiddleware),
        position=MiddlewarePosition.BEFORE_CONTEXT,
        settings=settings,
    )
    app.add_middleware(
        cast(Any, CORSMiddleware),
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        max_age=600,
    )
    return app
