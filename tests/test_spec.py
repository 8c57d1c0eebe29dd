"""The contract itself: a valid OpenAPI 3.0 document that passes the project's Redocly lint."""

import copy
import os
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from openapi_spec_validator import validate

from app import SPEC
from contract.problems import HTTP_METHODS
from handlers import OPERATIONS, handler_of
from settings import ROOT
from tests.markdown_docs import command_lines, shell_blocks
from tests.node_packages import after_npm_ci, npm_ci
from tests.signed_client import SignedClient

LINT_SECONDS = 120


@pytest.fixture(scope="module")
def redocly() -> Path:
    return npm_ci(ROOT) / "redocly"


def lint(redocly: Path, spec: Path) -> dict[str, Any]:
    result = subprocess.run(
        [redocly, "lint", spec, "--config", ROOT / "redocly.yaml", "--format=json"],
        capture_output=True,
        timeout=LINT_SECONDS,
        env={**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"},
        check=False,
    )
    report: dict[str, Any] = orjson.loads(result.stdout)
    assert result.returncode == (1 if report["totals"]["errors"] else 0)
    return report


def load_spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC.read_text())


def test_openapi_yaml_is_a_valid_openapi_3_0_document() -> None:
    spec = load_spec()

    validate(spec)

    assert spec["openapi"].startswith("3.0.")


def test_openapi_yaml_passes_the_lint_without_a_finding(redocly: Path) -> None:
    report = lint(redocly, SPEC)

    assert report["problems"] == []


def test_the_lint_refuses_what_the_contract_promises_never_to_have(
    redocly: Path, tmp_path: Path
) -> None:
    spec = copy.deepcopy(load_spec())
    heroes = spec["paths"]["/api/heroes"]
    heroes["post"]["operationId"] = heroes["get"]["operationId"]
    spec["paths"]["/api/teams"]["get"]["operationId"] = "handlers.teams.list_teams"
    del heroes["get"]["description"]
    heroes["get"]["responses"] = {"200": heroes["get"]["responses"]["200"]}
    del heroes["post"]["requestBody"]["content"]["application/json"]["examples"]
    spec["components"]["schemas"]["Unused"] = {"type": "string", "example": "x"}
    broken = tmp_path / "openapi.yaml"
    broken.write_text(yaml.safe_dump(spec))

    report = lint(redocly, broken)

    assert {problem["ruleId"] for problem in report["problems"]} == {
        "operation-operationId-unique",
        "rule/operation-id-camel-case",
        "operation-description",
        "operation-4xx-response",
        "rule/request-body-example",
        "no-unused-components",
    }


def test_the_contract_pages_lint_line_runs_as_written() -> None:
    """docs/contract.md's `npm ci && npm run lint:spec`, the script package.json defines."""
    (block,) = shell_blocks(ROOT / "docs/contract.md", "tests/test_spec.py")
    (command,) = command_lines(block)

    result = subprocess.run(
        ["bash", "-c", after_npm_ci(command, ROOT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=LINT_SECONDS,
        env={**os.environ, "REDOCLY_TELEMETRY": "off"},
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Woohoo! Your API description is valid." in result.stdout + result.stderr


def test_every_operation_id_is_served_by_the_one_table_of_handlers() -> None:
    operation_ids = {
        operation["operationId"]
        for item in load_spec()["paths"].values()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }

    assert operation_ids == set(OPERATIONS)


def test_an_operation_id_the_table_lacks_stops_the_app_naming_it() -> None:
    with pytest.raises(LookupError) as refused:
        handler_of("handlers.heroes.list_heroes")

    assert str(refused.value) == (
        "openapi.yaml names operationId 'handlers.heroes.list_heroes', which no handler in "
        "handlers/__init__.py serves"
    )


def test_the_served_document_passes_the_lint_as_the_file_does(
    redocly: Path, tmp_path: Path, client: SignedClient
) -> None:
    """A frontend generates from the served document as readily as from the file."""
    served = tmp_path / "openapi.json"
    served.write_bytes(client.raw.get("/openapi.json").content)

    report = lint(redocly, served)

    assert report["problems"] == []
