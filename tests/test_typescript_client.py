"""The frontend's TypeScript client, generated from `openapi.yaml` and run against the service.

`clients/typescript` generates its types with openapi-typescript, type-checks, reproduces the
shared signing vectors with its openapi-fetch middleware, and its example program does what the
React frontend does against a live server on PostgreSQL, with real signatures.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from settings import ROOT
from tests.conftest import TEST_KEY
from tests.node_packages import npm_ci
from tests.signature_support import VECTORS_FILE

CLIENT = ROOT / "clients" / "typescript"
NODE_SECONDS = 180


def run(*command: str | Path, env: dict[str, str] | None = None) -> str:
    """Run a command in the client's directory; fail with its output if it fails."""
    result = subprocess.run(
        command,
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=NODE_SECONDS,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def node_bin() -> Path:
    """The client's packages from its lock file, types generated, and the code compiled."""
    binaries = npm_ci(CLIENT)
    run(binaries / "openapi-typescript", "../../openapi.yaml", "--output", "src/schema.d.ts")
    shutil.rmtree(CLIENT / "dist", ignore_errors=True)
    run(binaries / "tsc", "--outDir", "dist")
    return binaries


def test_generated_types_and_the_example_program_type_check(node_bin: Path) -> None:
    types = (CLIENT / "src" / "schema.d.ts").read_text()

    run(node_bin / "tsc", "--noEmit")

    assert '"/api/heroes/{hero_id}"' in types
    assert "getTeamHeroes" in types


def test_the_middleware_reproduces_every_shared_signing_vector(node_bin: Path) -> None:
    vectors = json.loads(VECTORS_FILE.read_text())["vectors"]

    output = run("node", "--test", "dist/test/", env={"SIGNING_VECTORS": str(VECTORS_FILE)})

    # Per vector: the signed string and signature, and the headers the middleware sets; plus
    # one check that both versions are present, one that the must-not-verify case differs,
    # and one through a real openapi-fetch client.
    assert f"# pass {2 * len(vectors) + 3}\n" in output
    assert "# fail 0\n" in output


@pytest.mark.parametrize("version", ["1", "2"])
def test_the_example_program_works_end_to_end_with_real_signatures(
    node_bin: Path, live_api: str, version: str
) -> None:
    output = run(
        "node",
        "dist/src/example.js",
        env={
            "BACKOFFICE_URL": live_api,
            "BACKOFFICE_KEY": TEST_KEY,
            "BACKOFFICE_SIGNATURE_VERSION": version,
        },
    )

    steps = [json.loads(line) for line in output.splitlines()]
    assert steps == [
        {"step": "create team", "status": 201},
        {"step": "create hero", "status": 201},
        {"step": "list the team's heroes", "status": 200},
        {"step": "rename hero", "status": 200},
        {"step": "delete with a stale ETag", "status": 412},
        {"step": "delete hero", "status": 204},
        {"step": "read the deleted hero", "status": 404},
    ]
