"""Schemathesis against the running service on PostgreSQL, with every check and the spec's links.

Each operation gets explicit examples, coverage cases (boundaries, missing and wrong inputs,
undeclared methods) and fuzzed cases, positive and negative; then stateful workflows follow the
`links` in `openapi.yaml` (create a team, create a hero in it, read, patch with the ETag just
read, delete, read again: 404). The seed is fixed, so a run is reproducible. Before a release:

    SCHEMATHESIS_MAX_EXAMPLES=2000 uv run pytest tests/test_schemathesis.py
"""

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

import pytest
import schemathesis
import yaml
from schemathesis.auths import AuthContext
from schemathesis.config import PositiveDataAcceptanceConfig, SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.hooks import HookContext
from schemathesis.schemas import BaseSchema
from sqlalchemy import URL

from app import SPEC
from tests.backoffice_process import BackofficeServer, signed_server_environment
from tests.conftest import TEST_KEY, fresh_postgres_database
from tests.problem_assertions import assert_problem
from tests.schemathesis_signing import AnyCase, Signer
from tests.signed_client import SignedClient

if TYPE_CHECKING:
    from _pytest.capture import CaptureManager

SEED = 20261126
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "100"))
# Each stateful scenario is a chain of several requests.
STATEFUL_SCENARIOS = max(40, MAX_EXAMPLES // 5)
# The server stops itself after this long; a long run (2,000 examples: some 23,000 requests,
# 10 minutes on the 2-core machine) has ample time.
SERVER_SECONDS = max(900, 2 * MAX_EXAMPLES)
# Schema-valid data may still be refused because of what was sent before, which no schema can
# show: 409 (a duplicate name) is in Schemathesis's default list; 412 is an `If-Match` naming an
# ETag the resource no longer has (RFC 9110), and 422 an Idempotency-Key reused with another
# payload (the status the IETF idempotency-key draft gives it).
ACCEPTED_REFUSALS = PositiveDataAcceptanceConfig(
    expected_statuses=[*PositiveDataAcceptanceConfig().expected_statuses, "412", "422"]
)

signer = Signer(TEST_KEY)
cases_sent = {"operations": 0, "stateful": 0}


class SignedRequests:
    """Signs every case that Schemathesis means to authenticate, and no other."""

    def get(self, case: AnyCase, context: AuthContext) -> Signer:
        return signer

    def set(self, case: AnyCase, data: Signer, context: AuthContext) -> None:
        data.sign(case)


def load(*, phases: list[str], max_examples: int) -> BaseSchema:
    schema = schemathesis.openapi.from_path(SPEC, config=SchemathesisConfig(seed=SEED))
    schema.config.phases.update(phases=phases)
    # No example database: a run depends on the seed alone, not on what earlier runs found.
    schema.config.generation.update(max_examples=max_examples, database="none")
    schema.config.checks.positive_data_acceptance = ACCEPTED_REFUSALS
    schema.config.phases.stateful.checks.positive_data_acceptance = ACCEPTED_REFUSALS
    schema.config.phases.stateful.generation.update(max_examples=max_examples, database="none")
    # Caching off: every case is signed afresh, as each signature is accepted once. No retry on
    # 401: a request that this client signed must never be refused, so a 401 is a finding.
    schema.auth(refresh_interval=None, retry_on=[])(SignedRequests)
    return schema


schema = load(phases=["examples", "coverage", "fuzzing"], max_examples=MAX_EXAMPLES)
workflows = load(phases=["stateful"], max_examples=STATEFUL_SCENARIOS)


@schemathesis.hook
def before_call(context: HookContext, case: AnyCase, kwargs: dict[str, object]) -> None:
    """Re-sign at the last moment: stateful steps fill in link values after generation."""
    signer.resign(case)


@pytest.fixture(scope="module")
def live_api(
    postgres_server: URL, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    """`backoffice serve` on a fresh PostgreSQL database, validating its own responses."""
    database = fresh_postgres_database(postgres_server)
    url = next(database).render_as_string(hide_password=False)
    environment = signed_server_environment(url, TEST_KEY, APP_VALIDATE_RESPONSES="true")
    log = tmp_path_factory.mktemp("schemathesis") / "server.log"
    try:
        with BackofficeServer(environment, log, lifetime_seconds=SERVER_SECONDS) as server:
            signer.base_url = server.url
            yield server.url
    finally:
        next(database, None)  # past its `yield`: drops the database
    capture = cast("CaptureManager", request.config.pluginmanager.getplugin("capturemanager"))
    with capture.global_and_fixture_disabled():
        print(
            f"\nschemathesis: {cases_sent['operations']} cases over the operations, "
            f"{cases_sent['stateful']} in stateful workflows "
            f"(seed {SEED}, max examples {MAX_EXAMPLES}, {STATEFUL_SCENARIOS} workflow runs)"
        )


@schema.parametrize()  # pyright: ignore[reportUntypedFunctionDecorator]
def test_every_operation_honours_the_contract(case: AnyCase, live_api: str) -> None:
    cases_sent["operations"] += 1
    case.call_and_validate(base_url=live_api)


def run_stateful_phase() -> list[events.ScenarioFinished]:
    """Schemathesis's own engine, as its CLI runs it, with the stateful phase alone.

    The engine rather than a bare Hypothesis state machine: a live database answers a replayed
    step differently, which the engine expects and a bare state machine reports as flaky.
    """
    scenarios: list[events.ScenarioFinished] = []
    for event in from_schema(workflows).execute():
        if isinstance(event, events.ScenarioFinished) and event.is_test_scenario:
            scenarios.append(event)
        elif isinstance(event, events.NonFatalError):
            raise AssertionError(f"schemathesis could not run: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    return scenarios


def failures_in(scenario: events.ScenarioFinished) -> list[str]:
    return [
        f"{check.name}: {check.failure_info.failure.title}\n{check.failure_info.code_sample}"
        for checks in scenario.recorder.checks.values()
        for check in checks
        if check.status == Status.FAILURE and check.failure_info is not None
    ]


def test_workflows_through_links_honour_the_contract(live_api: str) -> None:
    workflows.config.update(base_url=live_api)

    scenarios = run_stateful_phase()

    cases_sent["stateful"] = sum(len(scenario.recorder.cases) for scenario in scenarios)
    assert [failure for scenario in scenarios for failure in failures_in(scenario)] == []
    assert cases_sent["stateful"] > 0


# What the checks above cannot see: Schemathesis accepts a 405 whose `Allow` is empty, and
# always sends a Content-Type with a body. Both once slipped through; these pin them.


PATHS: dict[str, dict[str, object]] = yaml.safe_load(SPEC.read_text())["paths"]


@pytest.mark.parametrize("path", list(PATHS))
def test_an_undeclared_method_gives_405_allowing_exactly_the_declared_ones(
    pg_client: SignedClient, path: str
) -> None:
    declared = {method.upper() for method in PATHS[path] if method != "parameters"}
    target = path.replace("{hero_id}", "1").replace("{team_id}", "1")

    response = pg_client.request("PUT", target)

    assert_problem(response, 405, f"PUT is not supported on {target}")
    assert set(response.headers["allow"].split(", ")) == declared | {"HEAD"}


@pytest.mark.parametrize(("method", "path"), [("POST", "/api/teams"), ("PATCH", "/api/teams/1")])
def test_a_body_without_a_content_type_gives_415(
    pg_client: SignedClient, method: str, path: str
) -> None:
    response = pg_client.request(method, path, content=b'{"name": "Preventers"}')

    detail = "the request body has no Content-Type: send it as application/json"
    assert_problem(response, 415, detail)
