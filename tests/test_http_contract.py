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

    def test_spec_is_served_as_written_with_only_servers_adapted(
        self, client: SignedClient
    ) -> None:
        as_json = client.raw.get("/openapi.json")
        as_yaml = client.raw.get("/openapi.yaml")

        served = SPEC | {"servers": [{"url": ""}]}
        assert as_json.status_code == 200
        assert as_json.headers["content-type"] == "application/json"
        assert as_json.json() == served
        assert as_yaml.status_code == 200
        assert as_yaml.headers["content-type"] == "text/yaml; charset=utf-8"
        assert yaml.safe_load(as_yaml.text) == served
        parameters = as_json.json()["paths"]["/api/heroes"]["get"]["parameters"]
        assert parameters[0] == {"$ref": "#/components/parameters/Limit"}

    @pytest.mark.parametrize("path", ["/openapi.json", "/openapi.yaml"])
    def test_a_spec_document_revalidates_with_its_etag_for_a_304(
        self, client: SignedClient, path: str
    ) -> None:
        first = client.raw.get(path)

        again = client.raw.get(path, headers={"If-None-Match": first.headers["etag"]})
        head = client.raw.head(path)

        assert first.headers["cache-control"] == "no-cache"
        assert again.status_code == 304
        assert again.headers["etag"] == first.headers["etag"]
        assert again.content == b""
        assert head.status_code == 200
        assert head.headers["etag"] == first.headers["etag"]

    def test_a_spec_document_takes_no_other_method(self, client: SignedClient) -> None:
        response = client.raw.post("/openapi.json", content=b"{}")

        assert_problem(response, 405, "POST is not supported on /openapi.json")
        assert response.headers["allow"] == "GET, HEAD"

    def test_behind_a_path_prefix_the_served_servers_name_it(
        self, backend_settings: dict[str, Settings]
    ) -> None:
        with TestClient(create_app(backend_settings["sqlite"]), root_path="/backoffice") as proxied:
            served = proxied.get("/openapi.json").json()

        assert served["servers"] == [{"url": "/backoffice"}]


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

    def test_other_origins_are_refused_with_a_problem_naming_the_origin(
        self, cors_client: TestClient
    ) -> None:
        response = cors_client.options(
            "/api/heroes",
            headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "GET"},
        )

        assert "access-control-allow-origin" not in response.headers
        assert_problem(
            response,
            400,
            "the origin http://evil.test may not call this API: APP_CORS_ORIGINS does not list it",
            "Origin",
        )

    def test_a_preflight_asking_for_an_unknown_header_is_refused_naming_it(
        self, cors_client: TestClient
    ) -> None:
        response = cors_client.options(
            "/api/heroes",
            headers={
                "Origin": FRONTEND,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "x-signature, x-api-key",
            },
        )

        assert_problem(
            response,
            400,
            "the header x-api-key is not allowed from a browser",
            "Access-Control-Request-Headers",
        )

    def test_a_preflight_carrying_trace_context_is_allowed(self, cors_client: TestClient) -> None:
        """OpenTelemetry's browser instrumentation adds traceparent (and tracestate) to fetch."""
        response = cors_client.options(
            "/api/heroes/1",
            headers={
                "Origin": FRONTEND,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "signature,signature-input,traceparent",
            },
        )

        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == FRONTEND

    def test_responses_expose_allow_and_send_no_credentials_by_default(
        self, cors_client: TestClient
    ) -> None:
        response = cors_client.request("PUT", "/api/heroes", headers={"Origin": FRONTEND})

        exposed = response.headers["access-control-expose-headers"].lower()
        assert "allow" in {name.strip() for name in exposed.split(",")}
        assert "access-control-allow-credentials" not in response.headers

    def test_an_origin_written_with_a_trailing_slash_or_in_capitals_still_matches(
        self, backend_settings: dict[str, Settings]
    ) -> None:
        settings = backend_settings["postgresql"].model_copy(
            update={
                "cors_origins": Settings.model_validate(
                    {"debug": True, "cors_origins": "HTTP://Frontend.test:80/"}
                ).cors_origins
            }
        )
        with TestClient(create_app(settings)) as client:
            response = client.get("/api/heroes", headers={"Origin": FRONTEND})

        assert response.headers["access-control-allow-origin"] == FRONTEND

    def test_credentials_are_allowed_only_when_opted_in(
        self, backend_settings: dict[str, Settings]
    ) -> None:
        settings = backend_settings["postgresql"].model_copy(
            update={"cors_origins": [FRONTEND], "cors_allow_credentials": True}
        )
        with TestClient(create_app(settings)) as client:
            preflight = client.options(
                "/api/heroes",
                headers={"Origin": FRONTEND, "Access-Control-Request-Method": "POST"},
            )
            response = client.get("/api/heroes", headers={"Origin": FRONTEND})

        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert response.headers["access-control-allow-credentials"] == "true"
        assert response.headers["access-control-allow-origin"] == FRONTEND
