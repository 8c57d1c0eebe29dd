"""RFC 9457 problem+json: every error the service returns is built and rendered here."""

import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

import orjson
from connexion import AsyncApp
from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import compile_path

from persistence import errors, failures

logger = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
# Each path's pattern, and the methods it serves as an `Allow` value.
type AllowTable = tuple[tuple[re.Pattern[str], str], ...]
# How long a client should wait before retrying when the database is unavailable.
RETRY_AFTER_SECONDS = 1

# The `type` of each problem: a stable identifier clients can branch on (see the README).
TYPES = {
    400: "/problems/invalid-request",
    401: "/problems/invalid-signature",
    403: "/problems/forbidden",
    404: "/problems/not-found",
    405: "/problems/method-not-allowed",
    408: "/problems/request-timeout",
    409: "/problems/conflict",
    412: "/problems/precondition-failed",
    413: "/problems/payload-too-large",
    414: "/problems/uri-too-long",
    415: "/problems/unsupported-media-type",
    422: "/problems/unprocessable-content",
    431: "/problems/header-fields-too-large",
    500: "/problems/internal-error",
    503: "/problems/service-unavailable",
}


class Problem(ProblemException):
    """An error with everything its problem+json document needs."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            status=status,
            title=HTTPStatus(status).phrase,
            detail=detail,
            type=TYPES.get(status, "about:blank"),
            headers=headers,
            ext={"field": field} if field else None,
        )
        self.field = field


def _scope(request: ConnexionRequest | None) -> dict[str, Any]:
    return getattr(request, "scope", None) or {}


def document(problem: Problem, scope: Mapping[str, Any]) -> bytes:
    """The problem+json body, with the request id the access layer put in `scope`."""
    body: dict[str, object] = {
        "type": problem.type,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if problem.field:
        body["field"] = problem.field
    request_id = scope.get("request_id")
    if request_id:
        body["request_id"] = request_id
    return orjson.dumps(body)


def render(request: ConnexionRequest | None, problem: Problem) -> ConnexionResponse:
    return ConnexionResponse(
        status_code=problem.status,
        mimetype=MEDIA_TYPE,
        content_type=MEDIA_TYPE,
        body=document(problem, _scope(request)),
        headers=problem.headers or {},
    )


def response(problem: Problem, scope: Mapping[str, Any]) -> Response:
    """The same document as a plain ASGI response, for layers that answer before Connexion."""
    return Response(
        document(problem, scope), problem.status, problem.headers, media_type=MEDIA_TYPE
    )


type ErrorHandler = Callable[[ConnexionRequest, Exception], ConnexionResponse]
type AsyncErrorHandler = Callable[[ConnexionRequest, Exception], Awaitable[ConnexionResponse]]


def on_the_loop(handler: ErrorHandler) -> AsyncErrorHandler:
    """`handler` as a coroutine function: Connexion runs a plain function in a worker thread,
    a hop that cost every refusal (a 401, a 404) about 40 us, for work that never blocks."""

    @functools.wraps(handler)
    async def on_loop(request: ConnexionRequest, error: Exception) -> ConnexionResponse:
        return handler(request, error)

    return on_loop


def counted[P: Problem](kind: type[P], count: Callable[[P], object]) -> AsyncErrorHandler:
    """An error handler for `kind` that lets `count` see each problem, then renders it."""

    def handler(request: ConnexionRequest, error: Exception) -> ConnexionResponse:
        assert isinstance(error, kind)
        count(error)
        return render(request, error)

    return on_the_loop(handler)


PERSISTENCE_STATUS: dict[type[errors.PersistenceError], int] = {
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PreconditionFailed: 412,
    errors.InvalidCursor: 400,
}


def from_persistence(request: ConnexionRequest, error: Exception) -> ConnexionResponse:
    assert isinstance(error, errors.PersistenceError)
    status = PERSISTENCE_STATUS[type(error)]
    return render(request, Problem(status, error.detail, field=error.field))


def from_connexion(request: ConnexionRequest, error: Exception) -> ConnexionResponse:
    """Connexion's own problems (validation, media type, security), in our format."""
    if isinstance(error, Problem):
        return render(request, error)
    assert isinstance(error, ProblemException)
    if error.status >= 500:
        logger.error("connexion problem: %s", error.detail)
    field = (error.ext or {}).get("field") if isinstance(error.ext, dict) else None
    problem = Problem(error.status, str(error.detail or error.title), field=field)
    problem.headers = error.headers
    return render(request, problem)


