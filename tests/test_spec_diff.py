"""The contract diff: real changes to a spec, each listed and classified as a reviewer would."""

import copy
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from settings import ROOT
from tools import spec_diff
from tools.spec_diff import Kind

type Spec = dict[str, Any]
type Edit = Callable[[Spec], None]

BASE: Spec = yaml.safe_load("""
openapi: 3.0.3
info: {title: Heroes, version: 1.0.0}
servers:
  - {url: 'http://127.0.0.1:8000'}
  - {url: /}
tags:
  - {name: heroes, description: Heroes.}
security:
  - messageSignature: []
  - {signature: [], timestamp: []}
paths:
  /api/heroes:
    get:
      operationId: list_heroes
      tags: [heroes]
      description: A page of heroes.
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
      tags: [heroes]
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
        '409': {description: Conflict.}
  /api/heroes/{hero_id}:
    parameters:
      - {name: hero_id, in: path, required: true, schema: {type: integer}}
    patch:
      operationId: update_hero
      tags: [heroes]
      parameters:
        - {name: If-Match, in: header, schema: {type: string}, example: '"3"'}
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
      tags: [heroes]
      responses:
        '204': {description: Deleted.}
  /health:
    get:
      operationId: health
      security: []
      responses:
        '200':
          description: Alive.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Liveness'}
components:
  securitySchemes:
    messageSignature: {type: apiKey, in: header, name: Signature}
    signature: {type: apiKey, in: header, name: x-signature}
    timestamp: {type: apiKey, in: header, name: x-timestamp}
  parameters:
    Limit:
      name: limit
      in: query
      schema: {type: integer, minimum: 1, maximum: 500, default: 50}
  schemas:
    Name: {type: string, minLength: 1, maxLength: 100}
    Hero:
      type: object
      description: A hero.
      required: [id, name, age, rank]
      properties:
        id: {allOf: [{type: integer}], readOnly: true}
        name: {$ref: '#/components/schemas/Name'}
        age: {type: integer, nullable: true}
        rank: {type: string, enum: [rookie, veteran]}
        nickname: {type: string, maxLength: 50}
    HeroCreate:
      type: object
      required: [name]
      additionalProperties: false
      properties:
        name: {$ref: '#/components/schemas/Name'}
        age: {type: integer, minimum: 0, nullable: true}
        rank: {type: string, enum: [rookie, veteran], default: rookie}
    HeroPatch:
      type: object
      additionalProperties: false
      properties:
        name: {$ref: '#/components/schemas/Name'}
        age: {type: integer, minimum: 0, nullable: true}
    Liveness:
      type: object
      required: [status]
      additionalProperties: false
      properties:
        status: {type: string, enum: [ok]}
""")

HEROES = "GET /api/heroes"
CREATE = "POST /api/heroes"
PATCH = "PATCH /api/heroes/{hero_id}"
DELETE = "DELETE /api/heroes/{hero_id}"
JSON = "application/json"
MERGE = "application/merge-patch+json"
LIST_ITEM = f"{HEROES} > response 200 > {JSON} > items[]"
CREATED = f"{CREATE} > response 201 > {JSON}"
PATCHED = f"{PATCH} > response 200 > {JSON}"
CREATE_BODY = f"{CREATE} > request body > {JSON}"


def paths(spec: Spec) -> dict[str, Any]:
    return spec["paths"]


def schemas(spec: Spec) -> dict[str, Any]:
    return spec["components"]["schemas"]


def hero(spec: Spec) -> dict[str, Any]:
    return schemas(spec)["Hero"]["properties"]


def hero_create(spec: Spec) -> dict[str, Any]:
    return schemas(spec)["HeroCreate"]["properties"]


def limit(spec: Spec) -> dict[str, Any]:
    return spec["components"]["parameters"]["Limit"]


def list_heroes(spec: Spec) -> dict[str, Any]:
    return paths(spec)["/api/heroes"]["get"]


