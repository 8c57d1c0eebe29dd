"""Swagger UI at /docs: the page, its Swagger UI package, and the signing script it serves.

The script is taken from the running app (exactly what a browser gets) and run by Node, which
has the same WebCrypto and fetch: it must reproduce the shared vectors, never put the key in a
header, sign only its own origin's /api, and get its requests accepted by a live server.
tests/test_swagger_ui_browser.py runs the same script in Chromium, through the page.
"""

import json
import re
import shutil
import subprocess
from email.utils import formatdate
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from pydantic import SecretStr
from starlette.testclient import TestClient
from swagger_ui_bundle import swagger_ui_path

import signing
from contract.docs_page import SWAGGER_UI_DIR
from settings import DEVELOPMENT_SECRET_KEY, ROOT, Settings
from tests.conftest import TEST_KEY
from tests.signature_support import running_app

DRIVER = Path(__file__).with_name("swagger_ui_driver.js")
NODE = shutil.which("node")
VECTORS = json.loads((ROOT / "signing-vectors.json").read_text(encoding="utf-8"))
KEY: str = VECTORS["key"]
V1 = [v for v in VECTORS["vectors"] if v["version"] == 1]
V2 = [v for v in VECTORS["vectors"] if v["version"] == 2]
ORIGIN = "http://127.0.0.1:8000"
NOW = 1_764_158_400_000
SIGNING_HEADER_NAMES = {"signature", "signature-input", "content-digest", "x-signature"}


@pytest.fixture(scope="module")
def docs(app_clients: dict[str, TestClient]) -> TestClient:
    return app_clients["postgresql"]


