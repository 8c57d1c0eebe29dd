"""The breaking-change check: a table of real changes to a spec, each classified as it should be."""

import copy
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import SPEC
from settings import ROOT
from tools import spec_diff

type Spec = dict[str, Any]

BASE: Spec = yaml.safe_load("""
openapi: 3.0.3
info: {title: Heroes, version: 1.0.0}
paths:
  /api/heroes:
    get:
      operationId: list_heroes
      parameters:
        - $ref: '#/components/parameters/Limit'
        - {name: name, in: query, schema: {$ref: '#/components/schemas/Name'}}
      responses:
        '200':
          description: A page.
          content:
            application/json:
              schema:
                type: object
                required: [items]
                properties:
                  items: {type: array, items: {$ref: '#/components/schemas/Hero'}}
    post:
      operationId: create_hero
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/HeroCreate'}
      responses:
        '201':
          description: Created.
          headers:
            ETag: {schema: {type: string}}
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Hero'}
        '400': {description: Bad request.}
  /api/heroes/{hero_id}:
    parameters:
      - {name: hero_id, in: path, required: true, schema: {type: integer}}
    patch:
      operationId: update_hero
      parameters:
        - {name: If-Match, in: header, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/merge-patch+json:
            schema: {$ref: '#/components/schemas/HeroPatch'}
          application/json:
            schema: {$ref: '#/components/schemas/HeroPatch'}
      responses:
        '200':
          description: Updated.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Hero'}
    delete:
      operationId: delete_hero
      responses:
        '204': {description: Deleted.}
components:
  parameters:
    Limit:
      name: limit
      in: query
      schema: {type: integer, minimum: 1, maximum: 500}
  schemas:
    Name: {type: string, minLength: 1, maxLength: 100}
    Hero:
      type: object
      required: [id, name, age, rank]
      properties:
        id: {allOf: [{type: integer}], readOnly: true}
        name: {$ref: '#/components/schemas/Name'}
        age: {type: integer, nullable: true}
        rank: {type: string, enum: [rookie, veteran]}
    HeroCreate:
      type: object
      required: [name]
      additionalProperties: false
      properties:
        name: {$ref: '#/components/schemas/Name'}
        age: {type: integer, minimum: 0, nullable: true}
        rank: {type: string, enum: [rookie, veteran]}
    HeroPatch:
      type: object
      additionalProperties: false
      properties:
        name: {$ref: '#/components/schemas/Name'}
        age: {type: integer, minimum: 0, nullable: true}
""")

HEROES = "/api/heroes"
HERO = "/api/heroes/{hero_id}"
JSON = "application/json"


def schemas(spec: Spec) -> dict[str, Any]:
    return spec["components"]["schemas"]


def remove_operation(spec: Spec) -> None:
    del spec["paths"][HERO]["delete"]


def remove_response_field(spec: Spec) -> None:
    del schemas(spec)["Hero"]["properties"]["age"]
    schemas(spec)["Hero"]["required"].remove("age")


def response_field_no_longer_required(spec: Spec) -> None:
    schemas(spec)["Hero"]["required"].remove("rank")


def narrow_request_type(spec: Spec) -> None:
    schemas(spec)["HeroCreate"]["properties"]["age"]["nullable"] = False


def narrow_request_enum(spec: Spec) -> None:
    schemas(spec)["HeroCreate"]["properties"]["rank"]["enum"] = ["rookie"]


def lower_a_maximum(spec: Spec) -> None:
    spec["components"]["parameters"]["Limit"]["schema"]["maximum"] = 100


def add_a_pattern(spec: Spec) -> None:
    schemas(spec)["HeroPatch"]["properties"]["name"] = {"type": "string", "pattern": "^[A-Z]"}


def add_required_parameter(spec: Spec) -> None:
    spec["paths"][HEROES]["get"]["parameters"].append(
        {"name": "team_id", "in": "query", "required": True, "schema": {"type": "integer"}}
    )


def make_parameter_required(spec: Spec) -> None:
    spec["paths"][HERO]["patch"]["parameters"][0]["required"] = True


def remove_query_parameter(spec: Spec) -> None:
    del spec["paths"][HEROES]["get"]["parameters"][1]


def add_required_body_field(spec: Spec) -> None:
    schemas(spec)["HeroCreate"]["properties"]["secret_name"] = {"type": "string"}
    schemas(spec)["HeroCreate"]["required"].append("secret_name")


def remove_request_field_refusing_unknown_ones(spec: Spec) -> None:
    del schemas(spec)["HeroPatch"]["properties"]["age"]


def stop_accepting_a_media_type(spec: Spec) -> None:
    del spec["paths"][HERO]["patch"]["requestBody"]["content"][JSON]


def return_a_new_enum_value(spec: Spec) -> None:
    schemas(spec)["Hero"]["properties"]["rank"]["enum"].append("legend")


def make_response_field_nullable(spec: Spec) -> None:
    schemas(spec)["Hero"]["properties"]["rank"]["nullable"] = True