def create_hero(spec: Spec) -> dict[str, Any]:
    return paths(spec)["/api/heroes"]["post"]


def update_hero(spec: Spec) -> dict[str, Any]:
    return paths(spec)["/api/heroes/{hero_id}"]["patch"]


def changed(edit: Edit) -> list[spec_diff.Change]:
    head = copy.deepcopy(BASE)
    edit(head)
    return spec_diff.diff(BASE, head)


def lines(changes: list[spec_diff.Change]) -> list[str]:
    return sorted(change.line for change in changes)


# The first table: exact lines, for the changes the tool has always judged ----------------------


def remove_operation(spec: Spec) -> None:
    del paths(spec)["/api/heroes/{hero_id}"]["delete"]


def remove_response_field(spec: Spec) -> None:
    del hero(spec)["age"]
    schemas(spec)["Hero"]["required"].remove("age")


def response_field_no_longer_required(spec: Spec) -> None:
    schemas(spec)["Hero"]["required"].remove("rank")


def narrow_request_type(spec: Spec) -> None:
    hero_create(spec)["age"]["nullable"] = False


def narrow_request_enum(spec: Spec) -> None:
    hero_create(spec)["rank"]["enum"] = ["rookie"]


def lower_a_maximum(spec: Spec) -> None:
    limit(spec)["schema"]["maximum"] = 100


def add_a_pattern(spec: Spec) -> None:
    schemas(spec)["HeroPatch"]["properties"]["name"] = {
        "type": "string",
        "minLength": 1,
        "maxLength": 100,
        "pattern": "^[A-Z]",
    }


def add_required_parameter(spec: Spec) -> None:
    list_heroes(spec)["parameters"].append(
        {"name": "team_id", "in": "query", "required": True, "schema": {"type": "integer"}}
    )


def make_parameter_required(spec: Spec) -> None:
    update_hero(spec)["parameters"][0]["required"] = True


def remove_query_parameter(spec: Spec) -> None:
    del list_heroes(spec)["parameters"][1]


def add_required_body_field(spec: Spec) -> None:
    hero_create(spec)["secret_name"] = {"type": "string"}
    schemas(spec)["HeroCreate"]["required"].append("secret_name")


def remove_request_field_refusing_unknown_ones(spec: Spec) -> None:
    del schemas(spec)["HeroPatch"]["properties"]["age"]


def stop_accepting_a_media_type(spec: Spec) -> None:
    del update_hero(spec)["requestBody"]["content"][JSON]


def return_a_new_enum_value(spec: Spec) -> None:
    hero(spec)["rank"]["enum"].append("legend")


def make_response_field_nullable(spec: Spec) -> None:
    hero(spec)["rank"]["nullable"] = True


def change_response_field_type(spec: Spec) -> None:
    hero(spec)["age"]["type"] = "string"


def remove_response_header(spec: Spec) -> None:
    del create_hero(spec)["responses"]["201"]["headers"]


def remove_success_response(spec: Spec) -> None:
    del create_hero(spec)["responses"]["201"]


def in_each_hero_response(what: str) -> list[str]:
    return [f"{LIST_ITEM} > {what}", f"{PATCHED} > {what}", f"{CREATED} > {what}"]


