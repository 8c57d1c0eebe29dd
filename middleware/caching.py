"""The `Cache-Control` policy of every `/api` response, set in one place.

Signed responses are never stored by shared caches (`public` is never sent): a resource may be
kept by the client's own cache and is revalidated with its ETag (`If-None-Match` answers 304),
or reused for `APP_CACHE_MAX_AGE` seconds when that is set; lists, writes and errors are not
stored at all.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from settings import Settings

CACHE_CONTROL = b"cache-control"
ETAG = b"etag"
NOT_STORED = b"no-store"
API_PREFIX = "/api"


def resource_policy(max_age: int) -> bytes:
    """What a single resource (a GET with an ETag) may be cached for."""
    if max_age:
        return f"private, max-age={max_age}".encode()
    return b"private, no-cache"


class CacheControlMiddleware:
    """Adds the policy to each `/api` response that does not set its own."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.resource = resource_policy(settings.cache_max_age)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        readable = scope["method"] in ("GET", "HEAD")

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _value in headers}
                if CACHE_CONTROL not in names:
                    cacheable = readable and message["status"] in (200, 304) and ETAG in names
                    headers.append((CACHE_CONTROL, self.resource if cacheable else NOT_STORED))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_policy)