def change_response_field_type(spec: Spec) -> None:
    schemas(spec)["Hero"]["properties"]["age"]["type"] = "string"


def remove_response_header(spec: Spec) -> None:
    del spec["paths"][HEROES]["post"]["responses"]["201"]["headers"]


def remove_success_response(spec: Spec) -> None:
    del spec["paths"][HEROES]["post"]["responses"]["201"]


BREAKING: list[tuple[Callable[[Spec], None], list[str]]] = [
    (remove_operation, [f"DELETE {HERO}: operation removed"]),
    (
        remove_response_field,
        [
            f"GET {HEROES} response 200 ({JSON}) property 'items'[] property 'age': removed",
            f"PATCH {HERO} response 200 ({JSON}) property 'age': removed",
            f"POST {HEROES} response 201 ({JSON}) property 'age': removed",
        ],
    ),
    (
        response_field_no_longer_required,
        [
            f"GET {HEROES} response 200 ({JSON}) property 'items'[] property 'rank': "
            "no longer always present",
            f"PATCH {HERO} response 200 ({JSON}) property 'rank': no longer always present",
            f"POST {HEROES} response 201 ({JSON}) property 'rank': no longer always present",
        ],
    ),
    (
        narrow_request_type,
        [f"POST {HEROES} request body ({JSON}) property 'age': type integer|null -> integer"],
    ),
    (
        narrow_request_enum,
        [
            f"POST {HEROES} request body ({JSON}) property 'rank': "
            "enum narrowed: ['veteran'] refused"
        ],
    ),
    (lower_a_maximum, [f"GET {HEROES} query parameter 'limit': maximum 500 -> 100"]),
    (
        add_a_pattern,
        [
            f"PATCH {HERO} request body (application/merge-patch+json) property 'name': "
            "pattern None -> '^[A-Z]'",
            f"PATCH {HERO} request body ({JSON}) property 'name': pattern None -> '^[A-Z]'",
        ],
    ),
    (add_required_parameter, [f"GET {HEROES} query parameter 'team_id': added, required"]),
    (make_parameter_required, [f"PATCH {HERO} header parameter 'If-Match': now required"]),
    (
        remove_query_parameter,
        [f"GET {HEROES} query parameter 'name': removed (clients sending it are refused)"],
    ),
    (
        add_required_body_field,
        [f"POST {HEROES} request body ({JSON}) property 'secret_name': added, required"],
    ),
    (
        remove_request_field_refusing_unknown_ones,
        [
            f"PATCH {HERO} request body (application/merge-patch+json) property 'age': removed",
            f"PATCH {HERO} request body ({JSON}) property 'age': removed",
        ],
    ),
    (stop_accepting_a_media_type, [f"PATCH {HERO} request body: {JSON} no longer accepted"]),
    (
        return_a_new_enum_value,
        [
            f"GET {HEROES} response 200 ({JSON}) property 'items'[] property 'rank': "
            "may now return ['legend']",
            f"PATCH {HERO} response 200 ({JSON}) property 'rank': may now return ['legend']",
            f"POST {HEROES} response 201 ({JSON}) property 'rank': may now return ['legend']",
        ],
    ),
    (
        make_response_field_nullable,
        [
            f"GET {HEROES} response 200 ({JSON}) property 'items'[] property 'rank': "
            "type string -> null|string",
            f"PATCH {HERO} response 200 ({JSON}) property 'rank': type string -> null|string",
            f"POST {HEROES} response 201 ({JSON}) property 'rank': type string -> null|string",
        ],
    ),
    (
        change_response_field_type,
        [
            f"GET {HEROES} response 200 ({JSON}) property 'items'[] property 'age': "
            "type integer|null -> null|string",
            f"PATCH {HERO} response 200 ({JSON}) property 'age': type integer|null -> null|string",
            f"POST {HEROES} response 201 ({JSON}) property 'age': type integer|null -> null|string",
        ],
    ),
    (remove_response_header, [f"POST {HEROES} response 201: header ETag removed"]),
    (remove_success_response, [f"POST {HEROES} response 201: removed"]),
]


def add_operation(spec: Spec) -> None:
    spec["paths"][HERO]["get"] = {"responses": {"200": {"description": "The hero."}}}


def add_optional_body_field(spec: Spec) -> None:
    schemas(spec)["HeroCreate"]["properties"]["motto"] = {"type": "string"}


def add_response_field(spec: Spec) -> None:
    schemas(spec)["Hero"]["properties"]["motto"] = {"type": "string"}


def add_optional_parameter(spec: Spec) -> None:
    spec["paths"][HEROES]["get"]["parameters"].append(
        {"name": "team_id", "in": "query", "schema": {"type": "integer"}}
    )


def raise_a_maximum(spec: Spec) -> None:
    spec["components"]["parameters"]["Limit"]["schema"]["maximum"] = 1000


def widen_request_enum(spec: Spec) -> None:
    schemas(spec)["HeroCreate"]["properties"]["rank"]["enum"].append("legend")