BREAKING: list[tuple[Edit, list[str]]] = [
    (remove_operation, [f"{DELETE}: operation removed"]),
    (remove_response_field, in_each_hero_response("age: removed")),
    (response_field_no_longer_required, in_each_hero_response("rank: no longer always present")),
    (narrow_request_type, [f"{CREATE_BODY} > age: type integer|null -> integer"]),
    (narrow_request_enum, [f'{CREATE_BODY} > rank: enum: ["veteran"] now refused']),
    (lower_a_maximum, [f"{HEROES} > query parameter limit: maximum 500 -> 100"]),
    (
        add_a_pattern,
        [
            f"{PATCH} > request body > {MERGE} > name: pattern none -> '^[A-Z]'",
            f"{PATCH} > request body > {JSON} > name: pattern none -> '^[A-Z]'",
        ],
    ),
    (add_required_parameter, [f"{HEROES} > query parameter team_id: added, required"]),
    (make_parameter_required, [f"{PATCH} > header parameter If-Match: now required"]),
    (remove_query_parameter, [f"{HEROES} > query parameter name: removed"]),
    (add_required_body_field, [f"{CREATE_BODY} > secret_name: added, required"]),
    (
        remove_request_field_refusing_unknown_ones,
        [
            f"{PATCH} > request body > {MERGE} > age: removed",
            f"{PATCH} > request body > {JSON} > age: removed",
        ],
    ),
    (stop_accepting_a_media_type, [f"{PATCH} > request body: {JSON} no longer accepted"]),
    (return_a_new_enum_value, in_each_hero_response('rank: enum: may now return ["legend"]')),
    (make_response_field_nullable, in_each_hero_response("rank: type string -> null|string")),
    (
        change_response_field_type,
        in_each_hero_response("age: type integer|null -> null|string"),
    ),
    (remove_response_header, [f"{CREATE} > response 201 > header ETag: removed"]),
    (remove_success_response, [f"{CREATE} > response 201: removed"]),
]


def add_operation(spec: Spec) -> None:
    paths(spec)["/api/heroes/{hero_id}"]["get"] = {
        "responses": {"200": {"description": "The hero."}}
    }


def add_optional_body_field(spec: Spec) -> None:
    hero_create(spec)["motto"] = {"type": "string"}


def add_response_field(spec: Spec) -> None:
    hero(spec)["motto"] = {"type": "string"}


def add_optional_parameter(spec: Spec) -> None:
    list_heroes(spec)["parameters"].append(
        {"name": "team_id", "in": "query", "schema": {"type": "integer"}}
    )


def raise_a_maximum(spec: Spec) -> None:
    limit(spec)["schema"]["maximum"] = 1000


def widen_request_enum(spec: Spec) -> None:
    hero_create(spec)["rank"]["enum"].append("legend")


def narrow_what_a_response_holds(spec: Spec) -> None:
    hero(spec)["age"]["nullable"] = False


def add_an_error_response(spec: Spec) -> None:
    paths(spec)["/api/heroes/{hero_id}"]["delete"]["responses"]["404"] = {
        "description": "Not found."
    }


NOT_BREAKING: list[tuple[Edit, list[str]]] = [
    (add_operation, ["GET /api/heroes/{hero_id}: operation added"]),
    (add_optional_body_field, [f"{CREATE_BODY} > motto: added"]),
    (add_response_field, in_each_hero_response("motto: added")),
    (add_optional_parameter, [f"{HEROES} > query parameter team_id: added"]),
    (raise_a_maximum, [f"{HEROES} > query parameter limit: maximum 500 -> 1000"]),
    (widen_request_enum, [f'{CREATE_BODY} > rank: enum: ["legend"] now accepted']),
    (narrow_what_a_response_holds, in_each_hero_response("age: type integer|null -> integer")),
    (add_an_error_response, [f"{DELETE} > response 404: added"]),
]


def case_name(value: object) -> str:
    return getattr(value, "__name__", "")


@pytest.mark.parametrize(("edit", "expected"), BREAKING, ids=case_name)
def test_a_breaking_change_is_reported_as_breaking_callers(edit: Edit, expected: list[str]) -> None:
    changes = changed(edit)

    assert lines(changes) == sorted(expected)
    assert {change.kind for change in changes} == {Kind.WIRE}


@pytest.mark.parametrize(("edit", "expected"), NOT_BREAKING, ids=case_name)
def test_a_compatible_change_is_listed_but_not_breaking(edit: Edit, expected: list[str]) -> None:
    changes = changed(edit)

    assert lines(changes) == sorted(expected)
    assert {change.kind for change in changes} == {Kind.COMPATIBLE}


