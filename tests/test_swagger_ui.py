"""Swagger UI at /docs signs "Try it out" requests in the browser, with the key kept there.

The script is taken from the running app (exactly what a browser gets) and run by Node, which
has the same WebCrypto and fetch: it must reproduce the shared vectors, never put the key in a
header, and get its requests accepted by a live server.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import swagger_ui_bundle
from starlette.testclient import TestClient

from app import SWAGGER_UI_DIR
from tests.conftest import TEST_KEY
from tests.signature_support import VECTOR_KEY, vector_file, vectors

DRIVER = Path(__file__).with_name("swagger_ui_driver.js")
NODE = shutil.which("node")
SWAGGER_UI_FILES = [
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "swagger-ui.css",
    "favicon-16x16.png",
    "favicon-32x32.png",
]
NOW = 1_764_158_400_000
ORIGIN = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def docs(app_clients: dict[str, TestClient]) -> TestClient:
    return app_clients["postgresql"]


@pytest.fixture(scope="module")
def served_script(docs: TestClient, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The signing script as /docs serves it, saved for Node to load."""
    page = docs.get("/docs/")
    assert page.status_code == 200
    sources = re.findall(r'<script src="\./([^"]+)"', page.text)
    assert "request-signing.js" in sources
    response = docs.get("/docs/request-signing.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    path = tmp_path_factory.mktemp("docs") / "request-signing.js"
    path.write_bytes(response.content)
    return path


def run_node(script: Path, cases: dict[str, Any]) -> dict[str, Any]:
    assert NODE is not None, "Node.js is required (CI installs it)"
    run = subprocess.run(
        [NODE, str(DRIVER), str(script)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_the_docs_page_wires_the_interceptor_and_asks_for_the_key_as_a_password(
    docs: TestClient,
) -> None:
    page = docs.get("/docs/").text

    assert "requestInterceptor: requestSigning.makeRequestInterceptor({" in page
    assert "settings: requestSigning.panelSettings(document, window.sessionStorage)" in page
    assert re.search(r'<input type="password" id="signing-key"', page)
    assert re.search(r'<select id="signing-version">\s*<option value="2">', page)
    assert 'url: "/openapi.json"' in page


def test_the_swagger_ui_files_are_the_installed_bundles_own(docs: TestClient) -> None:
    """Our template dir serves Connexion's Swagger UI files; an upgrade must refresh them."""
    installed = Path(swagger_ui_bundle.swagger_ui_path)
    for name in SWAGGER_UI_FILES:
        vendored = (SWAGGER_UI_DIR / name).read_bytes()
        assert vendored == (installed / name).read_bytes(), name
        assert docs.get(f"/docs/{name}").content == vendored


def test_the_served_script_reproduces_every_vector(served_script: Path) -> None:
    shared = vector_file()

    results = run_node(served_script, {"key": shared["key"], "vectors": shared["vectors"]})

    assert results["strings"] == [v.signed_string for v in vectors()]
    assert results["signatures"] == [v.x_signature for v in vectors()]


def test_the_interceptor_signs_each_vector_request_with_the_panels_key(
    served_script: Path,
) -> None:
    cases = [
        {
            "key": VECTOR_KEY,
            "version": v.version,
            "now": v.x_timestamp,
            "request": {
                "url": f"{ORIGIN}{v.path_and_query}",
                "method": v.method.lower() if v.method == "PATCH" else v.method,
                **({"body": v.body} if v.body else {}),
            },
        }
        for v in vectors()
    ]

    intercepted = run_node(served_script, {"intercept": cases})["intercepted"]

    for vector, result in zip(vectors(), intercepted, strict=True):
        expected = {"x-timestamp": vector.x_timestamp, "x-signature": vector.x_signature}
        if vector.version == 2:
            expected["x-signature-version"] = "2"
        assert result["headers"] == expected, vector.label


def test_a_key_entered_in_the_authorize_dialog_signs_and_is_never_sent(
    served_script: Path,
) -> None:
    vector = next(v for v in vectors() if v.version == 2 and v.body)
    authorized = {"x-signature": VECTOR_KEY, "X-Timestamp": "typed by mistake"}
    case = {
        "key": "",
        "version": 2,
        "now": vector.x_timestamp,
        "request": {
            "url": f"{ORIGIN}{vector.path_and_query}",
            "method": vector.method,
            "body": vector.body,
            "headers": {"content-type": "application/json", **authorized},
        },
    }

    [result] = run_node(served_script, {"intercept": [case]})["intercepted"]

    assert result["headers"] == {
        "content-type": "application/json",
        "x-timestamp": vector.x_timestamp,
        "x-signature": vector.x_signature,
        "x-signature-version": "2",
    }
    assert VECTOR_KEY not in json.dumps(result)


def test_without_any_key_the_request_goes_unsigned_and_without_signing_headers(
    served_script: Path,
) -> None:
    case = {
        "key": "",
        "version": 2,
        "now": NOW,
        "request": {"url": f"{ORIGIN}/api/teams", "method": "GET", "headers": {"x-timestamp": "1"}},
    }

    [result] = run_node(served_script, {"intercept": [case]})["intercepted"]

    assert result == {"url": f"{ORIGIN}/api/teams", "method": "GET", "headers": {}}


def test_requests_outside_api_are_left_alone(served_script: Path) -> None:
    case = {
        "key": VECTOR_KEY,
        "version": 2,
        "now": NOW,
        "request": {"url": f"{ORIGIN}/openapi.json", "method": "GET"},
    }

    [result] = run_node(served_script, {"intercept": [case]})["intercepted"]

    assert result["headers"] == {}


def test_a_body_that_is_not_text_is_refused_rather_than_signed_wrongly(
    served_script: Path,
) -> None:
    case = {
        "key": VECTOR_KEY,
        "version": 1,
        "now": NOW,
        "request": {"url": f"{ORIGIN}/api/teams", "method": "POST", "body": {"name": "object"}},
    }

    [result] = run_node(served_script, {"intercept": [case]})["intercepted"]

    assert result == {"error": "only a text (JSON) body can be signed"}


def test_requests_signed_by_the_interceptor_are_accepted_by_a_live_server(
    served_script: Path, live_server: str
) -> None:
    def case(method: str, path: str, version: int, body: str | None = None) -> dict[str, Any]:
        headers = {"content-type": "application/json"} if body else {}
        request = {"url": live_server + path, "method": method, "headers": headers}
        if body is not None:
            request["body"] = body
        return {"key": TEST_KEY, "version": version, "request": request}

    created = json.dumps({"name": "Équipe Swagger", "headquarters": "Zürich"}, ensure_ascii=False)
    cases = [
        case("POST", "/api/teams", 2, created),
        case("GET", "/api/heroes?name=Équipe Zürich&limit=5", 2),
        case("GET", "/api/teams?limit=50", 1),
        case("POST", "/api/heroes", 1, '{"name": "Spaced", "secret_name": "JSON"}'),
    ]

    sent = run_node(served_script, {"send": cases})["sent"]

    assert [result["status"] for result in sent] == [201, 200, 200, 201], sent
    assert json.loads(sent[0]["body"])["name"] == "Équipe Swagger"
    for result in sent:
        assert TEST_KEY not in json.dumps(result["sent"])
