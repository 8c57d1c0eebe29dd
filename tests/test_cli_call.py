"""`backoffice call` signs and sends requests to a real `backoffice serve` on 127.0.0.1.

So do the documentation's curl example (docs/api.md) and its `backoffice call` lines
(docs/signing.md): all are run as written against the live server, on PostgreSQL.
"""

import json
import logging
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cli import cli
from settings import ROOT
from tests.backoffice_process import BACKOFFICE
from tests.conftest import TEST_KEY
from tests.markdown_docs import command_lines, shell_blocks

KEY = TEST_KEY


@pytest.fixture(autouse=True)
def quiet_httpx() -> Iterator[None]:
    """Keep httpx's request log out of the printed output: other tests configure logging in
    this process, whereas a real `backoffice call` process leaves it unconfigured."""
    logger = logging.getLogger("httpx")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def call(server: str, *arguments: str, key: str = KEY) -> Result:
    environment = {"BACKOFFICE_URL": server, "APP_SECRET_KEY": key, "APP_DEBUG": None}
    return CliRunner().invoke(cli, ["call", *arguments], env=environment)


def printed_json(output: str) -> object:
    """The pretty-printed body that follows the status line (and the listed headers)."""
    return json.loads(output[output.index("{") :])


def test_get_prints_the_status_and_the_body(live_server: str) -> None:
    result = call(live_server, "GET", "/api/teams?limit=1")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("HTTP 200 OK\n")
    assert set(printed_json(result.output)) == {"items", "next_cursor"}  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ["1", "2"])
def test_post_with_data_signs_the_body_in_either_version(live_server: str, version: str) -> None:
    name = f"Call v{version}"
    data = json.dumps({"name": name, "headquarters": "Terminal"})

    result = call(live_server, "POST", "/api/teams", "--data", data, "--version", version)

    assert result.exit_code == 0, result.output
    assert result.output.startswith("HTTP 201 Created\n")
    assert re.search(r"^location: /api/teams/\d+$", result.output, flags=re.MULTILINE)
    created = printed_json(result.output)
    assert isinstance(created, dict)
    assert (created["name"], created["headquarters"]) == (name, "Terminal")


def test_a_query_with_spaces_and_accents_is_signed_as_sent(live_server: str) -> None:
    result = call(live_server, "GET", "/api/heroes?name=Équipe Zürich&limit=2", "--version", "2")

    assert result.exit_code == 0, result.output
    assert printed_json(result.output) == {"items": [], "next_cursor": None}


def test_a_4xx_answer_prints_the_problem_and_exits_with_1(live_server: str) -> None:
    result = call(live_server, "GET", "/api/teams/987654321")

    assert result.exit_code == 1
    assert result.output.startswith("HTTP 404 Not Found\n")
    problem = printed_json(result.output)
    assert isinstance(problem, dict)
    problem.pop("request_id", None)
    assert problem == {
        "type": "/problems/not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "team 987654321 does not exist",
    }


def test_a_call_signed_with_another_key_gets_401_and_exits_with_1(live_server: str) -> None:
    result = call(live_server, "DELETE", "/api/teams/1", key="not-the-servers-key-0123456789abcdef")

    assert result.exit_code == 1
    assert result.output.startswith("HTTP 401 Unauthorized\n")
    problem = printed_json(result.output)
    assert isinstance(problem, dict)
    assert problem["detail"] == (
        "keyid names no key of this service: it is the first 16 hex digits of the SHA-256 of "
        "the key"
    )


def test_data_that_is_not_json_is_refused_before_sending(live_server: str) -> None:
    result = call(live_server, "POST", "/api/teams", "--data", "{name: Avengers}")

    assert result.exit_code == 2
    assert "--data is not valid JSON" in result.output


def test_an_unreachable_server_exits_with_3() -> None:
    result = call("http://127.0.0.1:9", "GET", "/api/teams")

    assert result.exit_code == 3
    assert "could not reach http://127.0.0.1:9" in result.output


