"""Readiness: can this worker serve reads and writes within the request deadline?

The probe used to ask the database itself, within 2 s: it stayed 200 while every write failed
(a full disk, a locked table), and flapped under a 400 ms round trip, its several round trips
passing 2 s now and then while the API still answered. Here a task checks every
`CHECK_INTERVAL_SECONDS`, on a connection of its own (a pool busy with requests is no reason to
take the worker out, and would take every worker out at once under load): the database answers,
its schema is at the migrations head, and it would take a write now
(`persistence.health.check_database`). Each check must end within the deadline,
`APP_REQUEST_TIMEOUT_SECONDS`, as a request must. The worker is not ready after `FALL` failed
checks in a row, or once checks have failed for as long as `FALL` of them take (a check that
hangs until the deadline counts for all of that time), and ready again after `RISE` good ones.
The first check, which decides at once, ends before the worker serves; `/health/ready` answers
from the last verdict, without waiting.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from persistence import failures
from persistence.database import create_engine
from persistence.health import (
    DatabaseReport,
    ReadFailed,
    WriteRefused,
    check_database,
    migration_heads,
)
from settings import Settings

logger = logging.getLogger(__name__)

# Where the app's lifespan state keeps the worker's `Readiness`.
READINESS = "readiness"
CHECK_INTERVAL_SECONDS = 1.0
# Failed checks in a row that make a ready worker not ready, and good ones that make it ready.
FALL = 3
RISE = 2
# A write waiting this long for a lock on the API's tables counts as refused.
LOCK_WAIT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Verdict:
    ready: bool
    # The last good check's report (for a 200), and why the last failed check failed (a 503).
    checks: dict[str, Any] = field(default_factory=dict[str, Any])
    reason: str = ""


class Readiness:
    """The worker's verdict, kept by `run()` from the outcome of each check."""

    def __init__(
        self,
        check: Callable[[], Awaitable[dict[str, Any]]],
        *,
        bound_seconds: float,
        interval_seconds: float = CHECK_INTERVAL_SECONDS,
    ) -> None:
        self.check = check
        self.bound_seconds = bound_seconds
        self.interval_seconds = interval_seconds
        self.verdict = Verdict(ready=False, reason="the first readiness check has not ended")
        self.first = True
        self.failures = 0
        self.successes = 0
        # When the first check of the current run of failures began.
        self.failing_since = 0.0

    async def run(self) -> None:
        """Check every interval, forever (the first check is `check_once`'s)."""
        while True:
            await asyncio.sleep(self.interval_seconds)
            await self.check_once()

    async def check_once(self) -> None:
        started = time.monotonic()
        bound = asyncio.timeout(self.bound_seconds)
        try:
            async with bound:
                checks = await self.check()
        except Exception as error:  # a check that breaks must not end the checking
            if bound.expired():
                # Cancelled at the bound, wherever it was (SQLAlchemy may wrap the cancellation).
                reason = f"the database did not answer within {self.bound_seconds:g} s"
            elif isinstance(error, NotReady):
                reason = str(error)
            else:
                logger.error("the readiness check failed", exc_info=error)
                reason = f"the readiness check failed ({type(error).__name__})"
            self._failed(reason, started)
        else:
            self._succeeded(checks)
        self.first = False

    def _failed(self, reason: str, started: float) -> None:
        if not self.failures:
            self.failing_since = started
        self.failures += 1
        self.successes = 0
        was = self.verdict
        failing_for = time.monotonic() - self.failing_since
        if was.ready and self.failures < FALL and failing_for < FALL * self.interval_seconds:
            return
        self.verdict = Verdict(ready=False, checks=was.checks, reason=reason)
        if was.ready or self.first:
            logger.warning("not ready: %s (%d checks in a row failed)", reason, self.failures)

    def _succeeded(self, checks: dict[str, Any]) -> None:
        self.successes += 1
        self.failures = 0
        was = self.verdict
        if not was.ready and not self.first and self.successes < RISE:
            self.verdict = Verdict(ready=False, checks=checks, reason=was.reason)
            return
        self.verdict = Verdict(ready=True, checks=checks)
        if not was.ready and not self.first:
            logger.warning("ready again (%d checks in a row passed)", self.successes)


class NotReady(Exception):
    """A check that ended, and found the worker unable to serve: the message says why."""


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


def database_check(engine: AsyncEngine) -> Callable[[], Awaitable[dict[str, Any]]]:
    """The check of `engine`'s database, as `Readiness` takes it."""

    async def check() -> dict[str, Any]:
        started = time.perf_counter()
        try:
            report: DatabaseReport = await check_database(
                engine, lock_wait_seconds=LOCK_WAIT_SECONDS
            )
        except ReadFailed as error:
            raise NotReady(_unreachable(error)) from None
        except WriteRefused as error:
            raise NotReady(_refused(error)) from None
        head = migration_heads()
        if report.writes_ms is None or tuple(sorted(report.current)) != head:
            raise NotReady(
                f"the schema is at {', '.join(report.current) or 'no revision'} but the "
                f"migrations head is {', '.join(head)}: run `alembic upgrade head`"
            )
        total = _ms(started)
        return {
            "database": {"status": "ok", "latency_ms": round(total - report.revisions_ms, 3)},
            "migrations": {
                "status": "ok",
                "latency_ms": report.revisions_ms,
                "current": sorted(report.current),
                "head": list(head),
            },
        }

    return check


def _unreachable(error: BaseException) -> str:
    failure = failures.describe(error.__cause__ or error)
    if failure.sqlstate:
        return f"the database failed a read: SQLSTATE {failure.sqlstate} ({failure.class_name})"
    if failure.class_name == "timeout":
        return "the database did not answer within its connect or statement timeout"
    return f"the database is unreachable ({failure.error})"


def _refused(error: BaseException) -> str:
    failure = failures.describe(error.__cause__ or error)
    if failure.sqlstate == "55P03":
        return (
            f"writes wait for a lock on the API's tables: none was granted within "
            f"{LOCK_WAIT_SECONDS:g} s (SQLSTATE 55P03)"
        )
    if failure.sqlstate:
        return f"the database refuses writes: SQLSTATE {failure.sqlstate} ({failure.class_name})"
    return f"the database refuses writes ({failure.error})"


@contextlib.asynccontextmanager
async def checking(settings: Settings) -> AsyncGenerator[Readiness]:
    """The worker's readiness, checked until the context ends, on an engine of its own."""
    engine = create_engine(settings)
    readiness = Readiness(database_check(engine), bound_seconds=settings.request_timeout_seconds)
    await readiness.check_once()
    task = asyncio.create_task(readiness.run())
    try:
        yield readiness
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await engine.dispose()