# The catalogue: edits a reviewer meets, labelled with whom they break before the tool ran -------


def rename_path(spec: Spec) -> None:
    paths(spec)["/api/people"] = paths(spec).pop("/api/heroes")


def deprecate_operation(spec: Spec) -> None:
    list_heroes(spec)["deprecated"] = True


def rename_query_parameter(spec: Spec) -> None:
    list_heroes(spec)["parameters"][1]["name"] = "hero_name"


def change_parameter_default(spec: Spec) -> None:
    limit(spec)["schema"]["default"] = 20


def give_parameter_a_default(spec: Spec) -> None:
    list_heroes(spec)["parameters"][1]["schema"] = {"type": "string", "default": "Deadpond"}


def change_parameter_style(spec: Spec) -> None:
    limit(spec)["style"] = "spaceDelimited"


def rename_path_parameter(spec: Spec) -> None:
    item = paths(spec).pop("/api/heroes/{hero_id}")
    item["parameters"][0]["name"] = "id"
    paths(spec)["/api/heroes/{id}"] = item


def bound_path_parameter(spec: Spec) -> None:
    paths(spec)["/api/heroes/{hero_id}"]["parameters"][0]["schema"]["minimum"] = 1


def change_header_name_case(spec: Spec) -> None:
    update_hero(spec)["parameters"][0]["name"] = "if-match"


def add_response_header(spec: Spec) -> None:
    create_hero(spec)["responses"]["201"]["headers"]["Location"] = {"schema": {"type": "string"}}


def change_response_header_type(spec: Spec) -> None:
    create_hero(spec)["responses"]["201"]["headers"]["ETag"]["schema"]["type"] = "integer"


def require_request_property(spec: Spec) -> None:
    schemas(spec)["HeroCreate"]["required"].append("age")


def relax_request_property(spec: Spec) -> None:
    schemas(spec)["HeroCreate"]["required"].remove("name")


def change_request_property_default(spec: Spec) -> None:
    hero_create(spec)["rank"]["default"] = "veteran"


def accept_unknown_request_properties(spec: Spec) -> None:
    del schemas(spec)["HeroCreate"]["additionalProperties"]


def add_property_to_closed_response(spec: Spec) -> None:
    schemas(spec)["Liveness"]["properties"]["version"] = {"type": "string"}


def lengthen_response_field(spec: Spec) -> None:
    hero(spec)["nickname"]["maxLength"] = 80


def drop_response_bound(spec: Spec) -> None:
    del hero(spec)["nickname"]["maxLength"]


def shorten_response_field(spec: Spec) -> None:
    hero(spec)["nickname"]["maxLength"] = 40


def raise_request_minimum(spec: Spec) -> None:
    hero_create(spec)["age"]["minimum"] = 18


def drop_response_enum_value(spec: Spec) -> None:
    hero(spec)["rank"]["enum"].remove("veteran")


def widen_request_type(spec: Spec) -> None:
    hero_create(spec)["age"]["type"] = "number"


def add_response_format(spec: Spec) -> None:
    hero(spec)["nickname"]["format"] = "email"


def accept_another_media_type(spec: Spec) -> None:
    create_hero(spec)["requestBody"]["content"]["application/x-www-form-urlencoded"] = {
        "schema": {"$ref": "#/components/schemas/HeroCreate"}
    }


def drop_response_media_type(spec: Spec) -> None:
    content = create_hero(spec)["responses"]["201"]["content"]
    content["application/hal+json"] = content.pop(JSON)


def remove_error_response(spec: Spec) -> None:
    del create_hero(spec)["responses"]["409"]


def add_success_status(spec: Spec) -> None:
    create_hero(spec)["responses"]["202"] = {"description": "Accepted, created later."}


def drop_v1_signature(spec: Spec) -> None:
    spec["security"] = [{"messageSignature": []}]


