"""The example app (clients/example-app) in Debian's Chromium, on another origin than the API.

Its README's commands run as written (only the API's URL, the key and the ports are this test's):
the signing package is built, the app's client generated from openapi.yaml, the app built with a
strong random key and served by `npm run preview`. The API runs in production mode (`APP_DEBUG`
unset) on PostgreSQL with the demo data and `APP_CORS_ORIGINS` naming the app's origin. The page
runs every flow with signature version 1, then 2; what the API answered each request is read from
its access log by X-Request-ID. A machine without Chromium or Node fails with the install command.
"""

import contextlib
import json
import math
import os
import re
import secrets
import shlex
import signal
import subprocess
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import URL

from settings import ROOT
from tests.backoffice_process import BACKOFFICE, BackofficeServer, free_port
from tests.conftest import fresh_postgres_database
from tests.swagger_ui_browser import browser_tools

APP = ROOT / "clients" / "example-app"
README = APP / "README.md"
DRIVER = Path(__file__).with_name("example_app_browser.js")
FAILURE_SCREENSHOT = ROOT / "var" / "example-app-browser-failure.png"
WRITTEN_API_URL = "http://127.0.0.1:8000"
WRITTEN_KEY = "development-only-key-never-use-in-production"
COMMAND_SECONDS = 300
BROWSER_SECONDS = 300
SERVE_SECONDS = 600
STARTUP_SECONDS = 60


