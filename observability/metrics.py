"""Prometheus metrics: RED per operation, signature rejections, the database: its pool, its
queries and its failures by SQLSTATE class.

Each app owns its registry, so several apps can live in one process (the tests build a few).
With `PROMETHEUS_MULTIPROC_DIR` set (`backoffice serve --workers N` sets it), every worker
writes its values to files there and a scrape of any worker aggregates them all.
"""

import os
import platform
import re
import time
from collections.abc import Iterable, Iterator
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
# Requests that match no operation of the spec (unknown paths, Swagger UI) share one label,
# so that scanning for random paths cannot grow the number of series without bound.
UNMATCHED = "unmatched"
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
STATEMENTS = frozenset({"select", "insert", "update", "delete"})
# Clients choose the method; any other is counted as `other` to keep the label bounded.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
QUERY_STARTED = "metrics_query_started"
# The failures a retry may cure, and that on-call watches: counted from zero from the start, so
# that a dashboard's rate() sees the first of them.
WATCHED_DATABASE_FAILURES = (
    ("08", "connection_exception"),
    ("25", "invalid_transaction_state"),
    ("40", "transaction_rollback"),
    ("53", "insufficient_resources"),
    ("55", "object_not_in_prerequisite_state"),
    ("57", "operator_intervention"),
    ("58", "system_error"),
    ("none", "connection_failure"),
    ("none", "pool_timeout"),
    ("none", "timeout"),
)
WORKER_FILE = re.compile(r"^gauge_live\w+_(\d+)\.db$")


@cache
def service_version() -> str:
    try:
        return version("backoffice")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _statement_kind(statement: str) -> str:
    words = statement.lstrip().split(None, 1)
    kind = words[0].lower() if words else ""
    return kind if kind in STATEMENTS else "other"


