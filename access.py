"""What every request leaves behind: its id, its access line and its metrics, from one ASGI layer.

Both the log and the metrics need the response's status and the request's duration, so they
share one wrapper of `send` instead of each adding a layer that every request passes through.
"""

import logging
import re
import time
import uuid

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metrics import METHODS, Metrics, operation_label

REQUEST_ID_HEADER = "X-Request-ID"
# Anything else a client sends as its request id is replaced, so a log line can't be forged.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

access_log = structlog.get_logger("access")


def request_id_from(headers: Headers) -> str:
    """The client's `X-Request-ID` when it is well formed, else a new one."""
    given = headers.get(REQUEST_ID_HEADER)
    if given is not None and REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class AccessMiddleware:
    """Gives each request an id (echoed in `X-Request-ID`), counts and times it by operation,
    and logs one line when it ends.

    The line names the operation, never the query string, headers or body: those can carry
    signatures and personal data.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope))
        # `problems.render` reads the id from here into every problem+json body.
        scope["request_id"] = request_id
        # Connexion's router records the operation in this dict; the stages between here and
        # the router pass shallow copies of the scope, which share it.
        scope.setdefault("extensions", {})
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            self.metrics.in_flight.inc()
            try:
                await self.app(scope, receive, send_observed)
            finally:
                self.metrics.in_flight.dec()
                self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        operation = operation_label(scope)
        method: str = scope["method"]
        self.metrics.record_request(
            operation, method if method in METHODS else "other", status, seconds
        )
        client = scope.get("client")
        access_log.log(
            logging.INFO if status < 500 else logging.WARNING,
            "request",
            method=method,
            path=scope["path"],
            operation=operation,
            status=status,
            duration_ms=round(seconds * 1000, 3),
            client=client[0] if client else None,
        )
