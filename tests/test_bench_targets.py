"""The benchmark's peer, floor and ceiling answer as the service does, so their numbers compare."""

from datetime import datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from bench import ceiling, floor, peer
from settings import Settings
from tests.conftest import TEST_KEY
from tests.signed_client import SignedClient

OTHERS = ("peer", "floor", "ceiling")
READS = ["/api/heroes/{id}", "/api/heroes?limit=2", "/api/heroes?limit=2&team_id={team}"]


def _instants(body: Any) -> Any:
    """The body with each timestamp as the instant it names: plain Connexion writes `+00:00`
    where the service writes `Z`, and both are RFC 3339."""
    if isinstance(body, list):
        return [_instants(item) for item in body]
    if isinstance(body, dict):
        return {
            key: datetime.fromisoformat(value) if key.endswith("_at") else _instants(value)
            for key, value in body.items()
        }
    return body


@pytest.fixture
def targets(
    pg_client: SignedClient, backend_settings: dict[str, Settings], monkeypatch: pytest.MonkeyPatch
) -> dict[str, SignedClient]:
    dsn = backend_settings["postgresql"].database_url.set(drivername="postgresql")
    monkeypatch.setenv("BENCH_CEILING_DSN", dsn.render_as_string(hide_password=False))
    monkeypatch.setenv("APP_SECRET_KEY", TEST_KEY)
    monkeypatch.setenv("APP_TIMESTAMP_SIGNING_THRESHOLD", "120000")
    return {
        "service": pg_client,
        "peer": SignedClient(TestClient(peer.create_app()), TEST_KEY),
        "floor": SignedClient(TestClient(floor.create_app()), TEST_KEY),
        "ceiling": SignedClient(TestClient(ceiling.create_app()), TEST_KEY),
    }


def test_the_peer_the_floor_and_the_ceiling_read_what_the_service_reads(
    targets: dict[str, SignedClient],
) -> None:
    service = targets["service"]
    team = service.post("/api/teams", json={"name": "Bench", "headquarters": "Lab"}).json()
    for n in range(3):
        service.post(
            "/api/heroes", json={"name": f"H{n}", "secret_name": "S", "team_id": team["id"]}
        )
    paths = [path.format(id=2, team=team["id"]) for path in READS]
    with targets["peer"].raw, targets["floor"].raw, targets["ceiling"].raw:
        for path in paths:
            expected = service.get(path)
            assert expected.status_code == 200
            for name in OTHERS:
                answer = targets[name].get(path)
                assert (name, answer.status_code, _instants(answer.json())) == (
                    name,
                    200,
                    _instants(expected.json()),
                )


def test_the_peer_the_floor_and_the_ceiling_create_and_refuse_a_replayed_signature(
    targets: dict[str, SignedClient],
) -> None:
    with targets["peer"].raw, targets["floor"].raw, targets["ceiling"].raw:
        for name in OTHERS:
            client = targets[name]
            hero = {"name": f"Made by {name}", "secret_name": "S"}
            stale = client.post("/api/heroes", json=hero, timestamp=1_700_000_000_000)
            assert (name, stale.status_code) == (name, 401)
            created = client.post("/api/heroes", json=hero)
            assert (name, created.status_code) == (name, 201)
            assert created.json()["name"] == hero["name"]
            replayed = client.raw.post(
                "/api/heroes", content=created.request.content, headers=created.request.headers
            )
            assert (name, replayed.status_code) == (name, 401)
