"""The contract as its consumers see it: four client generators, each run on `openapi.yaml`.

For each generator: generate a client into a temporary folder with the generator's default
validation on (a warning about our spec fails the test), type-check the calling code in
`clients/generators/` strictly against it, and run that code against a live server on
PostgreSQL, signing version 1 through the generator's own hook. Every flow does the same:
create a team, two heroes in it, page through them one at a time, read one (then 304 with its
ETag), patch it with If-Match, delete it, read it again (404), create the team again (409).

The generators come from lock files: `clients/typescript/package-lock.json` (openapi-typescript,
openapi-fetch), `clients/generators/hey-api/package-lock.json` (@hey-api/openapi-ts) and
`clients/generators/python/uv.lock` (openapi-python-client, openapi-generator-cli, whose wheel
ships openapi-generator's jar; it runs on Java 17 or later). Spectral's `spectral:oas` ruleset,
what a consumer's tooling lints with, finds nothing either.
"""

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from app import SPEC
from settings import ROOT
from tests.conftest import TEST_KEY
from tests.markdown_docs import command_lines, shell_blocks
from tests.node_packages import after_npm_ci, npm_ci

GENERATORS = ROOT / "clients" / "generators"
PYTHON_GENERATORS = GENERATORS / "python"
TYPESCRIPT_CLIENT = ROOT / "clients" / "typescript"
SECONDS = 300

# What every flow prints, step by step; ids and names vary, so their digits read as N.
FLOW = [
    {"step": "create team", "status": 201},
    {"step": "create hero", "status": 201},
    {"step": "create hero", "status": 201},
    {"step": "page through heroes", "status": 200, "pages": 2},
    {"step": "get hero", "status": 200},
    {"step": "get unchanged hero", "status": 304},
    {"step": "patch hero", "status": 200},
    {"step": "delete hero", "status": 204},
    {"step": "get deleted hero", "status": 404, "detail": "hero N does not exist"},
    {
        "step": "create team again",
        "status": 409,
        "detail": "a team named 'Preventers N' already exists (team N)",
    },
]

# openapi-generator logs this from inside its own code (ModelUtils.getSimpleRef called with no
# reference at all, logged "once" per run, so 0 to 2 times at random): it names nothing in the
# spec. Every other WARN or ERROR line fails the test.
OPENAPI_GENERATOR_NOISE = (
    "[main] WARN  o.o.codegen.utils.ModelUtils - Failed to get the schema name: null"
)


