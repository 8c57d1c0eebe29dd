"""Cross-origin calls from the browser frontend: Starlette's CORS layer, refusing in problem+json.

Starlette answers a refused preflight with a plain-text "Disallowed CORS origin"; here the
refusal is an RFC 9457 problem like every other, saying which origin, method or header failed.
"""

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from contract import problems
from contract.problems import Problem

ALLOWED_METHODS = ("GET", "POST", "PATCH", "DELETE", "OPTIONS")
REQUEST_HEADERS = (
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "X-Request-ID",
    "x-signature",
    "x-signature-version",
    "x-timestamp",
    "Signature",
    "Signature-Input",
    "Content-Digest",
    # W3C Trace Context, which OpenTelemetry's browser instrumentation adds to every fetch.
    "traceparent",
    "tracestate",
)
EXPOSED_HEADERS = (
    "Allow",
    "ETag",
    "Idempotent-Replayed",
    "Location",
    "Retry-After",
    "X-Request-ID",
)
PREFLIGHT_MAX_AGE = 600


class Cors(CORSMiddleware):
    def __init__(self, app: ASGIApp, *, origins: list[str], credentials: bool) -> None:
        super().__init__(
            app,
            allow_origins=origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=REQUEST_HEADERS,
            allow_credentials=credentials,
            expose_headers=EXPOSED_HEADERS,
            max_age=PREFLIGHT_MAX_AGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                answer = self.preflight_response(request_headers=headers)
                refusal = self._refusal(headers) if answer.status_code != 200 else None
                if refusal is not None:
                    answer = problems.response(refusal, scope)
                await answer(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _refusal(self, headers: Headers) -> Problem | None:
        origin = headers["origin"]
        if not self.is_allowed_origin(origin):
            return Problem(
                400,
                f"the origin {origin} may not call this API: APP_CORS_ORIGINS does not list it",
                field="Origin",
            )
        method = headers["access-control-request-method"]
        if method not in self.allow_methods:
            return Problem(
                400,
                f"{method} is not allowed from a browser: {', '.join(ALLOWED_METHODS)} are",
                field="Access-Control-Request-Method",
            )
        requested = headers.get("access-control-request-headers", "")
        refused = [h.strip() for h in requested.lower().split(",") if h.strip()]
        refused = [h for h in refused if h not in self.allow_headers]
        if refused:
            return Problem(
                400,
                f"the header {refused[0]} is not allowed from a browser",
                field="Access-Control-Request-Headers",
            )
        return Problem(400, "this preflight request is not allowed")
