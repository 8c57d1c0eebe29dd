"""The request deadline in the app: a request the database holds past APP_REQUEST_TIMEOUT_SECONDS
gets the service's 503, with the headers every answer of the API carries. (What it does to the
statement and the connection is shown against a real server in tests/test_database_outage.py.)"""

import json
import socket
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from app import create_app
from observability import logs
from settings import Settings
from tests.conftest import TEST_KEY, make_settings
from tests.problem_assertions import assert_problem
from tests.signed_client import SignedClient

ORIGIN = "https://backoffice.example.com"


@pytest.fixture
def silent_database() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a frozen database."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_a_request_held_past_the_deadline_gets_503_with_the_cache_policy_and_cors(
    silent_database: int,
    backend_settings: dict[str, Settings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(
        f"postgresql://postgres@127.0.0.1:{silent_database}/frozen",
        request_timeout_seconds=1,
        cors_origins=ORIGIN,
    )
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as app:
            capsys.readouterr()
            response = SignedClient(app, TEST_KEY).get(
                "/api/heroes", headers={"Origin": ORIGIN, "X-Request-ID": "held-1"}
            )
            lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    finally:
        logs.configure_logging(backend_settings["postgresql"])

    assert_problem(
        response, 503, "the request did not complete within 1 s and was stopped; retry later"
    )
    assert response.headers["retry-after"] == "1"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.json()["request_id"] == "held-1"
    stopped = [line for line in lines if line["logger"] == "middleware.deadline"]
    access = [line for line in lines if line["logger"] == "access"]
    assert [(line["event"], line["operation"]) for line in stopped] == [
        (
            "stopped a request at the 1 s deadline (APP_REQUEST_TIMEOUT_SECONDS), waiting for "
            "the service",
            "listHeroes",
        )
    ]
    assert [(line["operation"], line["status"]) for line in access] == [("listHeroes", 503)]
