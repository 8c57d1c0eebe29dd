"""A person on /docs, in Debian's Chromium, against a live server with the demo data.

One browser session walks the page as a person does (type the key once, Try it out, Execute
without editing) and reports each step; the tests below judge the report. It never skips: a
machine without Chromium or Node fails here with the command that installs them.
"""

import json
import re
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from settings import ROOT
from tests.conftest import TEST_KEY
from tests.swagger_screenshot import PICTURE, REGENERATE, compare, take_picture
from tests.swagger_ui_browser import demo_server, run_browser
from tests.test_swagger_ui import VECTORS, expected_vector_results

FAILURE_SCREENSHOT = ROOT / "var" / "swagger-ui-browser-failure.png"
PICTURE_NOW = ROOT / "var" / "swagger-ui-now.png"
# The share of the compared pixels that may differ: two pictures of an unchanged page differ in
# none, a changed line of text in thousands.
PICTURE_TOLERANCE = 0.0002


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # INFO: the access log says what the server answered each request the page sent.
    environment = {"APP_SECRET_KEY": TEST_KEY, "APP_DEBUG": "false", "APP_LOG_LEVEL": "INFO"}
    FAILURE_SCREENSHOT.parent.mkdir(exist_ok=True)
    FAILURE_SCREENSHOT.unlink(missing_ok=True)
    directory = tmp_path_factory.mktemp("browser")
    with demo_server(environment, directory) as server:
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
        f"screenshot: {FAILURE_SCREENSHOT}\nlast steps: {json.dumps(found['steps'][-3:])[-3000:]}"
    )
    return found | {"answered": answered_by_server(directory / "server.log")}


def answered_by_server(log: Path) -> dict[str, int]:
    """The status the server sent for each request id, from its access log."""
    lines = (json.loads(line) for line in log.read_text().splitlines() if line.startswith("{"))
    return {line["request_id"]: line["status"] for line in lines if line.get("logger") == "access"}


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


def test_the_same_hero_read_three_times_with_version_2_is_shown_each_time(
    report: dict[str, Any],
) -> None:
    reads = [step(report, f"read a hero, version 2, time {n}") for n in (1, 2, 3)]

    assert [(r["status"], r["shown"]["status"]) for r in reads] == [(200, "200")] * 3, reads
    assert [json.loads(r["body"])["name"] for r in reads] == ["Rusty-Man"] * 3
    # The browser's cache revalidated the second and third with the If-None-Match it added
    # after the page signed; the server answered 304, and the page got the cached hero.
    etag = reads[0]["etag"]
    assert [r["request_headers"].get("if-none-match") for r in reads] == [None, etag, etag]
    assert all('"if-none-match"' not in r["request_headers"]["signature-input"] for r in reads)
    assert [report["answered"][r["request_id"]] for r in reads] == [200, 304, 304]


def test_a_304_is_shown_as_not_modified_not_as_an_error(report: dict[str, Any]) -> None:
    unchanged = step(report, "read the hero with its ETag")

    assert (unchanged["status"], report["answered"][unchanged["request_id"]]) == (304, 304)
    assert '"if-none-match"' in unchanged["request_headers"]["signature-input"]
    assert unchanged["shown"] == {
        "status": "304",
        "message": "Not Modified. What you hold is current: the ETag you sent in If-None-Match "
        "is still this resource's, so the server sends no body.",
    }


WRONG_KEY_V1 = (
    "Wrong key: the signature does not match, so the key is not this server's (or the request "
    "changed after signing). Check Signing key at the top of the page."
)
WRONG_KEY_V2 = (
    "Wrong key: this server holds no key with the signature's keyid. "
    "Check Signing key at the top of the page."
)
NO_KEY = (
    "No signing key is set: type this server's APP_SECRET_KEY into Signing key at the top "
    "of the page."
)


def assert_refusal_explained_beside_the_response(refused: dict[str, Any], cause: str) -> None:
    assert refused["status"] == 401, refused
    assert refused["shown"] == {"status": "401", "message": f"Unauthorized. {cause}"}
    assert refused["beside_the_response"] is True
    assert refused["status_and_cause_on_screen"] is True
    # The page does not move to the key field, far above (re-rendering the response may shift
    # it by a few pixels while Swagger UI swaps the old response for the new).
    assert abs(refused["scrolled_by"]) < 50


