"""What every request leaves behind: its id, its access line and its metrics, from one ASGI layer.

Both the log and the metrics need the response's status and the request's duration, so they
share one wrapper of `send` instead of each adding a layer that every request passes through.
This outermost layer also names the request's operation (`contract.routes`) for the layers
inside it, and closes the connection after a response sent before the request's body was read
(the server would otherwise go on receiving and parsing a body nobody reads) and after every
response once the worker is draining: a client that kept the connection for its next request
would send it just as the listener closes, and have it reset.
"""

import logging
import random
import re
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contract.routes import ROUTE, Routes
from observability.metrics import METHODS, UNMATCHED, Metrics
from server.lame_duck import DRAINING

# Read and written as raw ASGI headers: starlette's Headers and MutableHeaders copy the whole
# header list to get or set this one (about 1 us each, on every request).
REQUEST_ID_HEADER = b"x-request-id"
CONNECTION_CLOSE = (b"connection", b"close")
# Anything else a client sends as its request id is replaced, so a log line can't be forged.
REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")

access_log = structlog.get_logger("access")


def request_id_from(scope: Scope) -> bytes:
    """The client's `X-Request-ID` when it is well formed, else a new one."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            if REQUEST_ID.fullmatch(value):
                return value
            break
    # 128 random bits, as uuid4 has, from the standard generator (seeded by the OS, and again
    # after a fork) instead of a system call: an id must be unique, not unpredictable.
    return b"%032x" % random.getrandbits(128)


def announces_body(scope: Scope) -> bool:
    """Whether the request says a body follows: a non-zero Content-Length, or chunks."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip(b"0 ")):
            return True
    return False


def _draining(scope: Scope) -> bool:
    """Whether the lame duck has begun (the event exists only in a lifespan's state)."""
    draining = scope.get("state", {}).get(DRAINING)
    return draining is not None and draining.is_set()


class AccessMiddleware:
    """Gives each request an id (echoed in `X-Request-ID`), counts and times it by operation,
    and logs one line when it ends.

    The line names the operation, never the query string, headers or body: those can carry
    signatures and personal data.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics, routes: Routes) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_id = request_id_from(scope)
        request_id = raw_id.decode()
        # `problems.render` reads the id from here into every problem+json body.
        scope["request_id"] = request_id
        route = scope[ROUTE] = self.routes.match(scope["method"], scope["path"])
        status = 500
        body_pending = announces_body(scope)

        async def receive_observed() -> Message:
            nonlocal body_pending
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_pending = False
            return message

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    pair for pair in message.get("headers", ()) if pair[0] != REQUEST_ID_HEADER
                ]
                headers.append((REQUEST_ID_HEADER, raw_id))
                if body_pending or _draining(scope):
                    headers.append(CONNECTION_CLOSE)
                message["headers"] = headers
            await send(message)

        started = time.perf_counter()
        # A token resets the id for a third of the cost of `bound_contextvars`, which reads the
        # whole context to save what it overwrites.
        context = structlog.contextvars.bind_contextvars(request_id=request_id)
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive_observed if body_pending else receive, send_observed)
        finally:
            self.metrics.in_flight.dec()
            try:
                operation = route.operation_id if route else UNMATCHED
                self._record(scope, operation, status, time.perf_counter() - started)
            finally:
                structlog.contextvars.reset_contextvars(**context)

    def _record(self, scope: Scope, operation: str, status: int, seconds: float) -> None:
        method: str = scope["method"]
        self.metrics.record_request(
            operation, method if method in METHODS else "other", status, seconds
        )
        level = logging.INFO if status < 500 else logging.WARNING
        client = scope.get("client")
        access_log.log(
            level,
            "request",
            method=method,
            path=scope["path"],
            operation=operation,
            status=status,
            duration_ms=round(seconds * 1000, 3),
            client=client[0] if client else None,
        )