def accept_bearer_tokens(spec: Spec) -> None:
    spec["components"]["securitySchemes"]["bearer"] = {"type": "http", "scheme": "bearer"}
    spec["security"].append({"bearer": []})


def sign_the_health_probe(spec: Spec) -> None:
    del paths(spec)["/health"]["get"]["security"]


def rename_signature_header(spec: Spec) -> None:
    spec["components"]["securitySchemes"]["signature"]["name"] = "X-Sig"


def rename_security_scheme(spec: Spec) -> None:
    schemes = spec["components"]["securitySchemes"]
    schemes["v1Signature"] = schemes.pop("signature")
    spec["security"][1] = {"v1Signature": [], "timestamp": []}


def rename_operation_id(spec: Spec) -> None:
    list_heroes(spec)["operationId"] = "listHeroes"


def rename_component_schema(spec: Spec) -> None:
    schemas(spec)["Person"] = schemas(spec).pop("Hero")
    text = yaml.safe_dump(spec).replace(
        "#/components/schemas/Hero'", "#/components/schemas/Person'"
    )
    spec.clear()
    spec.update(yaml.safe_load(text))


def move_operation_to_another_tag(spec: Spec) -> None:
    list_heroes(spec)["tags"] = ["people"]


def name_an_inline_schema(spec: Spec) -> None:
    content = list_heroes(spec)["responses"]["200"]["content"][JSON]
    schemas(spec)["HeroPage"] = content["schema"]
    content["schema"] = {"$ref": "#/components/schemas/HeroPage"}


def describe_operation_anew(spec: Spec) -> None:
    list_heroes(spec)["description"] = "Heroes, by id."


def describe_schema_anew(spec: Spec) -> None:
    schemas(spec)["Hero"]["description"] = "Someone with a secret name."


def change_parameter_example(spec: Spec) -> None:
    update_hero(spec)["parameters"][0]["example"] = '"4"'


def move_default_server(spec: Spec) -> None:
    spec["servers"][0] = {"url": "https://backoffice.example"}


def describe_server_anew(spec: Spec) -> None:
    spec["servers"][1]["description"] = "The server that serves this document."


def template_server(spec: Spec) -> None:
    spec["servers"][1]["variables"] = {"port": {"default": "8000"}}


def bump_version(spec: Spec) -> None:
    spec["info"]["version"] = "1.1.0"


def add_one_of(spec: Spec) -> None:
    schemas(spec)["Liveness"]["oneOf"] = [{"required": ["status"]}]


WIRE, CLIENTS, COMPATIBLE = Kind.WIRE, Kind.CLIENTS, Kind.COMPATIBLE