def readme_commands() -> dict[str, str]:
    """The 'Run it' block, keyed by what each line runs: `typescript` or its npm command."""
    section = README.read_text(encoding="utf-8").split("## Run it", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert block is not None, "the README's 'Run it' section has no bash block"
    commands: dict[str, str] = {}
    for line in block.group(1).splitlines():
        command = line.split("  #", 1)[0].strip()
        words = shlex.split(command)
        name = "typescript" if "../typescript" in command else words[words.index("npm") + 1]
        commands[words[words.index("npm") + 2] if name == "run" else name] = command
    return commands


def run(command: str, env: dict[str, str] | None = None) -> str:
    """A README line in the app's folder, through the shell as typed; fails with its output."""
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=APP,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@contextlib.contextmanager
def served(command: str, url: str, log: Path) -> Generator[None]:
    """A README server command in its own process group, bounded in time, stopped at the end."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["timeout", str(SERVE_SECONDS), "bash", "-c", command],
            cwd=APP,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, f"{command} exited:\n{log.read_text()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"{command}: no answer:\n{log.read_text()}"
            time.sleep(0.2)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def with_port(command: str, port: int) -> str:
    """The README's server command on this test's port instead of Vite's default."""
    return f"{command} -- --port {port}"


@pytest.fixture(scope="module")
def commands() -> dict[str, str]:
    """The README's commands after its install and generate lines, run as written."""
    found = readme_commands()
    assert list(found) == ["typescript", "ci", "generate", "dev", "build", "preview"]
    browser_tools()
    for name in ("typescript", "ci", "generate"):
        run(found[name])
    return found


@pytest.fixture(scope="module")
def api_database(postgres_server: URL) -> Iterator[str]:
    database = fresh_postgres_database(postgres_server)
    yield next(database).render_as_string(hide_password=False)
    next(database, None)  # past its `yield`: drops the database


@pytest.fixture(scope="module")
def report(
    commands: dict[str, str], api_database: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("example-app")
    key = secrets.token_urlsafe(48)
    app_port = free_port()
    app_url = f"http://127.0.0.1:{app_port}"
    environment = {
        "APP_DB_URL": api_database,
        "APP_SECRET_KEY": key,
        "APP_CORS_ORIGINS": app_url,
        # INFO: the access log says what the API answered each request of the page.
        "APP_LOG_LEVEL": "INFO",
    }
    api = BackofficeServer(environment, directory / "api.log", lifetime_seconds=SERVE_SECONDS)
    api.environment.pop("APP_DEBUG", None)  # production mode, as deployed
    build = commands["build"]
    assert WRITTEN_API_URL in build, build
    assert WRITTEN_KEY in build, build
    run(build.replace(WRITTEN_API_URL, api.url).replace(WRITTEN_KEY, key))
    FAILURE_SCREENSHOT.parent.mkdir(exist_ok=True)
    FAILURE_SCREENSHOT.unlink(missing_ok=True)
    node, chromium = browser_tools()
    with api, served(with_port(commands["preview"], app_port), app_url, directory / "app.log"):
        subprocess.run(
            [BACKOFFICE, "seed"], env=api.environment, check=True, capture_output=True, timeout=120
        )
        task = {
            "app_url": app_url,
            "api_url": api.url,
            "chromium": str(chromium),
            "versions": [1, 2],
            "failure_screenshot": str(FAILURE_SCREENSHOT),
        }
        driven = subprocess.run(
            [node, str(DRIVER)],
            input=json.dumps(task),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=BROWSER_SECONDS,
            check=False,
        )
    assert driven.returncode == 0, driven.stderr
    found = json.loads(driven.stdout)
    assert "error" not in found, (
        f"the browser run stopped: {found['error']}\nscreenshot: {FAILURE_SCREENSHOT}\n"
        f"flows so far: {json.dumps(found['runs'])[-3000:]}"
    )
    lines = [json.loads(line) for line in api.log.read_text().splitlines() if line[:1] == "{"]
    answered = {
        line["request_id"]: line["status"] for line in lines if line.get("logger") == "access"
    }
    return found | {"api_url": api.url, "app_url": app_url, "key": key, "answered": answered}


def flows(report: dict[str, Any], version: int) -> dict[str, dict[str, Any]]:
    return {flow["flow"]: flow for flow in report["runs"][str(version)]}


def test_the_app_runs_on_its_own_origin_and_talks_only_to_the_api(report: dict[str, Any]) -> None:
    assert report["page_origin"] == report["app_url"] != report["api_url"]
    assert report["api_url_shown"] == report["api_url"]
    assert report["other_requests"] == []
    # Chromium reports each 4xx a page's fetch gets; the flows ask for a 412 and a 404.
    expected = re.compile(r"the server responded with a status of (404|412) ")
    assert [e for e in report["console_errors"] if not expected.search(e)] == []


@pytest.mark.parametrize("version", [1, 2])
def test_every_flow_succeeds_in_order(report: dict[str, Any], version: int) -> None:
    shown = report["runs"][str(version)]

    assert [(f["flow"], f["outcome"], f["status"]) for f in shown] == [
        ("list", "ok", 200),
        ("create team", "ok", 201),
        ("create hero", "ok", 201),
        ("retry the create", "ok", 201),
        ("patch with If-Match", "ok", 200),
        ("patch with a stale ETag", "refused", 412),
        ("read three times", "ok", 200),
        ("not modified", "not-modified", 304),
        ("a failed request", "refused", 404),
    ], shown


@pytest.mark.parametrize("version", [1, 2])
def test_the_list_follows_next_cursor_to_the_end(report: dict[str, Any], version: int) -> None:
    listed = flows(report, version)["list"]["detail"]

    assert listed["count"] >= 7  # the demo data
    assert listed["pages"] == math.ceil(listed["count"] / 2)
    assert listed["ids"] == sorted(set(listed["ids"]))


def test_a_create_retried_with_its_idempotency_key_made_one_hero(report: dict[str, Any]) -> None:
    # Version 1's run made one hero (its retry replayed); version 2's list counts it.
    assert flows(report, 2)["list"]["detail"]["count"] == (
        flows(report, 1)["list"]["detail"]["count"] + 1
    )
    for version in (1, 2):
        created = flows(report, version)["create hero"]["detail"]
        retried = flows(report, version)["retry the create"]["detail"]
        assert retried == {"id": created["id"], "replayed": "true"}
        assert created["location"] == f"/api/heroes/{created['id']}"


@pytest.mark.parametrize("version", [1, 2])
def test_location_is_resolved_against_the_api_not_the_page(
    report: dict[str, Any], version: int
) -> None:
    team = flows(report, version)["create team"]

    team_id, name = team["detail"]["id"], team["detail"]["name"]

    assert name.startswith(f"Example team v{version} ")
    assert team["detail"] == {
        "id": team_id,
        "name": name,
        "location": f"/api/teams/{team_id}",
        "resolved": f"{report['api_url']}/api/teams/{team_id}",
        "followed_status": 200,
        "followed_name": name,
    }


@pytest.mark.parametrize("version", [1, 2])
def test_a_patch_carries_the_etag_it_read_and_a_stale_one_gets_412(
    report: dict[str, Any], version: int
) -> None:
    shown = flows(report, version)
    patched = shown["patch with If-Match"]["detail"]

    assert patched["age"] == 31
    assert patched["etag_before"] != patched["etag_after"]
    assert shown["patch with a stale ETag"]["detail"] == {"type": "/problems/precondition-failed"}


@pytest.mark.parametrize("version", [1, 2])
def test_the_same_hero_read_three_times_is_revalidated_by_the_browser_cache(
    report: dict[str, Any], version: int
) -> None:
    reads = flows(report, version)["read three times"]["detail"]

    assert reads["statuses"] == [200, 200, 200]
    assert reads["ages"] == [31, 31, 31]
    # The first read finds the hero changed since the copy cached before the patch; the second
    # and third go out with the If-None-Match the browser added after signing, and get 304.
    assert [report["answered"][request_id] for request_id in reads["request_ids"]] == [
        200,
        304,
        304,
    ]


@pytest.mark.parametrize("version", [1, 2])
def test_a_304_is_shown_as_not_modified_with_openapi_fetch_giving_an_empty_error(
    report: dict[str, Any], version: int
) -> None:
    unchanged = flows(report, version)["not modified"]

    assert unchanged["detail"] == {
        "etag": unchanged["detail"]["etag"],
        "data_is_undefined": True,
        "error": '""',
        "request_id": unchanged["detail"]["request_id"],
    }
    assert report["answered"][unchanged["detail"]["request_id"]] == 304
    assert unchanged["text"].startswith("not modified · 304 · not modified: what we hold")


@pytest.mark.parametrize("version", [1, 2])
def test_a_failed_request_shows_the_request_id_the_api_logged(
    report: dict[str, Any], version: int
) -> None:
    failed = flows(report, version)["a failed request"]
    request_id = failed["detail"]["request_id"]

    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert report["answered"][request_id] == 404
    assert failed["detail"]["type"] == "/problems/not-found"
    assert failed["text"].endswith(f"(X-Request-ID {request_id})")


def test_the_key_is_in_the_bundle_as_the_readme_warns(report: dict[str, Any]) -> None:
    bundle = "".join(p.read_text() for p in (APP / "dist" / "assets").glob("*.js"))

    assert report["key"] in bundle


def test_the_dev_server_runs_as_written(commands: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    with served(with_port(commands["dev"], port), url, tmp_path / "dev.log"):
        page = httpx.get(url, timeout=10).text
        config = httpx.get(f"{url}/src/config.ts", timeout=10)

    assert '<script type="module" src="/src/main.ts"></script>' in page
    assert config.status_code == 200
    assert WRITTEN_API_URL in config.text