class Metrics:
    """The app's metrics; `instrument(engine)` adds the pool and query metrics."""

    def __init__(self, namespace: str) -> None:
        self.directory = os.environ.get(MULTIPROCESS_DIRECTORY)
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by operationId, method and status.",
            ["operation", "method", "status"],
            namespace=namespace,
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by operationId, method and status.",
            ["operation", "method", "status"],
            namespace=namespace,
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight",
            "HTTP requests being answered.",
            namespace=namespace,
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.signature_rejections = Counter(
            "signature_rejections",
            "Requests refused for their signature, by reason.",
            ["reason"],
            namespace=namespace,
            registry=registry,
        )
        self.connection_refusals = Counter(
            "http_connection_refusals",
            "Requests the server refused before the application saw them, by reason "
            "(header_too_large, header_timeout, too_many_chunks, over_capacity, ...).",
            ["reason"],
            namespace=namespace,
            registry=registry,
        )
        self.pool_size = Gauge(
            "db_pool_size",
            "Connections the database pool keeps open.",
            namespace=namespace,
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.pool_checked_out = Gauge(
            "db_pool_checked_out",
            "Database connections in use.",
            namespace=namespace,
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.pool_overflow = Gauge(
            "db_pool_overflow",
            "Database connections open beyond the pool size.",
            namespace=namespace,
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.queries = Histogram(
            "db_query_duration_seconds",
            "Time the database took to run a statement, by kind of statement.",
            ["statement"],
            namespace=namespace,
            buckets=QUERY_BUCKETS,
            registry=registry,
        )
        self.db_errors = Counter(
            "db_errors",
            "Requests failed by the database, by SQLSTATE class (`none`: the driver, the pool or "
            "the network failed, named by class_name).",
            ["sqlstate_class", "class_name"],
            namespace=namespace,
            registry=registry,
        )
        for labels in WATCHED_DATABASE_FAILURES:
            self.db_errors.labels(*labels)
        # Unlabelled, so that it is there (at 0) before the first: the access line and
        # http_requests_total name each one's operation.
        self.deadline_exceeded = Counter(
            "http_request_deadline_exceeded",
            "Requests stopped at APP_REQUEST_TIMEOUT_SECONDS (answered 503, or 408 when the "
            "client's body had not arrived).",
            namespace=namespace,
            registry=registry,
        )
        build = Gauge(
            "build_info",
            "Always 1; the labels say which build is running.",
            ["version", "python"],
            namespace=namespace,
            multiprocess_mode="max",
            registry=registry,
        )
        build.labels(service_version(), platform.python_version()).set(1)
        if self.directory is None:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self._pool: QueuePool | None = None
        # Each labelled child, looked up once: `labels()` validates its arguments and takes a
        # lock on every call, which costs more than the increment or observation itself.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._query_children: dict[str, Histogram] = {}

    def instrument(self, engine: AsyncEngine) -> None:
        """Time every statement and follow the pool of `engine`."""
        sync_engine = engine.sync_engine
        event.listen(sync_engine, "before_cursor_execute", self._query_started)
        event.listen(sync_engine, "after_cursor_execute", self._query_ended)
        event.listen(sync_engine, "handle_error", self._query_failed)
        pool = sync_engine.pool
        if isinstance(pool, QueuePool):
            self._pool = pool
            # The pool changes only when a connection is taken or given back, so the gauges
            # follow those two events rather than being refreshed after every request.
            event.listen(pool, "checkout", self._pool_checkout)
            event.listen(pool, "checkin", self._pool_checkin)
            self.observe_pool()

    def observe_pool(self) -> None:
        """Copy the pool's state to the gauges (at start-up and at each scrape)."""
        if self._pool is None:
            return
        self.pool_size.set(self._pool.size())
        self._observe_pool_use(self._pool.checkedout(), self._pool.overflow())

    def _observe_pool_use(self, checked_out: int, overflow: int) -> None:
        self.pool_checked_out.set(checked_out)
        self.pool_overflow.set(max(overflow, 0))

    def _pool_checkout(self, *_args: Any) -> None:
        assert self._pool is not None
        self._observe_pool_use(self._pool.checkedout(), self._pool.overflow())

    def _pool_checkin(self, *_args: Any) -> None:
        # SQLAlchemy fires `checkin` just before the pool takes the connection back: count it
        # as back already, and as closed if the pool is full (it is then one beyond its size).
        pool = self._pool
        assert pool is not None
        full = pool.checkedin() >= pool.size()
        self._observe_pool_use(pool.checkedout() - 1, pool.overflow() - full)

    def record_request(self, operation: str, method: str, status: int, seconds: float) -> None:
        """Count and time one answered request."""
        children = self._request_children.get((operation, method, status))
        if children is None:
            labels = (operation, method, str(status))
            children = (self.requests.labels(*labels), self.duration.labels(*labels))
            self._request_children[operation, method, status] = children
        requests, duration = children
        requests.inc()
        duration.observe(seconds)

    def count_rejection(self, reason: str) -> None:
        """Count a request refused for its signature, by reason."""
        self.signature_rejections.labels(reason).inc()

    def count_connection_refusal(self, reason: str) -> None:
        """Count a request the server refused before the application, by reason."""
        self.connection_refusals.labels(reason).inc()

    def count_database_failure(self, sqlstate_class: str, class_name: str) -> None:
        """Count a request failed by the database, by the class of its SQLSTATE."""
        self.db_errors.labels(sqlstate_class, class_name).inc()

    def count_deadline_exceeded(self) -> None:
        """Count a request stopped at the deadline."""
        self.deadline_exceeded.inc()

    def _query_started(self, conn: Any, *_args: Any) -> None:
        # One slot per connection: a connection runs one statement at a time.
        conn.info[QUERY_STARTED] = time.perf_counter()

    def _query_ended(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self._observe_query(conn.info, statement)

    def _query_failed(self, context: Any) -> None:
        if context.connection is not None and context.statement is not None:
            self._observe_query(context.connection.info, context.statement)

    def _observe_query(self, info: dict[str, Any], statement: str) -> None:
        started: float | None = info.pop(QUERY_STARTED, None)
        if started is None:
            return
        elapsed = time.perf_counter() - started
        kind = _statement_kind(statement)
        timer = self._query_children.get(kind)
        if timer is None:
            timer = self._query_children[kind] = self.queries.labels(kind)
        timer.observe(elapsed)

    def exposition(self) -> bytes:
        """The text format (version 0.0.4), of every worker in multiprocess mode."""
        self.observe_pool()
        if self.directory is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.directory)
        registry.register(WorkerProcessCollector(Path(self.directory)))
        return generate_latest(registry)

    def close(self) -> None:
        """A worker that stops takes its in-flight and pool gauges out of the sums."""
        if self.directory is not None:
            multiprocess.mark_process_dead(os.getpid(), self.directory)


class WorkerProcessCollector(Collector):
    """CPU, memory and file descriptors of each live worker, labelled by `pid`.

    prometheus-client's own process collector only sees the process that answers the scrape;
    the workers are found by the live-gauge files each one keeps in the multiprocess directory.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _live_pids(self) -> list[int]:
        pids = {
            int(match[1])
            for path in self.directory.iterdir()
            if (match := WORKER_FILE.match(path.name))
        }
        return sorted(pid for pid in pids if Path(f"/proc/{pid}").exists())

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for pid in self._live_pids():
            for family in _process_metrics(pid):
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        return families.values()


def _process_metrics(pid: int) -> Iterator[Metric]:
    yield from ProcessCollector(pid=lambda: pid, registry=None).collect()