@pytest.mark.parametrize(("version", "cause"), [("1", WRONG_KEY_V1), ("2", WRONG_KEY_V2)])
def test_a_wrong_key_gets_401_explained_beside_the_response_and_at_the_key(
    report: dict[str, Any], version: str, cause: str
) -> None:
    refused = step(report, f"wrong key, version {version}")

    assert_refusal_explained_beside_the_response(refused, cause)
    assert refused["hint"] == {"visible": True, "text": cause}


def test_without_a_key_the_401_says_so_beside_the_response_and_at_the_key(
    report: dict[str, Any],
) -> None:
    unsigned = step(report, "no key")

    assert "x-signature" not in unsigned["request_headers"]
    assert_refusal_explained_beside_the_response(unsigned, NO_KEY)
    assert unsigned["hint"] == {"visible": True, "text": NO_KEY}


def test_a_signature_sent_again_is_explained_as_a_replay(report: dict[str, Any]) -> None:
    first = step(report, "create team, first")
    again = step(report, "create team, its signature sent again")

    assert first["status"] == 201, first
    assert again["request_headers"]["x-signature"] == first["request_headers"]["x-signature"]
    assert_refusal_explained_beside_the_response(
        again,
        "Replay: this very signature was already used, and the server accepts each one once. "
        "Execute again: the page signs afresh.",
    )


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_clock_ten_minutes_fast_is_explained_with_the_skew(
    report: dict[str, Any], version: str
) -> None:
    skewed = step(report, f"clock 10 minutes fast, version {version}")

    cause = skewed["shown"]["message"].removeprefix("Unauthorized. ")
    assert re.fullmatch(
        r"Clock skew: this computer's clock is (59\d|60\d) s ahead of the server's, outside "
        r"the window the server accepts\. Set the clock right, then Execute again\.",
        cause,
    ), skewed["shown"]
    assert_refusal_explained_beside_the_response(skewed, cause)


def test_on_a_phone_the_page_is_as_wide_as_the_screen_and_never_scrolls_sideways(
    report: dict[str, Any],
) -> None:
    phone = step(report, "phone")

    assert phone["status"] == 200
    # The viewport meta tag is honoured: laid out 390 px wide, not 980 px and shrunk.
    assert phone["inner_width"] == 390
    assert phone["scroll_width"] <= 390
    assert phone["key_field_right"] <= 390
    assert phone["path_font_px"] >= 12


def test_the_key_is_kept_for_the_tab_only_while_the_box_is_ticked(
    report: dict[str, Any],
) -> None:
    assert TEST_KEY not in step(report, "stored without asking")["stored"]
    kept = step(report, "kept only while ticked")
    assert TEST_KEY in json.loads(kept["ticked"]).values()
    assert json.loads(kept["unticked"]) == {}


def test_the_page_itself_reproduces_every_signing_vector(report: dict[str, Any]) -> None:
    assert step(report, "vectors in the page")["results"] == expected_vector_results()


def test_the_committed_picture_of_the_page_is_the_page_as_served_now() -> None:
    """The README's picture, taken again as `tests/swagger_screenshot.py` takes it, matches the
    committed one but for the boxes that vary by run (the port, the time, the demo rows)."""
    PICTURE_NOW.parent.mkdir(exist_ok=True)
    report = take_picture(PICTURE_NOW)
    assert "error" not in report, f"no picture taken: {report['error']}"

    found = compare(PICTURE, PICTURE_NOW, report["volatile"])

    stale = (
        f"{PICTURE.relative_to(ROOT)} no longer shows /docs as it is served (now: "
        f"{PICTURE_NOW.relative_to(ROOT)}): regenerate it with `{REGENERATE}` and commit it"
    )
    assert found.same_size, f"{stale} (the page's layout changed)"
    assert found.changed <= found.compared * PICTURE_TOLERANCE, (
        f"{stale} ({found.changed} of {found.compared} pixels differ)"
    )