def narrow_what_a_response_holds(spec: Spec) -> None:
    schemas(spec)["Hero"]["properties"]["age"]["nullable"] = False


def rename_a_path_parameter(spec: Spec) -> None:
    item = spec["paths"].pop(HERO)
    item["parameters"][0]["name"] = "id"
    spec["paths"]["/api/heroes/{id}"] = item


def add_an_error_response(spec: Spec) -> None:
    spec["paths"][HERO]["delete"]["responses"]["404"] = {"description": "Not found."}


NOT_BREAKING: list[tuple[Callable[[Spec], None], list[str]]] = [
    (add_operation, [f"GET {HERO}: operation added"]),
    (add_optional_body_field, [f"POST {HEROES} request body ({JSON}) property 'motto': added"]),
    (
        add_response_field,
        [
            f"GET {HEROES} response 200 ({JSON}) property 'items'[] property 'motto': added",
            f"PATCH {HERO} response 200 ({JSON}) property 'motto': added",
            f"POST {HEROES} response 201 ({JSON}) property 'motto': added",
        ],
    ),
    (add_optional_parameter, [f"GET {HEROES} query parameter 'team_id': added"]),
    (raise_a_maximum, []),
    (widen_request_enum, [f"POST {HEROES} request body ({JSON}) property 'rank': enum widened"]),
    (narrow_what_a_response_holds, []),
    (rename_a_path_parameter, []),
    (add_an_error_response, [f"DELETE {HERO} response 404: added"]),
]


def case_name(value: object) -> str:
    return getattr(value, "__name__", "")


def changed(mutate: Callable[[Spec], None]) -> list[spec_diff.Change]:
    head = copy.deepcopy(BASE)
    mutate(head)
    return spec_diff.diff(BASE, head)


@pytest.mark.parametrize(("mutate", "expected"), BREAKING, ids=case_name)
def test_a_breaking_change_is_reported_as_breaking(
    mutate: Callable[[Spec], None], expected: list[str]
) -> None:
    changes = changed(mutate)

    assert sorted(f"{change.where}: {change.what}" for change in changes) == sorted(expected)
    assert all(change.breaking for change in changes)


@pytest.mark.parametrize(("mutate", "expected"), NOT_BREAKING, ids=case_name)
def test_a_compatible_change_is_listed_but_not_breaking(
    mutate: Callable[[Spec], None], expected: list[str]
) -> None:
    changes = changed(mutate)

    assert sorted(f"{change.where}: {change.what}" for change in changes) == sorted(expected)
    assert not any(change.breaking for change in changes)


def test_the_real_spec_compared_with_itself_has_no_changes() -> None:
    spec = yaml.safe_load(SPEC.read_text())

    assert spec_diff.diff(spec, copy.deepcopy(spec)) == []


def git(repository: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repository,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository whose main has the base spec, and a branch off it."""
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "openapi.yaml").write_text(yaml.safe_dump(BASE))
    git(tmp_path, "add", "openapi.yaml")
    git(tmp_path, "commit", "-q", "-m", "base")
    git(tmp_path, "checkout", "-q", "-b", "feature")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def edit(repository: Path, mutate: Callable[[Spec], None]) -> None:
    head = copy.deepcopy(BASE)
    mutate(head)
    (repository / "openapi.yaml").write_text(yaml.safe_dump(head))


def test_the_command_fails_on_a_breaking_change_since_the_merge_base(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(repository, remove_operation)

    assert spec_diff.main([]) == 1
    assert capsys.readouterr().out.splitlines()[1:3] == [
        f"  BREAKING  DELETE {HERO}: operation removed",
        "1 breaking change(s): keep the old behaviour alongside the new, or make the break "
        "deliberate (--allow-breaking, and say so in the review)",
    ]


def test_the_command_passes_a_breaking_change_made_deliberate(repository: Path) -> None:
    edit(repository, remove_operation)

    assert spec_diff.main(["--allow-breaking"]) == 0


def test_the_command_passes_compatible_changes(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(repository, add_optional_body_field)

    assert spec_diff.main(["--base", "main"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "openapi.yaml: main -> working tree: 1 change(s)",
        f"  ok        POST {HEROES} request body ({JSON}) property 'motto': added",
    ]


def test_on_main_the_command_compares_with_the_previous_commit(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(repository, "checkout", "-q", "main")
    edit(repository, remove_operation)
    git(repository, "commit", "-q", "-am", "remove an operation")

    assert spec_diff.main([]) == 1
    assert (
        capsys.readouterr().out.splitlines()[0]
        == "openapi.yaml: HEAD~ -> working tree: 1 change(s)"
    )


def test_every_base_the_readme_shows_is_a_revision_a_clone_has() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    bases = re.findall(r"spec_diff --base (\S+)", readme)

    assert bases
    for base in bases:
        found = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        assert found.returncode == 0, f"the README's `spec_diff --base {base}` names no revision"
