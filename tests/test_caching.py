"""Every /api response says how it may be cached; no signed response is ever `public`."""

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from app import create_app
from settings import Settings
from tests.conftest import TEST_KEY, truncate_all
from tests.signed_client import SignedClient

TEAM = {"name": "Cached", "headquarters": "Edge"}


def cache_control(response: object) -> str:
    return response.headers["cache-control"]  # type: ignore[attr-defined]


def test_a_single_resource_may_be_kept_privately_and_is_revalidated(client: SignedClient) -> None:
    created = client.post("/api/teams", json=TEAM)

    fetched = client.get(created.headers["location"])
    not_modified = client.get(
        created.headers["location"], headers={"If-None-Match": fetched.headers["etag"]}
    )

    assert cache_control(fetched) == "private, no-cache"
    assert not_modified.status_code == 304
    assert cache_control(not_modified) == "private, no-cache"


def test_lists_writes_and_deletes_are_not_stored(client: SignedClient) -> None:
    created = client.post("/api/teams", json=TEAM)
    listed = client.get("/api/teams")
    patched = client.patch(created.headers["location"], json={"headquarters": "Core"})
    deleted = client.delete(created.headers["location"])

    assert [cache_control(r) for r in (created, listed, patched, deleted)] == ["no-store"] * 4


def test_errors_are_not_stored(client: SignedClient) -> None:
    missing = client.get("/api/teams/987654")
    unsigned = client.raw.get("/api/teams")
    invalid = client.post("/api/teams", json={"name": ""})

    assert [r.status_code for r in (missing, unsigned, invalid)] == [404, 401, 400]
    assert [cache_control(r) for r in (missing, unsigned, invalid)] == ["no-store"] * 3


def test_operations_endpoints_keep_their_own_headers(client: SignedClient) -> None:
    assert "cache-control" not in client.raw.get("/health/live").headers


@pytest.fixture
def max_age_client(backend_settings: dict[str, Settings]) -> Iterator[SignedClient]:
    settings = backend_settings["postgresql"].model_copy(update={"cache_max_age": 60})
    truncate_all(settings)
    with TestClient(create_app(settings), raise_server_exceptions=False) as raw:
        yield SignedClient(raw, TEST_KEY)


def test_a_max_age_lets_clients_reuse_a_resource_for_that_long(
    max_age_client: SignedClient,
) -> None:
    created = max_age_client.post("/api/teams", json=TEAM)

    fetched = max_age_client.get(created.headers["location"])
    listed = max_age_client.get("/api/teams")

    assert cache_control(fetched) == "private, max-age=60"
    assert cache_control(listed) == "no-store"


def test_the_setting_is_read_from_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_CACHE_MAX_AGE", "300")

    assert Settings(debug=True).cache_max_age == 300


def test_the_contract_declares_the_policy_on_every_api_response() -> None:
    from connexion.spec import Specification

    from app import SPEC

    paths = Specification.load(SPEC)["paths"]
    declared = {
        (path, method, status): response.get("headers", {}).get("Cache-Control", {})
        for path, operations in paths.items()
        if path.startswith("/api")
        for method, operation in operations.items()
        if isinstance(operation, dict) and "responses" in operation
        for status, response in operation["responses"].items()
    }

    assert declared
    missing = [where for where, header in declared.items() if not header]
    assert missing == []
    resources = sorted(where for where, h in declared.items() if "private" in h["description"])
    assert resources == [
        ("/api/heroes/{hero_id}", "get", "200"),
        ("/api/heroes/{hero_id}", "get", "304"),
        ("/api/teams/{team_id}", "get", "200"),
        ("/api/teams/{team_id}", "get", "304"),
    ]