def from_http(
    request: ConnexionRequest, error: Exception, *, allow: AllowTable = ()
) -> ConnexionResponse:
    """Starlette's routing errors: unknown path (404) and unsupported method (405)."""
    if isinstance(error, ProblemException):
        return from_connexion(request, error)
    assert isinstance(error, HTTPException)
    scope = _scope(request)
    path, method = scope.get("path", ""), scope.get("method", "")
    detail = {
        404: f"no resource at {path}",
        405: f"{method} is not supported on {path}",
    }.get(error.status_code, str(error.detail))
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = next((methods for route, methods in allow if route.match(path)), "")
    return render(request, Problem(error.status_code, detail, headers=headers))


def allow_table(paths: Mapping[str, Mapping[str, object]]) -> AllowTable:
    """Each spec path's pattern and `Allow` value. Starlette's 405 names only the first route's
    methods, and Connexion has one route per operation, so its `Allow` misses the others."""
    table: list[tuple[re.Pattern[str], str]] = []
    for template, item in paths.items():
        methods = {method.upper() for method in item if method in HTTP_METHODS}
        if "GET" in methods:
            methods.add("HEAD")  # Starlette answers HEAD wherever it answers GET
        table.append((compile_path(template)[0], ", ".join(sorted(methods))))
    return tuple(table)


# What a client is told of a database failure that a retry may cure, and the log line's start.
UNAVAILABLE = ("the database is unavailable", "the database is unavailable, retry later")
REFUSED_WRITE = ("the database refused the write", "the database refused the write, retry later")
ROLLED_BACK = (
    "the database rolled the transaction back",
    "the database rolled the transaction back to settle a conflict with another; retry",
)


def database_failure(
    request: ConnexionRequest,
    error: Exception,
    *,
    count: Callable[[failures.DatabaseFailure], object] = lambda _failure: None,
) -> ConnexionResponse:
    """A database failure: 503 with `Retry-After` when a retry may cure it, else a logged 500.

    The log line names the SQLSTATE, its class and the server's message; the client is told
    only whether its write was refused (the database still answers reads) or the database is
    unavailable."""
    failure = failures.describe(error)
    count(failure)
    if not failure.retryable:
        return unexpected(request, error, failure)
    if failure.refused_write:
        event, detail = REFUSED_WRITE
    elif failure.rolled_back:
        event, detail = ROLLED_BACK
    else:
        event, detail = UNAVAILABLE
    logger.warning("%s: %s", event, failure.summary, extra=failure.log_fields())
    problem = Problem(503, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    return render(request, problem)


def unexpected(
    request: ConnexionRequest,
    error: Exception,
    failure: failures.DatabaseFailure | None = None,
) -> ConnexionResponse:
    fields = failure.log_fields() if failure else {}
    logger.error("unhandled error", exc_info=error, extra=fields)
    return render(request, Problem(500, "an unexpected error occurred; it has been logged"))


def register(
    app: AsyncApp,
    paths: Mapping[str, Mapping[str, object]],
    *,
    count_database_failure: Callable[[failures.DatabaseFailure], object] = lambda _failure: None,
) -> None:
    """Render every error as problem+json; `paths` (the spec's) give 405 its `Allow`, and
    `count_database_failure` sees each failure of the database."""
    app.add_error_handler(errors.PersistenceError, on_the_loop(from_persistence))
    app.add_error_handler(ProblemException, on_the_loop(from_connexion))
    app.add_error_handler(404, on_the_loop(from_http))
    app.add_error_handler(405, on_the_loop(functools.partial(from_http, allow=allow_table(paths))))
    on_failure = functools.partial(database_failure, count=count_database_failure)
    for failing in (DBAPIError, PoolTimeoutError, OSError, TimeoutError):
        app.add_error_handler(failing, on_the_loop(on_failure))
    app.add_error_handler(Exception, on_the_loop(unexpected))