# label, edit, the kinds its changes must have, and words one of its lines must say.
CATALOGUE: list[tuple[str, Edit, set[Kind], str]] = [
    # endpoints
    ("an operation removed", remove_operation, {WIRE}, "operation removed"),
    ("an operation added", add_operation, {COMPATIBLE}, "operation added"),
    ("a path renamed", rename_path, {WIRE, COMPATIBLE}, "GET /api/people: operation added"),
    ("an operation deprecated", deprecate_operation, {COMPATIBLE}, f"{HEROES}: now deprecated"),
    # parameters
    ("a query maximum lowered", lower_a_maximum, {WIRE}, "maximum 500 -> 100"),
    ("a query maximum raised", raise_a_maximum, {COMPATIBLE}, "maximum 500 -> 1000"),
    ("a required query parameter added", add_required_parameter, {WIRE}, "added, required"),
    ("an optional query parameter added", add_optional_parameter, {COMPATIBLE}, "team_id: added"),
    ("a query parameter removed", remove_query_parameter, {WIRE}, "parameter name: removed"),
    ("a query parameter renamed", rename_query_parameter, {WIRE, COMPATIBLE}, "hero_name: added"),
    ("a parameter's default changed", change_parameter_default, {WIRE}, "default 50 -> 20"),
    ("a default given", give_parameter_a_default, {COMPATIBLE}, "default none -> 'Deadpond'"),
    ("a parameter's style changed", change_parameter_style, {WIRE}, "style none"),
    ("a path parameter renamed", rename_path_parameter, {CLIENTS}, "hero_id renamed to id"),
    ("a path parameter bounded", bound_path_parameter, {WIRE}, "minimum none -> 1"),
    # headers
    ("a request header made required", make_parameter_required, {WIRE}, "now required"),
    ("a request header's case changed", change_header_name_case, {COMPATIBLE}, "If-Match -> if"),
    ("a response header removed", remove_response_header, {WIRE}, "header ETag: removed"),
    ("a response header added", add_response_header, {COMPATIBLE}, "header Location: added"),
    ("a response header's type changed", change_response_header_type, {WIRE}, "string -> integer"),
    # request properties
    ("a required request property added", add_required_body_field, {WIRE}, "added, required"),
    ("an optional request property added", add_optional_body_field, {COMPATIBLE}, "motto: added"),
    (
        "a request property removed",
        remove_request_field_refusing_unknown_ones,
        {WIRE},
        "age: removed",
    ),
    ("a request property required", require_request_property, {WIRE}, "age: now required"),
    ("a request property optional", relax_request_property, {COMPATIBLE}, "no longer required"),
    (
        "a request property's default changed",
        change_request_property_default,
        {WIRE},
        "default 'rookie' -> 'veteran'",
    ),
    (
        "unknown request properties accepted",
        accept_unknown_request_properties,
        {COMPATIBLE},
        "other properties now accepted",
    ),
    # response properties
    ("a response property removed", remove_response_field, {WIRE}, "age: removed"),
    ("a response property added", add_response_field, {COMPATIBLE}, "motto: added"),
    (
        "a response property added to a closed schema",
        add_property_to_closed_response,
        {CLIENTS},
        "version: added where no other property was allowed",
    ),
    (
        "a response property no longer always present",
        response_field_no_longer_required,
        {WIRE},
        "no longer always present",
    ),
    # constraints
    ("a longer response maxLength", lengthen_response_field, {WIRE}, "maxLength 50 -> 80"),
    ("a response bound dropped", drop_response_bound, {WIRE}, "maxLength 50 -> none"),
    ("a shorter response maxLength", shorten_response_field, {COMPATIBLE}, "maxLength 50 -> 40"),
    ("a request minimum raised", raise_request_minimum, {WIRE}, "minimum 0 -> 18"),
    ("a request pattern added", add_a_pattern, {WIRE}, "pattern none -> '^[A-Z]'"),
    # enums
    ("a request enum narrowed", narrow_request_enum, {WIRE}, "now refused"),
    ("a request enum widened", widen_request_enum, {COMPATIBLE}, "now accepted"),
    ("a response enum value added", return_a_new_enum_value, {WIRE}, "may now return"),
    ("a response enum value dropped", drop_response_enum_value, {COMPATIBLE}, "no longer returned"),
    # nullable and types
    ("a request property not nullable", narrow_request_type, {WIRE}, "integer|null -> integer"),
    ("a response property nullable", make_response_field_nullable, {WIRE}, "-> null|string"),
    (
        "a response property not nullable",
        narrow_what_a_response_holds,
        {COMPATIBLE},
        "integer|null -> integer",
    ),
    ("a response type changed", change_response_field_type, {WIRE}, "-> null|string"),
    (
        "a request type widened",
        widen_request_type,
        {COMPATIBLE},
        "type integer|null -> null|number",
    ),
    ("a response format added", add_response_format, {CLIENTS}, "format none -> 'email'"),
    # media types
    ("a request media type dropped", stop_accepting_a_media_type, {WIRE}, "no longer accepted"),
    ("a request media type added", accept_another_media_type, {COMPATIBLE}, "now accepted"),
    ("a response media type replaced", drop_response_media_type, {WIRE, COMPATIBLE}, "removed"),
    # status codes
    ("a success response removed", remove_success_response, {WIRE}, "response 201: removed"),
    ("an error response removed", remove_error_response, {CLIENTS}, "response 409: removed"),
    ("an error response added", add_an_error_response, {COMPATIBLE}, "response 404: added"),
    ("a success status added", add_success_status, {WIRE}, "response 202: added"),
    # security
    (
        "the v1 signature dropped",
        drop_v1_signature,
        {WIRE},
        "security: signature + timestamp no longer accepted",
    ),
    ("a new way to authenticate", accept_bearer_tokens, {COMPATIBLE}, "bearer now accepted"),
    (
        "an unsigned probe now signed",
        sign_the_health_probe,
        {WIRE, COMPATIBLE},
        "GET /health > security: no authentication no longer accepted",
    ),
    ("a scheme's header renamed", rename_signature_header, {WIRE}, "name 'x-signature' -> 'X-Sig'"),
    ("a security scheme renamed", rename_security_scheme, {CLIENTS}, "renamed to v1Signature"),
    # ids and names
    ("an operationId renamed", rename_operation_id, {CLIENTS}, "list_heroes -> listHeroes"),
    ("a component schema renamed", rename_component_schema, {CLIENTS}, "renamed to Person"),
    ("an operation's tag changed", move_operation_to_another_tag, {CLIENTS}, "tags"),
    (
        "an inline schema named",
        name_an_inline_schema,
        {CLIENTS, COMPATIBLE},
        "type name inline -> HeroPage",
    ),
    ("the default server moved", move_default_server, {CLIENTS}, "servers: first url"),
    ("a server described", describe_server_anew, {COMPATIBLE}, "servers > /: description added"),
    ("a server templated", template_server, {WIRE}, "servers > /: variables changed"),
    # descriptions, examples, versions and what the tool does not judge
    ("an operation described anew", describe_operation_anew, {COMPATIBLE}, "description changed"),
    ("a schema described anew", describe_schema_anew, {COMPATIBLE}, "Hero: description changed"),
    ("an example changed", change_parameter_example, {COMPATIBLE}, "example changed"),
    ("the version bumped", bump_version, {COMPATIBLE}, "version '1.0.0' -> '1.1.0'"),
    ("a keyword the tool does not judge", add_one_of, {WIRE}, "oneOf changed"),
]


