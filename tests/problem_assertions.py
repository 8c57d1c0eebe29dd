"""Assertions on whole problem+json bodies (RFC 9457)."""

from http import HTTPStatus
from typing import Any

import httpx

from contract.problems import TYPES


def assert_problem(
    response: httpx.Response, status: int, detail: str, field: str | None = None
) -> None:
    """The response is exactly this problem; its request_id, if any, is the request's."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    request_id = body.pop("request_id", None)
    if request_id is not None:
        assert request_id == response.headers.get("x-request-id")
    expected: dict[str, Any] = {
        "type": TYPES[status],
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if field is not None:
        expected["field"] = field
    assert body == expected
