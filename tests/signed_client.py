"""A test client that signs each request exactly as the frontend does."""

from typing import Any

import httpx
import orjson
from starlette.testclient import TestClient

import signing


class SignedClient:
    def __init__(self, client: TestClient, key: str, version: signing.Version = 1) -> None:
        self.raw = client
        self.key = key
        self.version: signing.Version = version

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        version: signing.Version | None = None,
        timestamp: int | None = None,
    ) -> httpx.Response:
        body = content if content is not None else (b"" if json is None else orjson.dumps(json))
        all_headers = {"Content-Type": "application/json"} if json is not None else {}
        all_headers |= headers or {}
        target = str(httpx.URL(path, params=params)) if params else path
        all_headers |= signing.signed_headers(
            method,
            target,
            body,
            self.key,
            version if version is not None else self.version,
            timestamp,
            headers=all_headers,
        )
        return self.raw.request(method, target, content=body, headers=all_headers)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)
