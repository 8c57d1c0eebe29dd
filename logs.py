"""Structured logs: JSON lines on stdout (readable lines with APP_DEBUG), one per request.

Every record, ours and the libraries' (uvicorn, SQLAlchemy, Alembic), goes through structlog's
processors, so each carries the request id of the request that logged it.
"""

import logging
import re
import sys
import time
import uuid
from typing import Any, TextIO, override

import orjson
import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metrics import operation_label
from settings import Settings

REQUEST_ID_HEADER = "X-Request-ID"
# Anything else a client sends as its request id is replaced, so a log line can't be forged.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

access_log = structlog.get_logger("access")


def _drop_color_message(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    # uvicorn passes a second, ANSI-coloured copy of some messages as an `extra`.
    event.pop("color_message", None)
    return event


def _orjson_dumps(value: Any, **_kwargs: Any) -> str:
    return orjson.dumps(value, default=str).decode()


class StdoutHandler(logging.StreamHandler[TextIO]):
    """Writes to `sys.stdout` as it is when a record is emitted.

    A handler bound to the stream at start-up would keep writing to a stream that a test's
    output capture or a process manager has since replaced.
    """

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @override
    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def configure_logging(settings: Settings) -> None:
    """Route every log record to stdout through structlog; safe to call more than once."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if settings.debug:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if not settings.debug:
        final.append(structlog.processors.format_exc_info)
    handler = StdoutHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[*final, renderer])
    )
    root = logging.getLogger()
    # Ours from an earlier call, and the plain console handler that Alembic's `fileConfig`
    # installs when `serve` migrates first: either would print every record a second time.
    for previous in [h for h in root.handlers if type(h) in (StdoutHandler, logging.StreamHandler)]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Our access line replaces uvicorn's; uvicorn's own messages still come through.
    logging.getLogger("uvicorn.access").disabled = True
    # Connexion 3.3 warns "this operation accepts multiple content types" several times on
    # every request to an operation whose body has two media types (our PATCHes and POSTs),
    # even when the request names its type: six lines per request, and a fifth of its CPU.
    # It is the only message that logger sends.
    logging.getLogger("connexion.operations.openapi3").setLevel(logging.ERROR)


def request_id_from(headers: Headers) -> str:
    """The client's `X-Request-ID` when it is well formed, else a new one."""
    given = headers.get(REQUEST_ID_HEADER)
    if given is not None and REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class RequestLogMiddleware:
    """Gives each request an id (echoed in `X-Request-ID`) and logs one line when it ends.

    The line names the operation, never the query string, headers or body: those can carry
    signatures and personal data.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope))
        # `problems.render` reads the id from here into every problem+json body.
        scope["request_id"] = request_id
        scope.setdefault("extensions", {})
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                client = scope.get("client")
                access_log.log(
                    logging.INFO if status < 500 else logging.WARNING,
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    operation=operation_label(scope),
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 3),
                    client=client[0] if client else None,
                )