@pytest.fixture(scope="module")
def served_script(docs: TestClient, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The signing script as /docs serves it, saved for Node to load."""
    page = docs.get("/docs/")
    assert page.status_code == 200
    sources = re.findall(r'<script src="\./([^"]+)"', page.text)
    assert sources == ["dist/swagger-ui-bundle.js", "request-signing.js"]
    response = docs.get("/docs/request-signing.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    path = tmp_path_factory.mktemp("docs") / "request-signing.js"
    path.write_bytes(response.content)
    return path


def run_node(script: Path, cases: dict[str, Any]) -> dict[str, Any]:
    assert NODE is not None, "Node.js is required: apt-get install nodejs (.ci/run does)"
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


def page_for(settings: Settings) -> str:
    with running_app(settings) as client:
        response = client.get("/docs/")
        assert response.status_code == 200
        return response.text


class TestThePage:
    def test_it_serves_swagger_ui_from_the_installed_package_not_a_copy(
        self, docs: TestClient
    ) -> None:
        installed = Path(str(swagger_ui_path))
        for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
            assert docs.get(f"/docs/dist/{name}").content == (installed / name).read_bytes()
            assert not (SWAGGER_UI_DIR / name).exists(), f"{name} is vendored again"
        assert re.fullmatch(r"swagger-ui-5\.\d+\.\d+", installed.name)

    def test_it_asks_for_the_key_once_as_a_password_kept_in_memory_unless_asked(
        self, docs: TestClient
    ) -> None:
        page = docs.get("/docs/").text

        assert len(re.findall(r'type="password"', page)) == 1
        assert re.search(r'<input class="signing__key" type="password" id="signing-key"', page)
        assert re.search(r'<input type="checkbox" id="signing-remember">', page)
        assert "requestSigning.keyPanel(document, window.sessionStorage)" in page
        assert "plugins: [requestSigning.swaggerUIPlugin()]" in page
        assert 'url: "/openapi.json"' in page

    def test_in_production_it_never_shows_the_development_key_and_starts_with_version_1(
        self, docs: TestClient
    ) -> None:
        page = docs.get("/docs/").text

        assert DEVELOPMENT_SECRET_KEY not in page
        assert 'id="signing-development"' not in page
        assert '<option value="1" selected>' in page

    def test_it_is_laid_out_for_the_screen_it_is_on(self, docs: TestClient) -> None:
        page = docs.get("/docs/").text

        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page

    def test_in_development_without_a_key_it_fills_in_the_public_development_key(
        self, tmp_path: Path
    ) -> None:
        page = page_for(Settings(debug=True, sqlite_path=tmp_path / "dev.db"))

        assert f'value="{DEVELOPMENT_SECRET_KEY}"' in page
        assert 'id="signing-development"' in page

    def test_in_development_with_a_key_of_its_own_it_shows_no_key(self, tmp_path: Path) -> None:
        settings = Settings(
            debug=True, secret_key=SecretStr(TEST_KEY), sqlite_path=tmp_path / "d.db"
        )
        page = page_for(settings)

        assert DEVELOPMENT_SECRET_KEY not in page
        assert TEST_KEY not in page

    def test_it_starts_with_the_oldest_version_the_server_accepts(self, tmp_path: Path) -> None:
        settings = Settings(debug=True, signature_min_version=2, sqlite_path=tmp_path / "v2.db")
        assert '<option value="2" selected>' in page_for(settings)


class TestTryItOutExamples:
    """Swagger UI pre-fills a parameter's example: only required ones may have one."""

    @staticmethod
    def parameters() -> list[dict[str, Any]]:
        spec = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
        named = spec["components"]["parameters"]
        found: list[dict[str, Any]] = []
        for path_item in spec["paths"].values():
            operations = [op for key, op in path_item.items() if key != "parameters"]
            for parameter in path_item.get("parameters", []) + [
                p for op in operations if isinstance(op, dict) for p in op.get("parameters", [])
            ]:
                ref = parameter.get("$ref")
                found.append(named[ref.rsplit("/", 1)[1]] if ref else parameter)
        return found

    def test_every_required_parameter_has_an_example_and_no_optional_one_does(self) -> None:
        for parameter in self.parameters():
            has_example = "example" in parameter or "examples" in parameter
            assert has_example == bool(parameter.get("required")), parameter["name"]

    def test_the_path_ids_exist_in_the_demo_data(self) -> None:
        from persistence.demo import HEROES, TEAMS

        examples = {p["name"]: p["example"] for p in self.parameters() if p["in"] == "path"}
        assert 1 <= examples["hero_id"] <= len(HEROES)
        assert 1 <= examples["team_id"] <= len(TEAMS)


class TestTheScript:
    def test_it_reproduces_every_vector_of_both_versions(self, served_script: Path) -> None:
        results = run_node(served_script, {"vectors": {"key": KEY, "vectors": VECTORS["vectors"]}})

        assert results["vectors"] == expected_vector_results()

    def test_the_interceptor_signs_each_version_1_vector_request(self, served_script: Path) -> None:
        cases = [
            {
                "key": KEY,
                "version": 1,
                "now": v["x_timestamp"],
                "origin": ORIGIN,
                "request": {
                    "url": ORIGIN + v["path_and_query"],
                    "method": v["method"],
                    **({"body": v["body"]} if v["body"] else {}),
                },
            }
            for v in V1
        ]

        intercepted = run_node(served_script, {"intercept": cases})["intercepted"]

        assert [r["headers"] for r in intercepted] == [
            {"x-timestamp": v["x_timestamp"], "x-signature": v["x_signature"]} for v in V1
        ]

    def test_the_interceptor_signs_each_version_2_vector_request(self, served_script: Path) -> None:
        cases = [
            {
                "key": KEY,
                "version": 2,
                # Any millisecond of the vector's second: `created` is in whole seconds.
                "now": v["created"] * 1000 + 999,
                "origin": ORIGIN,
                "request": {
                    "url": f"{ORIGIN}{v['path']}" + (f"?{v['query']}" if v["query"] else ""),
                    "method": v["method"].lower() if v["method"] == "PATCH" else v["method"],
                    "headers": v["headers"],
                    **({"body": v["body"]} if v["body"] else {}),
                },
            }
            for v in V2
        ]

        intercepted = run_node(served_script, {"intercept": cases})["intercepted"]

        for vector, result in zip(V2, intercepted, strict=True):
            expected = {k: v for k, v in vector["expect_headers"].items() if v is not None}
            assert result["headers"] == {**vector["headers"], **expected}, vector["label"]
            assert KEY not in json.dumps(result)

    def test_a_new_idempotency_key_when_asked_is_signed_with_the_create(
        self, served_script: Path
    ) -> None:
        body = '{"name":"Fresh"}'
        request = {"url": f"{ORIGIN}/api/teams", "method": "POST", "body": body}
        cases = [
            {"key": KEY, "version": 2, "now": NOW, "origin": ORIGIN, "request": request}
            | {"new_idempotency_keys": asked}
            for asked in (True, False)
        ]

        asked, not_asked = run_node(served_script, {"intercept": cases})["intercepted"]

        assert UUID(asked["headers"]["Idempotency-Key"]).version == 4
        assert '"idempotency-key" "content-digest")' in asked["headers"]["Signature-Input"]
        assert "Idempotency-Key" not in not_asked["headers"]

    def test_without_a_key_the_request_goes_unsigned_and_without_signing_headers(
        self, served_script: Path
    ) -> None:
        stale = {"x-timestamp": "1", "Signature": "sig1=:AA==:", "x-signature": "typed"}
        case = {
            "key": "",
            "version": 2,
            "origin": ORIGIN,
            "request": {"url": f"{ORIGIN}/api/teams", "method": "GET", "headers": stale},
        }

        [result] = run_node(served_script, {"intercept": [case]})["intercepted"]

        assert result == {"url": f"{ORIGIN}/api/teams", "method": "GET", "headers": {}}

    @pytest.mark.parametrize(
        "url",
        [f"{ORIGIN}/openapi.json", "http://127.0.0.1:9999/api/teams", "https://api.example/api"],
    )
    def test_it_signs_nothing_but_its_own_origins_api(self, served_script: Path, url: str) -> None:
        request = {"url": url, "method": "GET"}
        cases = [
            {"key": KEY, "version": version, "now": NOW, "origin": ORIGIN, "request": request}
            for version in (1, 2)
        ]

        intercepted = run_node(served_script, {"intercept": cases})["intercepted"]

        assert [r["headers"] for r in intercepted] == [{}, {}]

    def test_a_body_that_is_not_text_is_refused_rather_than_signed_wrongly(
        self, served_script: Path
    ) -> None:
        request = {"url": f"{ORIGIN}/api/teams", "method": "POST", "body": {"name": "object"}}
        case = {"key": KEY, "version": 1, "now": NOW, "origin": ORIGIN, "request": request}

        [result] = run_node(served_script, {"intercept": [case]})["intercepted"]

        assert result == {"error": "only a text (JSON) body can be signed"}

    def test_version_1_requests_it_signs_are_accepted_by_a_live_server(
        self, served_script: Path, live_server: str
    ) -> None:
        # Version 2 is checked against the vectors only until the server verifies the
        # RFC 9421 profile (the signing issue); version 1 is what the server accepts today.
        def case(method: str, path: str, body: str | None = None) -> dict[str, Any]:
            headers = {"content-type": "application/json"} if body else {}
            request = {"url": live_server + path, "method": method, "headers": headers}
            if body is not None:
                request["body"] = body
            return {"key": TEST_KEY, "version": 1, "origin": live_server, "request": request}

        created = json.dumps(
            {"name": "Équipe Swagger", "headquarters": "Zürich"}, ensure_ascii=False
        )
        cases = [
            case("POST", "/api/teams", created),
            case("GET", "/api/heroes?name=Équipe Zürich&limit=5"),
            case("POST", "/api/heroes", '{"name": "Spaced", "secret_name": "JSON"}'),
        ]

        sent = run_node(served_script, {"send": cases})["sent"]

        assert [result["status"] for result in sent] == [201, 200, 201], sent
        assert json.loads(sent[0]["body"])["name"] == "Équipe Swagger"
        for result in sent:
            assert TEST_KEY not in json.dumps(result["sent"])
            assert not SIGNING_HEADER_NAMES - {"x-signature"} & set(result["sent"])


class TestRefusalHints:
    """A 401 the page shows says its cause, from the problem the server really sends."""

    @staticmethod
    def refused(docs: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
        response = docs.request(method, path, headers=headers)
        assert response.status_code == 401, response.text
        return response

    def test_each_cause_of_a_401_gets_its_own_sentence(
        self, docs: TestClient, served_script: Path
    ) -> None:
        now = signing.now_ms()
        v2 = signing.signed_headers("GET", "/api/heroes", b"", TEST_KEY, 2, now)
        replayed = signing.signed_headers("DELETE", "/api/heroes/999999", b"", TEST_KEY, 1, now)
        assert docs.delete("/api/heroes/999999", headers=replayed).status_code == 404
        stale = now - 600_000
        refusals = [
            self.refused(docs, "GET", "/api/heroes", {}),
            self.refused(
                docs, "GET", "/api/heroes", signing.signed_headers("GET", "/", b"", KEY, 1)
            ),
            self.refused(
                docs,
                "GET",
                "/api/heroes",
                signing.signed_headers("GET", "/api/heroes", b"", KEY, 2),
            ),
            self.refused(docs, "DELETE", "/api/heroes/999999", replayed),
            self.refused(
                docs,
                "GET",
                "/api/heroes",
                signing.signed_headers("GET", "/", b"", TEST_KEY, 1, stale),
            ),
            self.refused(docs, "GET", "/api/heroes", v2 | {"If-Match": '"1"'}),
        ]
        cases = [
            {"text": r.text, "date": r.headers.get("date", ""), "now": now + 600_000}
            for r in refusals
        ]
        # A request signed 10 minutes ago, read by a page whose clock is the server's: the
        # server's Date header (uvicorn's; this in-process app sends none) says how far apart.
        cases[4] |= {"date": formatdate(now / 1000, usegmt=True), "now": now + 600_000}
        no_date = cases[4] | {"date": ""}

        hints = run_node(served_script, {"hints": [*cases, no_date]})["hints"]

        where = "Signing key at the top of the page"
        assert hints[:4] == [
            f"No signing key is set: type this server's APP_SECRET_KEY into {where}.",
            "Wrong key: the signature does not match, so the key is not this server's (or the "
            f"request changed after signing). Check {where}.",
            f"Wrong key: this server holds no key with the signature's keyid. Check {where}.",
            "Replay: this very signature was already used, and the server accepts each one "
            "once. Execute again: the page signs afresh.",
        ]
        assert re.fullmatch(
            r"Clock skew: this computer's clock is 60[01] s ahead of the server's, outside "
            r"the window the server accepts\. Set the clock right, then Execute again\.",
            hints[4],
        )
        assert hints[6].startswith("Clock skew: this computer's clock differs from the server's,")
        assert hints[5] == (
            "Uncovered header: the request carries if-match, which the signature does not cover: "
            "something added it after the page signed (the browser or a proxy)."
        )

    def test_a_401_without_a_problem_body_still_says_it_was_refused(
        self, served_script: Path
    ) -> None:
        hints = run_node(served_script, {"hints": [{"text": "Unauthorized", "now": 0}]})["hints"]

        assert hints == ["The API refused the signature (401): no detail given."]


def expected_vector_results() -> list[dict[str, Any]]:
    """What each vector says the signer must produce, in the shape the runner reports."""
    return [
        {"signed_string": v["signed_string"], "x_signature": v["x_signature"]}
        if v["version"] == 1
        else {
            "signature_base": v["signature_base"],
            "headers": {k: h for k, h in v["expect_headers"].items() if h is not None},
        }
        for v in VECTORS["vectors"]
    ]
