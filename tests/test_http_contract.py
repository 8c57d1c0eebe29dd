"""What every client relies on: docs, the served spec, routing errors, CORS, content types."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient

from app import create_app
from settings import Settings
from tests.problem_assertions import assert_problem
from tests.signed_client import SignedClient

FRONTEND = "http://frontend.test"
SPEC = yaml.safe_load((Path(__file__).parents[1] / "openapi.yaml").read_text())


@pytest.fixture(scope="module")
def cors_client(backend_settings: dict[str, Settings]) -> Iterator[TestClient]:
    settings = backend_settings["postgresql"].model_copy(update={"cors_origins": [FRONTEND]})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


class TestDocumentation:
    def test_swagger_ui_is_served_at_docs(self, client: SignedClient) -> None:
        response = client.raw.get("/docs")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "swagger-ui" in response.text.lower()
        assert "/openapi.json" in response.text

    def test_spec_is_served_as_json_and_yaml(self, client: SignedClient) -> None:
        as_json = client.raw.get("/openapi.json")
        as_yaml = client.raw.get("/openapi.yaml")

        assert as_json.status_code == 200
        assert as_yaml.status_code == 200
        assert as_json.json()["paths"].keys() == SPEC["paths"].keys()
        assert yaml.safe_load(as_yaml.text)["info"] == SPEC["info"]


class TestRouting:
    def test_unknown_api_path_gives_404_problem(self, client: SignedClient) -> None:
        assert_problem(client.get("/api/villains"), 404, "no resource at /api/villains")

    def test_unsupported_method_gives_405_problem(self, client: SignedClient) -> None:
        response = client.request("PUT", "/api/heroes", json={})

        assert_problem(response, 405, "PUT is not supported on /api/heroes")

    def test_success_responses_are_plain_json_although_errors_are_problem_json(
        self, client: SignedClient
    ) -> None:
        # Connexion issue 1956: with problem+json declared too, it cannot infer the type itself.
        response = client.get("/api/teams")

        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"


class TestCors:
    def test_preflight_from_the_frontend_needs_no_signature(self, cors_client: TestClient) -> None:
        response = cors_client.options(
            "/api/heroes",
            headers={
                "Origin": FRONTEND,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "x-signature,x-timestamp,if-match,content-type",
            },
        )

        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == FRONTEND
        assert "PATCH" in response.headers["access-control-allow-methods"]
        allowed = response.headers["access-control-allow-headers"].lower()
        assert {"x-signature", "x-timestamp", "if-match"} <= set(
            allowed.replace(" ", "").split(",")
        )

    def test_responses_expose_etag_and_location_to_the_frontend(
        self, cors_client: TestClient
    ) -> None:
        response = cors_client.get("/api/heroes", headers={"Origin": FRONTEND})

        assert response.headers["access-control-allow-origin"] == FRONTEND
        exposed = response.headers["access-control-expose-headers"].lower()
        assert {"etag", "location"} <= {name.strip() for name in exposed.split(",")}

    def test_other_origins_are_not_allowed(self, cors_client: TestClient) -> None:
        response = cors_client.options(
            "/api/heroes",
            headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "GET"},
        )

        assert "access-control-allow-origin" not in response.headers
