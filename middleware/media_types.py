"""A PATCH sent as `application/json` is read as the merge patch it is.

`openapi.yaml` declares one media type for a PATCH body, RFC 7396's
`application/merge-patch+json`, so that every generated client sends that one; clients written
while `application/json` was declared too keep working (the operations' descriptions say so).
"""

from starlette.types import ASGIApp, Receive, Scope, Send

JSON = b"application/json"
MERGE_PATCH = b"application/merge-patch+json"


def _as_merge_patch(value: bytes) -> bytes:
    media_type, separator, parameters = value.partition(b";")
    if media_type.strip().lower() != JSON:
        return value
    return MERGE_PATCH + separator + parameters


class MergePatchAsJson:
    """Rewrites a PATCH's `Content-Type: application/json` before Connexion validates it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "PATCH":
            headers = [
                (name, _as_merge_patch(value) if name == b"content-type" else value)
                for name, value in scope["headers"]
            ]
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)
