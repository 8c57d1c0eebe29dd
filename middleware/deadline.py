"""The request deadline: no request runs longer than `APP_REQUEST_TIMEOUT_SECONDS`.

A frozen database (a server that accepts the connection and answers nothing, a lost network)
held a request for as long as the driver's own bounds allowed, 15 s and more, while the proxy in
front gave up on it. At the deadline the request's task is cancelled, which cancels what it
waits on: asyncpg asks PostgreSQL to cancel the running statement, and SQLAlchemy discards the
connection rather than return it to the pool in an unknown state. The client gets 503 with
`Retry-After`, or 408 when its own body had not arrived yet.
"""

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contract import problems
from contract.problems import RETRY_AFTER_SECONDS, Problem
from contract.routes import ROUTE
from middleware.access import announces_body
from observability.metrics import UNMATCHED, Metrics

logger = logging.getLogger(__name__)


class DeadlineMiddleware:
    def __init__(self, app: ASGIApp, *, seconds: float, metrics: Metrics) -> None:
        self.app = app
        self.seconds = seconds
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_pending = announces_body(scope)
        started = False

        async def receive_observed() -> Message:
            nonlocal body_pending
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_pending = False
            return message

        async def send_observed(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        deadline = asyncio.timeout(self.seconds)
        try:
            async with deadline:
                await self.app(scope, receive_observed if body_pending else receive, send_observed)
        except TimeoutError:
            if not deadline.expired():
                raise
            await self._stopped(scope, send, body_pending=body_pending, started=started)

    async def _stopped(
        self, scope: Scope, send: Send, *, body_pending: bool, started: bool
    ) -> None:
        route = scope.get(ROUTE)
        operation = route.operation_id if route else UNMATCHED
        self.metrics.count_deadline_exceeded()
        waiting = "for the request's body" if body_pending else "for the service"
        logger.warning(
            "stopped a request at the %g s deadline (APP_REQUEST_TIMEOUT_SECONDS), waiting %s",
            self.seconds,
            waiting,
            extra={"operation": operation},
        )
        if started:
            # Part of the answer is out: nothing else can be said; the server closes the
            # connection under a response that the application did not complete.
            return
        if body_pending:
            problem = Problem(408, f"the request's body did not arrive within {self.seconds:g} s")
        else:
            problem = Problem(
                503,
                f"the request did not complete within {self.seconds:g} s and was stopped; "
                "retry later",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        await problems.response(problem, scope)(scope, _nothing_to_receive, send)


async def _nothing_to_receive() -> Message:
    return {"type": "http.disconnect"}
