"""The compiled check that runs before jsonschema (`contract.validation.fast_check`) accepts
nothing that jsonschema refuses, for every request schema of the spec: so a request is valid
exactly when Connexion's own validator says so, and every error is still jsonschema's."""

from typing import Any

import pytest
from connexion.json_schema import Draft4RequestValidator
from connexion.spec import Specification
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator

from app import SPEC
from contract.problems import HTTP_METHODS
from contract.validation import fast_check


def request_schemas() -> list[tuple[str, dict[str, Any], type[Draft4Validator]]]:
    """Every body and parameter schema, as Connexion resolves the spec."""
    spec = Specification.load(SPEC)
    found: list[tuple[str, dict[str, Any], type[Draft4Validator]]] = []
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            for param in [*shared, *operation.get("parameters", [])]:
                where = f"{method} {path} {param['in']} {param['name']}"
                found.append((where, param["schema"], Draft4Validator))
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                found.append(
                    (f"{method} {path} {media}", content["schema"], Draft4RequestValidator)
                )
    return found


SCHEMAS = request_schemas()
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=300)
    | st.sampled_from(["", "\n", "a\n", "é", "\x00", "0", "-1", "1e400", "ab" * 200])
)


def values_for(schema: Any) -> st.SearchStrategy[Any]:
    """Values shaped like `schema` (its properties, its types) as often as not."""
    anything = st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner)
    )
    if not isinstance(schema, dict):
        return anything
    properties: dict[str, Any] = schema.get("properties", {})
    shaped = [anything]
    if properties:
        optional = {name: values_for(sub) for name, sub in properties.items()}
        shaped.append(st.fixed_dictionaries({}, optional=optional))
    for combined in ("allOf", "anyOf", "oneOf"):
        shaped.extend(values_for(sub) for sub in schema.get(combined, []))
    return st.one_of(shaped)


@pytest.mark.parametrize(("where", "schema", "validator"), SCHEMAS, ids=[s[0] for s in SCHEMAS])
def test_the_fast_check_accepts_only_what_jsonschema_accepts(
    where: str, schema: dict[str, Any], validator: type[Draft4Validator]
) -> None:
    accepts = fast_check(schema)
    precise = validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)

    @settings(max_examples=150, deadline=None)
    @given(values_for(schema))
    def check(value: Any) -> None:
        if accepts(value):
            assert not list(precise.iter_errors(value)), f"{where}: accepted {value!r}"

    check()


def test_the_fast_check_accepts_a_valid_hero() -> None:
    """Not vacuous: the check does accept valid bodies (else jsonschema would do all the work)."""
    body = next(
        schema for where, schema, _ in SCHEMAS if where == "post /api/heroes application/json"
    )
    assert fast_check(body)({"name": "Deadpond", "secret_name": "Dive Wilson", "age": 30})
    assert not fast_check(body)({"name": "Deadpond"})
    assert not fast_check({"type": "string", "format": "date-time"})("2026-11-30T10:00:00Z")


def test_a_body_schema_with_the_spec_components_written_into_it_is_still_checked() -> None:
    """Connexion writes `components` into the spec's own schema dicts, which then hold
    themselves: the check leaves them out instead of failing on the cycle (a 500, found by the
    full suite)."""
    schema: dict[str, Any] = {"type": "object", "properties": {"name": {"type": "string"}}}
    schema["components"] = {"schemas": {"Hero": schema}}
    accepts = fast_check(schema)
    assert accepts({"name": "Deadpond"})
    assert not accepts({"name": 7})


def test_a_property_named_components_is_still_looked_at_for_formats() -> None:
    """Only the spec's `components` beside a body's schema are left out, not a property: its
    format sends the whole schema to jsonschema, so the check accepts not even a valid value."""
    schema = {
        "type": "object",
        "properties": {"components": {"type": "string", "format": "date-time"}},
    }
    assert not fast_check(schema)({"components": "2026-11-30T10:00:00Z"})