def test_the_installed_command_exits_with_1_on_a_conflict(live_server: str, tmp_path: Path) -> None:
    data = json.dumps({"name": "Installed command", "headquarters": "Shell"})
    environment = {"BACKOFFICE_URL": live_server, "APP_SECRET_KEY": KEY, "PATH": "/usr/bin:/bin"}

    runs = [
        subprocess.run(
            [BACKOFFICE, "call", "POST", "/api/teams", "-d", data],
            env=environment,
            cwd=tmp_path,  # no .env file here
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        for _ in range(2)
    ]

    assert [run.returncode for run in runs] == [0, 1], [run.stdout + run.stderr for run in runs]
    assert runs[1].stdout.startswith("HTTP 409 Conflict\n")


def _documented_curl_example() -> str:
    (script,) = shell_blocks(ROOT / "docs/api.md", "tests/test_cli_call.py")
    assert script.startswith("KEY="), "the curl example is missing from docs/api.md"
    return script


def test_the_documented_curl_example_is_accepted_by_a_running_server(live_server: str) -> None:
    script = _documented_curl_example()
    assert "http://127.0.0.1:8000" in script
    # The example signs with the development key; this server has its own.
    script = re.sub(r"^KEY=\S+", f"KEY={KEY}", script.replace("http://127.0.0.1:8000", live_server))

    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert run.returncode == 0, run.stderr
    page = json.loads(run.stdout)  # a 401 would be a problem document instead
    assert set(page) == {"items", "next_cursor"}, page


def test_the_signing_pages_calls_run_as_written(live_server: str, tmp_path: Path) -> None:
    """docs/signing.md's "Try it": a keyed create, then a page, each a `uv run backoffice call`."""
    (block,) = shell_blocks(ROOT / "docs/signing.md", "tests/test_cli_call.py")
    create, listing = command_lines(block)
    prefix = "uv run backoffice "
    assert create.startswith(prefix), block
    assert listing.startswith(prefix), block
    # A unique name, so that the create succeeds whatever this server already holds.
    create = create.replace('"name":"Avengers"', '"name":"Avengers of the signing page"')
    runs = [
        subprocess.run(
            ["bash", "-c", f"{BACKOFFICE} {command.removeprefix(prefix)}"],
            env={"PATH": "/usr/bin:/bin", "BACKOFFICE_URL": live_server, "APP_SECRET_KEY": KEY},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        for command in (create, listing)
    ]

    assert [run.returncode for run in runs] == [0, 0], [run.stdout + run.stderr for run in runs]
    assert runs[0].stdout.startswith("HTTP 201 Created\n")
    assert runs[1].stdout.startswith("HTTP 200 OK\n")


def installed_call(
    *arguments: str, cwd: Path, stdin: str | None = None, **variables: str
) -> subprocess.CompletedProcess[str]:
    """The `backoffice` program a user runs, in a folder with no .env file."""
    return subprocess.run(
        [BACKOFFICE, "call", *arguments],
        env={"PATH": "/usr/bin:/bin", **variables},
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_data_is_read_from_a_file_named_with_an_at_sign(live_server: str, tmp_path: Path) -> None:
    team = {"name": "From a file", "headquarters": "Disk"}
    # Larger than a shell argument is comfortable with; JSON allows the white space.
    (tmp_path / "team.json").write_text(json.dumps(team, indent=200_000))

    run = installed_call(
        "POST",
        "/api/teams",
        "--data",
        "@team.json",
        cwd=tmp_path,
        BACKOFFICE_URL=live_server,
        APP_SECRET_KEY=KEY,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("HTTP 201 Created\n")
    assert printed_json(run.stdout)["headquarters"] == team["headquarters"]  # type: ignore[index]


def test_data_is_read_from_standard_input_with_a_dash(live_server: str, tmp_path: Path) -> None:
    team = {"name": "From stdin", "headquarters": "Pipe"}

    run = installed_call(
        "POST",
        "/api/teams",
        "-d",
        "-",
        cwd=tmp_path,
        stdin=json.dumps(team),
        BACKOFFICE_URL=live_server,
        APP_SECRET_KEY=KEY,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert printed_json(run.stdout)["name"] == "From stdin"  # type: ignore[index]


def test_a_missing_data_file_is_one_line(tmp_path: Path) -> None:
    run = installed_call(
        "POST", "/api/teams", "-d", "@absent.json", cwd=tmp_path, APP_SECRET_KEY=KEY
    )

    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr == "--data @absent.json: cannot read absent.json: No such file or directory\n"


def test_a_path_without_its_leading_slash_is_one_line(tmp_path: Path) -> None:
    run = installed_call("GET", "api/heroes", cwd=tmp_path, APP_SECRET_KEY=KEY)

    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr == "the path must start with /: /api/heroes\n"


@pytest.mark.parametrize("method", ["FETCH", "PUT", "TRACE"])
def test_a_method_the_api_does_not_take_is_one_line_and_nothing_is_sent(
    method: str, tmp_path: Path
) -> None:
    # Port 9 (discard) is closed here: anything sent would end with "could not reach" and 3.
    run = installed_call(
        method, "/api/heroes", "--url", "http://127.0.0.1:9", cwd=tmp_path, APP_SECRET_KEY=KEY
    )

    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr == (
        f"{method} is not a method of this API: use GET, POST, PATCH or DELETE (or HEAD, OPTIONS)\n"
    )


def test_the_path_given_before_the_method_is_named_in_the_right_order(tmp_path: Path) -> None:
    run = installed_call(
        "/api/heroes?limit=3",
        "get",
        "--url",
        "http://127.0.0.1:9",
        cwd=tmp_path,
        APP_SECRET_KEY=KEY,
    )

    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr == "the method comes first: backoffice call GET /api/heroes?limit=3\n"


def test_a_method_in_lower_case_is_sent_in_upper_case(live_server: str) -> None:
    result = call(live_server, "get", "/api/teams?limit=1")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("HTTP 200 OK\n")


def test_signing_with_the_development_key_is_said_on_stderr(
    live_server: str, tmp_path: Path
) -> None:
    run = installed_call("GET", "/api/heroes", cwd=tmp_path, BACKOFFICE_URL=live_server)

    assert run.stderr == (
        "APP_SECRET_KEY is not set: signing with the public development key, which only "
        "`backoffice dev` accepts\n"
    )
    # This server has a key of its own, so the development key's signature is refused.
    assert run.stdout.startswith("HTTP 401 Unauthorized\n")


def test_a_set_key_gives_no_warning(live_server: str, tmp_path: Path) -> None:
    run = installed_call(
        "GET", "/api/heroes", cwd=tmp_path, BACKOFFICE_URL=live_server, APP_SECRET_KEY=KEY
    )

    assert (run.returncode, run.stderr) == (0, "")


def test_a_server_url_that_is_not_http_is_one_line(tmp_path: Path) -> None:
    run = installed_call(
        "GET", "/api/heroes", "--url", "ftp://127.0.0.1", cwd=tmp_path, APP_SECRET_KEY=KEY
    )

    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr == (
        "not a valid URL: ftp://127.0.0.1/api/heroes (http:// or https:// and a host)\n"
    )
