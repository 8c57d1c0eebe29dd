"""A person on /docs, in Debian's Chromium, against a live server with the demo data.

One browser session walks the page as a person does (type the key once, Try it out, Execute
without editing) and reports each step; the tests below judge the report. It never skips: a
machine without Chromium or Node fails here with the command that installs them.
"""

import json
from typing import Any
from uuid import UUID

import pytest

from settings import ROOT
from tests.conftest import TEST_KEY
from tests.swagger_ui_browser import demo_server, run_browser
from tests.test_swagger_ui import VECTORS, expected_vector_results

FAILURE_SCREENSHOT = ROOT / "var" / "swagger-ui-browser-failure.png"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    environment = {"APP_SECRET_KEY": TEST_KEY, "APP_DEBUG": "false"}
    FAILURE_SCREENSHOT.parent.mkdir(exist_ok=True)
    FAILURE_SCREENSHOT.unlink(missing_ok=True)
    with demo_server(environment, tmp_path_factory.mktemp("browser")) as server:
        found = run_browser(
            {
                "url": server.url,
                "key": TEST_KEY,
                "wrong_key": TEST_KEY[::-1],
                "vectors": VECTORS,
                "failure_screenshot": str(FAILURE_SCREENSHOT),
            }
        )
    assert "error" not in found, (
        f"the browser walk stopped: {found['error']}\n"
        f"screenshot: {FAILURE_SCREENSHOT}\nsteps so far: {json.dumps(found['steps'])[:2000]}"
    )
    return found


def step(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in report["steps"] if s["name"] == name)


def test_the_page_loads_without_a_console_error_or_a_request_to_another_origin(
    report: dict[str, Any],
) -> None:
    assert report["console_errors_on_load"] == []
    # Later, the browser reports each 401 the walk asks for; nothing else may appear.
    assert [e for e in report["console_errors"] if "status of 401" not in e] == []
    assert report["foreign_requests"] == []


def test_the_page_offers_one_key_field_no_authorize_dialog_and_no_blank_server(
    report: dict[str, Any],
) -> None:
    page = step(report, "page")
    assert page["authorize_buttons"] == 0
    assert page["padlocks"] == 0
    assert len(page["servers"]) == 1
    assert page["servers"][0].startswith("http://127.0.0.1:")


def test_try_it_out_then_execute_lists_the_demo_heroes_without_any_editing(
    report: dict[str, Any],
) -> None:
    listed = step(report, "list heroes, nothing edited")

    assert listed["status"] == 200, listed
    assert listed["url"].endswith("/api/heroes")
    names = [hero["name"] for hero in json.loads(listed["body"])["items"]]
    assert names[:2] == ["Deadpond", "Rusty-Man"]
    assert TEST_KEY not in json.dumps(listed["request_headers"])


def test_two_teams_created_in_a_row_are_both_created(report: dict[str, Any]) -> None:
    created = [step(report, f"create team Browser Team {x}") for x in "AB"]

    assert [c["status"] for c in created] == [201, 201], created
    assert [json.loads(c["body"])["name"] for c in created] == ["Browser Team A", "Browser Team B"]
    assert all("idempotency-key" not in c["request_headers"] for c in created)


def test_a_create_gets_a_new_idempotency_key_when_the_person_asks(
    report: dict[str, Any],
) -> None:
    created = step(report, "create team with a new Idempotency-Key")

    assert created["status"] == 201, created
    assert UUID(created["request_headers"]["idempotency-key"]).version == 4


def test_version_2_picked_in_the_page_is_accepted_by_the_server(report: dict[str, Any]) -> None:
    listed = step(report, "list heroes, version 2")
    created = step(report, "create team, version 2")

    assert (listed["status"], created["status"]) == (200, 201), (listed, created)
    for sent in (listed, created):
        assert sent["request_headers"]["signature-input"].startswith('sig1=("@method" "@path"')
        assert "x-signature" not in sent["request_headers"]
    # A body is bound through its digest, and the Idempotency-Key through the signature.
    assert created["request_headers"]["content-digest"].startswith("sha-256=:")
    assert '"idempotency-key"' in created["request_headers"]["signature-input"]


def test_the_example_hero_id_exists(report: dict[str, Any]) -> None:
    hero = step(report, "get the example hero")

    assert hero["status"] == 200, hero
    assert json.loads(hero["body"])["name"] == "Deadpond"


def test_a_wrong_key_gets_401_and_a_pointer_to_the_key(report: dict[str, Any]) -> None:
    refused = step(report, "wrong key")

    assert refused["status"] == 401
    assert refused["hint"] == {
        "visible": True,
        "text": "The API refused the signature (401): check the signing key and version here.",
    }


def test_without_a_key_the_401_points_to_the_key_field(report: dict[str, Any]) -> None:
    unsigned = step(report, "no key")

    assert unsigned["status"] == 401
    assert "x-signature" not in unsigned["request_headers"]
    assert unsigned["hint"] == {
        "visible": True,
        "text": "The API answered 401 because no signing key is set: type it here.",
    }


def test_the_key_is_kept_for_the_tab_only_while_the_box_is_ticked(
    report: dict[str, Any],
) -> None:
    assert TEST_KEY not in step(report, "stored without asking")["stored"]
    kept = step(report, "kept only while ticked")
    assert TEST_KEY in json.loads(kept["ticked"]).values()
    assert json.loads(kept["unticked"]) == {}


def test_the_page_itself_reproduces_every_signing_vector(report: dict[str, Any]) -> None:
    assert step(report, "vectors in the page")["results"] == expected_vector_results()