@pytest.mark.parametrize(
    ("label", "edit", "kinds", "says"), CATALOGUE, ids=[entry[0] for entry in CATALOGUE]
)
def test_each_catalogued_edit_is_listed_with_the_kinds_it_was_labelled(
    label: str, edit: Edit, kinds: set[Kind], says: str
) -> None:
    changes = changed(edit)

    assert {change.kind for change in changes} == kinds, [str(c) for c in changes]
    assert any(says in change.line for change in changes), [str(c) for c in changes]


def test_the_catalogue_covers_forty_edits_and_each_kind() -> None:
    assert len(CATALOGUE) >= 40
    assert len({label for label, *_ in CATALOGUE}) == len(CATALOGUE)
    assert set().union(*(kinds for _, _, kinds, _ in CATALOGUE)) == set(Kind)


def test_a_renamed_path_parameter_changes_nothing_on_the_wire() -> None:
    assert lines(changed(rename_path_parameter)) == [
        "DELETE /api/heroes/{id}: path parameter hero_id renamed to id",
        "PATCH /api/heroes/{id}: path parameter hero_id renamed to id",
    ]


def test_a_renamed_schema_is_reported_once_not_at_each_use() -> None:
    assert lines(changed(rename_component_schema)) == [
        "components > schemas > Hero: renamed to Person"
    ]


def test_dropping_the_v1_signature_is_reported_once_for_the_whole_contract() -> None:
    [change] = changed(drop_v1_signature)

    assert (change.where, change.operation) == ("security", "")


