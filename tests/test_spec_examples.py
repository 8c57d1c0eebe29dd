"""The examples in `openapi.yaml` are true: valid against their schemas, and, for problems,
what the server answers when the problem is provoked.

Swagger UI shows the examples and client generators copy them into docstrings, so a reader takes
them as what the service does. A provoked problem may differ from its example only where the
example cannot know the value: the id of what was created (the example says 42, or 1), the
request's `request_id`, and the migrations head (it moves with every migration).
"""

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import yaml
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from sqlalchemy import URL
from starlette.testclient import TestClient

import signing
from app import SPEC, create_app
from middleware.idempotency import KeyInFlight
from persistence.health import migration_heads
from tests.conftest import TEST_KEY, fresh_postgres_database, make_settings
from tests.signed_client import SignedClient

SPEC_URI = "urn:backoffice:openapi"
DOCUMENT: dict[str, Any] = yaml.safe_load(SPEC.read_text())
REGISTRY: Registry[Any] = Registry().with_resource(
    SPEC_URI, Resource.from_contents(DOCUMENT, default_specification=DRAFT4)
)
SCHEMA_KEYS = {"type", "properties", "allOf", "oneOf", "anyOf", "items", "$ref"}


def escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def examples(node: Any, pointer: str = "") -> Iterator[tuple[str, str, Any]]:
    """(where, JSON pointer of the schema, example) for every example in the document."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from examples(item, f"{pointer}/{index}")
        return
    if not isinstance(node, dict):
        return
    if "schema" in node:  # a parameter, header or media type
        if "example" in node:
            yield pointer, f"{pointer}/schema", node["example"]
        for name, example in node.get("examples", {}).items():
            yield f"{pointer}/examples/{name}", f"{pointer}/schema", example["value"]
    elif "example" in node and SCHEMA_KEYS & node.keys():
        yield pointer, pointer, node["example"]
    for key, value in node.items():
        if key not in {"example", "examples"}:
            yield from examples(value, f"{pointer}/{escape(str(key))}")


EXAMPLES = list(examples(DOCUMENT))


@pytest.mark.parametrize(("where", "schema", "example"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_every_example_is_valid_against_its_schema(where: str, schema: str, example: Any) -> None:
    validator = OAS30Validator({"$ref": f"{SPEC_URI}#{schema}"}, registry=REGISTRY)

    errors = [error.message for error in validator.iter_errors(example)]

    assert errors == [], where


def test_the_examples_cover_every_named_schema_and_problem_response() -> None:
    where = {example[0] for example in EXAMPLES}
    components = DOCUMENT["components"]
    problems = [
        name
        for name, response in components["responses"].items()
        if "application/problem+json" in response.get("content", {})
    ]

    # The walker must find them all: 41 since optional filters lost their examples, so that
    # Swagger UI's Try it out starts with them empty (their descriptions give one instead).
    assert len(EXAMPLES) >= 41
    for name, schema in components["schemas"].items():
        assert f"/components/schemas/{name}" in where or "allOf" in schema, name
    for name in problems:
        content = f"/components/responses/{name}/content/application~1problem+json"
        assert any(place.startswith(content) for place in where), name


def problem_examples() -> dict[str, dict[str, Any]]:
    """Every problem example, by response name (and example name where there are several)."""
    found: dict[str, dict[str, Any]] = {}
    for name, response in DOCUMENT["components"]["responses"].items():
        media = response.get("content", {}).get("application/problem+json")
        if media is None:
            continue
        if "example" in media:
            found[name] = media["example"]
        for example_name, example in media.get("examples", {}).items():
            found[f"{name}.{example_name}"] = example["value"]
    return found


def team(client: SignedClient, name: str = "Preventers") -> dict[str, Any]:
    response = client.post("/api/teams", json={"name": name, "headquarters": "Sharp Tower"})
    assert response.status_code == 201, response.text
    return response.json()


def hero(client: SignedClient) -> dict[str, Any]:
    body = {"name": "Deadpond", "secret_name": "Dive Wilson"}
    response = client.post("/api/heroes", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def bad_request(client: SignedClient) -> tuple[httpx.Response, dict[str, str]]:
    return client.post("/api/teams", json={"headquarters": "Sharp Tower"}), {}


def unauthorized(client: SignedClient) -> tuple[httpx.Response, dict[str, str]]:
    stale = signing.now_ms() - 10 * 60 * 1000
    headers = signing.signed_headers("GET", "/api/heroes", b"", TEST_KEY, 1, timestamp=stale)
    return client.raw.get("/api/heroes", headers=headers), {}


def not_found(client: SignedClient) -> tuple[httpx.Response, dict[str, str]]:
    return client.get("/api/heroes/42"), {}


def conflict(client: SignedClient) -> tuple[httpx.Response, dict[str, str]]:
    team(client)
    other = team(client, "Z-Force")
    return client.patch(f"/api/teams/{other['id']}", json={"name": "Preventers"}), {}


def duplicate(client: SignedClient) -> tuple[httpx.Response, dict[str, str]]:
    team(client)
    return client.post("/api/teams", json={"name": "Preventers", "headquarters": "Sharp Tower"}), {}


def key_reused(client: SignedClient) -> tuple[httpx.Response, dict[str, str]]:
    key = {"Idempotency-Key": "8e03978e-40d5-43e8-bc93-6894a57f9324"}
    client.post("/api/teams", json={"name": "Preventers", "headquarters": "A"}, headers=key)
    body = {"name": "Preventers", "headquarters": "B"}
    return client.post("/api/teams", json=body, headers=key), {}


def precondition_failed(client: SignedClient) -> tuple[httpx.Response, dict[str, str]]:
    created = hero(client)
    path = f"/api/heroes/{created['id']}"
    for age in (1, 2, 3):
        client.patch(path, json={"age": age})
    return client.patch(path, json={"age": 4}, headers={"If-Match": '"1"'}), {
        "42": str(created["id"])
    }


def payload_too_large(client: SignedClient) -> tuple[httpx.Response, dict[str, str]]:
    body = b'{"name": "' + b"x" * 1_048_576 + b'"}'
    headers = {"Content-Type": "application/json"}
    return client.raw.post("/api/teams", content=body, headers=headers), {}


def unsupported_media_type(client: SignedClient) -> tuple[httpx.Response, dict[str, str]]:
    return client.post("/api/teams", content=b"name=x", headers={"Content-Type": "text/plain"}), {}


Provoke = Callable[[SignedClient], tuple[httpx.Response, dict[str, str]]]
PROVOKED: dict[str, Provoke] = {
    "BadRequest": bad_request,
    "Unauthorized": unauthorized,
    "NotFound": not_found,
    "Conflict": conflict,
    "CreateConflict.duplicate": duplicate,
    "IdempotencyKeyReused": key_reused,
    "PreconditionFailed": precondition_failed,
    "PayloadTooLarge": payload_too_large,
    "UnsupportedMediaType": unsupported_media_type,
}
# Provoked below, each with what it takes: a database that is not there or not migrated; and
# the problem of a request held in flight, which takes a database lock and a second thread
# (test_idempotency.py provokes it), compared here with the problem the middleware raises.
ELSEWHERE = {"CreateConflict.in_flight", "ServiceUnavailable", "NotReady"}


def answered(response: httpx.Response, example: dict[str, Any], values: dict[str, str]) -> None:
    """The response is the example, but for the values only the server can know."""
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body.pop("request_id") == response.headers["x-request-id"]
    expected = {name: value for name, value in example.items() if name != "request_id"}
    for placeholder, value in values.items():
        expected["detail"] = expected["detail"].replace(placeholder, value)
    assert body == expected


def test_every_problem_example_is_provoked_by_a_test() -> None:
    assert set(problem_examples()) == set(PROVOKED) | ELSEWHERE


@pytest.mark.parametrize("name", PROVOKED)
def test_the_server_answers_each_problem_as_its_example_says(
    name: str, client: SignedClient
) -> None:
    response, values = PROVOKED[name](client)

    answered(response, problem_examples()[name], values)


def test_an_unreachable_database_answers_as_the_service_unavailable_example() -> None:
    settings = make_settings("postgresql://postgres@127.0.0.1:1/nowhere")
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        response = SignedClient(http, TEST_KEY).get("/api/heroes")

    answered(response, problem_examples()["ServiceUnavailable"], {})


def test_an_unmigrated_database_answers_as_the_not_ready_example(postgres_server: URL) -> None:
    for url in fresh_postgres_database(postgres_server):
        with TestClient(create_app(make_settings(url)), raise_server_exceptions=False) as http:
            response = http.get("/health/ready")

        answered(
            response, problem_examples()["NotReady"], {"e8747d36daf4": ", ".join(migration_heads())}
        )


def test_the_in_flight_example_is_the_problem_the_idempotency_middleware_raises() -> None:
    raised = KeyInFlight()

    assert problem_examples()["CreateConflict.in_flight"] == {
        "type": raised.type,
        "title": raised.title,
        "status": raised.status,
        "detail": raised.detail,
        "field": raised.field,
    }