def run(*command: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    """Run a command; fail with its whole output if it fails. Returns stdout and stderr."""
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=SECONDS,
        env={**os.environ, **(env or {})},
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{command} failed:\n{output}"
    return output


def flow_steps(output: str) -> list[dict[str, object]]:
    steps = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    for item in steps:
        if "detail" in item:
            item["detail"] = re.sub(r"[0-9]+", "N", str(item["detail"]))
    return steps


def uv() -> str:
    found = shutil.which("uv")
    assert found, "uv is needed: `pip install uv` (see the README's quick start)"
    return found


def java() -> str:
    found = shutil.which("java")
    assert found, (
        "openapi-generator needs Java 17 or later: `apt-get install openjdk-17-jre-headless` "
        "(.ci/run installs it when missing)"
    )
    return found


@pytest.fixture(scope="module")
def python_generators() -> Path:
    """The generators' own environment from its lock file: the `bin` folder of its venv."""
    run(uv(), "sync", "--locked", "--quiet", cwd=PYTHON_GENERATORS)
    return PYTHON_GENERATORS / ".venv" / "bin"


PYRIGHT = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pyright"]
PROJECT_PYRIGHT_RELAXATIONS = {name: value for name, value in PYRIGHT.items() if "report" in name}


def strict_pyright(flow: Path, package_root: Path, python: Path) -> None:
    """pyright, strict, on the calling code, resolving the generated package and its imports."""
    config = package_root / "pyrightconfig.json"
    config.write_text(
        json.dumps(
            {
                "include": [flow.name],
                "typeCheckingMode": "strict",
                "pythonVersion": "3.13",
                # As `uv run pyright` checks the service: strict, less what untyped libraries
                # (here, parts of the generated code) make unknown.
                **PROJECT_PYRIGHT_RELAXATIONS,
            }
        )
    )
    shutil.copy(flow, package_root / flow.name)
    run(ROOT / ".venv" / "bin" / "pyright", "--pythonpath", python, "--project", config)


def typescript_program(source: Path, folder: Path, node_modules: Path, tsc: Path) -> Path:
    """Compile `source` with the generated code beside it, `tsc --strict`; returns the .js."""
    shutil.copy(source, folder / source.name)
    shutil.copy(GENERATORS / "tsconfig.json", folder / "tsconfig.json")
    (folder / "node_modules").symlink_to(node_modules)
    (folder / "package.json").write_text('{"type": "module"}')
    run(tsc, "--project", folder / "tsconfig.json", "--strict", cwd=folder)
    return folder / "dist" / source.with_suffix(".js").name


def test_openapi_python_client_generates_a_typed_client_that_runs_the_flow(
    python_generators: Path, live_api: str, tmp_path: Path
) -> None:
    package = tmp_path / "backoffice_client"
    output = run(
        python_generators / "openapi-python-client",
        "generate",
        "--path",
        SPEC,
        "--config",
        GENERATORS / "openapi-python-client" / "config.yaml",
        "--meta",
        "none",
        "--output-path",
        package,
        # Its post-hooks run ruff, which it installs into the same environment.
        env={"PATH": f"{python_generators}:{os.environ['PATH']}"},
    )
    assert "Warning" not in output, output
    assert "Error" not in output, output
    flow = GENERATORS / "openapi-python-client" / "flow.py"
    strict_pyright(flow, tmp_path, python_generators / "python")

    steps = run(python_generators / "python", tmp_path / "flow.py", live_api, TEST_KEY)

    assert flow_steps(steps) == FLOW


def test_openapi_generator_generates_a_typed_python_client_that_runs_the_flow(
    python_generators: Path, live_api: str, tmp_path: Path
) -> None:
    java()
    output = run(
        python_generators / "openapi-generator-cli",
        "generate",
        "--generator-name",
        "python",
        "--input-spec",
        SPEC,
        "--output",
        tmp_path / "generated",
        "--package-name",
        "backoffice_openapi_client",
    )
    findings = [
        line
        for line in output.splitlines()
        if ("WARN" in line or "ERROR" in line) and line != OPENAPI_GENERATOR_NOISE
    ]
    assert findings == [], output
    package_root = tmp_path / "generated"
    flow = GENERATORS / "openapi-generator" / "flow.py"
    strict_pyright(flow, package_root, python_generators / "python")

    steps = run(python_generators / "python", package_root / "flow.py", live_api, TEST_KEY)

    assert flow_steps(steps) == FLOW


def test_openapi_typescript_and_openapi_fetch_type_check_strictly_and_run_the_flow(
    live_api: str, tmp_path: Path
) -> None:
    binaries = npm_ci(TYPESCRIPT_CLIENT)
    output = run(binaries / "openapi-typescript", SPEC, "--output", tmp_path / "schema.d.ts")
    assert "warn" not in output.lower(), output
    program = typescript_program(
        GENERATORS / "openapi-fetch" / "flow.ts",
        tmp_path,
        TYPESCRIPT_CLIENT / "node_modules",
        binaries / "tsc",
    )

    steps = run("node", program, live_api, TEST_KEY)

    assert flow_steps(steps) == FLOW


def test_hey_api_openapi_ts_with_its_fetch_client_type_checks_strictly_and_runs_the_flow(
    live_api: str, tmp_path: Path
) -> None:
    folder = GENERATORS / "hey-api"
    binaries = npm_ci(folder)
    output = run(
        binaries / "openapi-ts",
        "--file",
        folder / "openapi-ts.config.mjs",
        "--input",
        SPEC,
        "--output",
        tmp_path / "client",
    )
    assert "warn" not in output.lower(), output
    program = typescript_program(
        folder / "flow.ts", tmp_path, folder / "node_modules", binaries / "tsc"
    )

    steps = run("node", program, live_api, TEST_KEY)

    assert flow_steps(steps) == FLOW


def spectral(spec: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            npm_ci(ROOT) / "spectral",
            "lint",
            spec,
            "--ruleset",
            ROOT / ".spectral.yaml",
            "--fail-severity=hint",
            "--format=text",
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS,
        check=False,
    )


def test_spectral_oas_ruleset_finds_nothing_in_the_spec() -> None:
    result = spectral(SPEC)

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_clients_pages_spectral_line_runs_as_written() -> None:
    """docs/clients.md's `npm ci && npx spectral lint openapi.yaml`: .spectral.yaml, as found."""
    (block,) = shell_blocks(ROOT / "docs/clients.md", "tests/test_generated_clients.py")
    (command,) = command_lines(block)

    result = subprocess.run(
        ["bash", "-c", after_npm_ci(command, ROOT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SECONDS,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No results with a severity of 'error' found!" in result.stdout


def test_spectral_would_report_a_spec_without_a_contact(tmp_path: Path) -> None:
    spec = yaml.safe_load(SPEC.read_text())
    del spec["info"]["contact"]
    without_contact = tmp_path / "openapi.yaml"
    without_contact.write_text(yaml.safe_dump(spec))

    result = spectral(without_contact)

    assert result.returncode == 1
    assert "info-contact" in result.stdout