def test_the_real_spec_compared_with_itself_has_no_changes() -> None:
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())

    assert spec_diff.diff(spec, copy.deepcopy(spec)) == []


# The command with --base: any two revisions, exit 1 on any break ------------------------------


def git(repository: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repository,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def write(repository: Path, edit: Edit) -> None:
    head = copy.deepcopy(BASE)
    edit(head)
    (repository / "openapi.yaml").write_text(yaml.safe_dump(head))


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


def test_the_command_fails_on_a_breaking_change_since_a_base_revision(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(repository, remove_operation)

    assert spec_diff.main(["--base", "main"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "openapi.yaml: main -> working tree: 1 change(s) (breaks callers on the wire: 1)",
        f"  WIRE     {DELETE}: operation removed",
        "1 breaking change(s): keep the old behaviour alongside the new, or make the break "
        "deliberate (approve it in CHANGELOG.md and bump the major version; "
        "`python -m tools.spec_diff` without --base checks that)",
    ]


def test_the_command_passes_a_breaking_change_made_deliberate(repository: Path) -> None:
    write(repository, remove_operation)

    assert spec_diff.main(["--base", "main", "--allow-breaking"]) == 0


def test_the_command_passes_compatible_changes(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(repository, add_optional_body_field)

    assert spec_diff.main(["--base", "main"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "openapi.yaml: main -> working tree: 1 change(s) (compatible: 1)",
        f"  ok       {CREATE_BODY} > motto: added",
        "no breaking change",
    ]


def test_the_command_compares_two_committed_revisions(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(repository, rename_operation_id)
    git(repository, "commit", "-q", "-am", "rename an operation")
    write(repository, lambda spec: None)

    assert spec_diff.main(["--base", "main", "--head", "feature"]) == 1
    assert capsys.readouterr().out.splitlines()[:2] == [
        "openapi.yaml: main -> feature: 1 change(s) (breaks generated clients: 1)",
        f"  CLIENTS  {HEROES}: operationId list_heroes -> listHeroes",
    ]


def test_the_markdown_report_groups_changes_by_operation(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def edits(spec: Spec) -> None:
        lower_a_maximum(spec)
        rename_operation_id(spec)
        add_an_error_response(spec)
        bump_version(spec)

    write(repository, edits)

    assert spec_diff.main(["--base", "main", "--format", "markdown"]) == 1
    assert capsys.readouterr().out == (
        "### openapi.yaml: main -> working tree\n"
        "\n"
        "4 change(s) (breaks callers on the wire: 1, breaks generated clients: 1, "
        "compatible: 2).\n"
        "\n"
        "**The contract as a whole, and its components**\n"
        "\n"
        "- compatible · `info: version '1.0.0' -> '1.1.0'`\n"
        "\n"
        "**`delete_hero` · `DELETE /api/heroes/{hero_id}`**\n"
        "\n"
        "- compatible · `response 404: added`\n"
        "\n"
        "**`listHeroes` · `GET /api/heroes`**\n"
        "\n"
        "- breaks callers on the wire · `query parameter limit: maximum 500 -> 100`\n"
        "- breaks generated clients · `operationId list_heroes -> listHeroes`\n"
        "\n"
        "**2 breaking change(s): keep the old behaviour alongside the new, or make the break "
        "deliberate (approve it in CHANGELOG.md and bump the major version; "
        "`python -m tools.spec_diff` without --base checks that)**\n"
    )


def test_every_base_the_contract_page_shows_is_a_revision_a_clone_has() -> None:
    page = (ROOT / "docs/contract.md").read_text(encoding="utf-8")
    bases = re.findall(r"spec_diff --base (\S+)", page)

    assert bases
    for base in bases:
        found = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        assert found.returncode == 0, (
            f"docs/contract.md's `spec_diff --base {base}` names no revision"
        )
