"""Content-Type as Connexion needs it: media types compared without regard to case.

Media types are case-insensitive (RFC 9110, 8.3.1), but Connexion looks up a body's schema and
its validator by the exact string: `APPLICATION/JSON` passed its media-type check, found no
schema, and reached the handler unvalidated, as bytes (a 500). Here the type, the subtype and
the parameter names are lower-cased before Connexion reads them. This runs after the signature
check, which verifies the header as sent.

A PATCH sent as `application/json` is also read as the merge patch it is: `openapi.yaml`
declares one media type for a PATCH body, RFC 7396's `application/merge-patch+json`, so that
every generated client sends that one; clients written while `application/json` was declared
too keep working (the operations' descriptions say so).
"""

from starlette.types import ASGIApp, Receive, Scope, Send

CONTENT_TYPE = b"content-type"
JSON = b"application/json"
MERGE_PATCH = b"application/merge-patch+json"


def normalised(value: bytes, method: str) -> bytes:
    """The Content-Type with its media type and parameter names in lower case."""
    media_type, *parameters = value.split(b";")
    media_type = media_type.strip().lower()
    if method == "PATCH" and media_type == JSON:
        media_type = MERGE_PATCH
    kept = []
    for parameter in parameters:
        name, equals, parameter_value = parameter.strip().partition(b"=")
        kept.append(name.strip().lower() + equals + parameter_value.strip())
    return b"; ".join([media_type, *kept])


class MediaTypes:
    """Rewrites `Content-Type` into its normal form before Connexion validates the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers: list[tuple[bytes, bytes]] = scope["headers"]
            if any(name == CONTENT_TYPE for name, _ in headers):
                method: str = scope["method"]
                scope = {
                    **scope,
                    "headers": [
                        (name, normalised(value, method) if name == CONTENT_TYPE else value)
                        for name, value in headers
                    ],
                }
        await self.app(scope, receive, send)
