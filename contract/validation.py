"""Connexion's request validators, made strict about encodings and precise about the field."""

import typing as t
from collections.abc import AsyncGenerator
from typing import Any, cast

import jsonschema_rs
import orjson
from connexion.datastructures import MediaTypeDict
from connexion.json_schema import Draft4RequestValidator
from connexion.validators import VALIDATOR_MAP, JSONRequestBodyValidator, ParameterValidator
from jsonschema import Draft4Validator, ValidationError
from starlette.datastructures import Headers
from starlette.types import Scope

from contract.parameters import not_an_integer
from contract.problems import Problem

type Accepts = t.Callable[[t.Any], bool]


def _never(_value: t.Any) -> bool:
    return False


def _checks_formats(schema: t.Any) -> bool:
    """Whether `schema` names a format that jsonschema checks (it knows no `int64`), or refers to
    another schema."""
    if isinstance(schema, dict):
        items = cast(dict[str, t.Any], schema)
        if items.get("format", "int64") != "int64" or "$ref" in items:
            return True
        return any(_checks_formats(value) for value in items.values())
    if isinstance(schema, list):
        return any(_checks_formats(value) for value in cast(list[t.Any], schema))
    return False


def fast_check(schema: dict[str, t.Any]) -> Accepts:
    """A compiled check (jsonschema-rs, Rust) that accepts only what jsonschema accepts.

    It runs first, and only a value it refuses is validated by jsonschema, which then finds the
    error to report (or accepts what only it accepts: `nullable`, which Connexion adds to
    Draft 4, and a pattern's `$` before a final newline, which Python's `re` allows and
    ECMA-262 does not). Validating a hero's body took 60-80 us in pure Python and takes about
    2 us here. A schema that names a format, or refers to another, falls back to jsonschema
    alone: the two check formats differently.
    """
    # Connexion hands a body's schema over with the spec's `components` beside it, for
    # references, and writes them into the spec's own schema dicts, which can then hold
    # themselves: the schema is judged and compiled without them (it refers to none, or it
    # would fall back), so a property that happens to be named `components` is still looked at.
    own = {key: value for key, value in schema.items() if key != "components"}
    if _checks_formats(own):
        return _never
    try:
        return jsonschema_rs.Draft4Validator(own).is_valid
    except ValueError:  # a schema it cannot take: jsonschema alone validates
        return _never


class CompiledSchemas:
    """Each schema of one app's spec, compiled on first use and then reused.

    Connexion builds a validator for every request, so the compiled schemas cannot live in the
    validator; they live as long as the app's validator map (`validator_map()`), as the spec's
    schema dicts do. An entry holds its schema, so its id cannot be reused while it is cached.
    """

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[dict[str, t.Any], Draft4Validator, Accepts]] = {}

    def __call__(
        self, schema: dict[str, t.Any], validator_class: type[Draft4Validator]
    ) -> tuple[Accepts, Draft4Validator]:
        """The fast check (`fast_check`) and jsonschema's validator, for its errors."""
        entry = self._by_id.get(id(schema))
        if entry is None or entry[0] is not schema:
            compiled = validator_class(schema, format_checker=Draft4Validator.FORMAT_CHECKER)
            entry = self._by_id[id(schema)] = (schema, compiled, fast_check(schema))
        return entry[2], entry[1]


def _pointer(error: ValidationError) -> str | None:
    path = [str(part) for part in error.absolute_path]
    instance: Any = error.instance
    schema: Any = error.schema
    if error.validator == "required" and isinstance(instance, dict):
        required: list[str] = list(error.validator_value)  # type: ignore[arg-type]
        path.extend(name for name in required if name not in instance)
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = schema.get("properties", {})
        path.extend(str(name) for name in instance if name not in allowed)
    return ".".join(path) or None


class JSONBodyValidator(JSONRequestBodyValidator):
    """Parses with orjson (strict UTF-8, no lone surrogates) and names the failing field."""

    compiled: CompiledSchemas  # one app's, set by `validator_map()`

    async def _parse(self, stream: AsyncGenerator[bytes], scope: Scope) -> t.Any:
        body = b"".join([chunk async for chunk in stream])
        if not body:
            return None
        if not Headers(scope=scope).get("content-type"):
            # Connexion validates such a body as JSON, but then hands it to the handler as bytes.
            raise Problem(415, "the request body has no Content-Type: send it as application/json")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise Problem(400, f"the request body is not valid JSON: {error}") from None

    def _validate(self, body: t.Any) -> dict[str, t.Any] | None:
        if body is None and not self._nullable:
            raise Problem(400, "the request body must not be empty")
        accepts, validator = self.compiled(self._schema, Draft4RequestValidator)
        if accepts(body):
            return None
        error = next(iter(validator.iter_errors(body)), None)
        if error is not None:
            field = _pointer(error)
            where = f"'{field}': " if field else ""
            raise Problem(400, f"{where}{error.message}", field=field)
        return None


class ParametersValidator(ParameterValidator):
    """Validates each parameter against its compiled schema, naming it in the problem."""

    compiled: CompiledSchemas  # one app's, set by `validator_map()`

    def __init__(
        self,
        parameters: list[dict[str, t.Any]],
        uri_parser: t.Any,
        strict_validation: bool = False,
        security_query_params: list[str] | None = None,
    ) -> None:
        # Connexion 3.3 appends the path-level parameters to the spec's own list each time it
        # builds the operation (once per middleware), so `hero_id` arrives six times: validate
        # each (location, name) once. The operation's own parameters come first, and win.
        unique: dict[tuple[str, str], dict[str, t.Any]] = {}
        for param in parameters:
            unique.setdefault((param["in"], param["name"]), param)
        super().__init__(
            list(unique.values()), uri_parser, strict_validation, security_query_params
        )

    def validate_request(self, request: t.Any) -> None:
        # Each source is built only when it is needed: Connexion parses and converts the query
        # and the path anew each time they are asked for, and most requests have no query.
        declared = self.parameters
        query = request.query_params if request.scope["query_string"] else {}
        if self.strict_validation and query:
            unknown = self.validate_query_parameter_list(
                request, security_params=self.security_query_params
            )
            if unknown:
                names = ", ".join(sorted(unknown))
                raise Problem(400, f"unknown query parameter(s): {names}", field=sorted(unknown)[0])
        for param in declared.get("query", ()):
            self._check("query", param, query.get(param["name"]))
        if "path" in declared:
            path = request.path_params
            for param in declared["path"]:
                self._check("path", param, path.get(param["name"]))
        if "header" in declared:
            headers = request.headers
            for param in declared["header"]:
                self._check("header", param, headers.get(param["name"]))

    def _check(self, location: str, param: dict[str, t.Any], value: t.Any) -> None:
        name = param["name"]
        if value is None:
            if param.get("required"):
                raise Problem(400, f"the {location} parameter '{name}' is required", field=name)
            return
        schema = param["schema"]
        if schema.get("type") == "integer" and isinstance(value, str):
            # Left as text by `contract.parameters`: not 1 to 19 plain ASCII digits.
            raise not_an_integer(location, name, value)
        accepts, validator = self.compiled(schema, Draft4Validator)
        if accepts(value):
            return
        error = next(iter(validator.iter_errors(value)), None)
        if error is not None:
            raise Problem(400, f"{location} parameter '{name}': {error.message}", field=name)


def validator_map() -> dict[str, Any]:
    """Connexion's validators with ours, sharing one app's compiled schemas."""
    schemas = CompiledSchemas()

    class AppJSONBodyValidator(JSONBodyValidator):
        compiled = schemas

    class AppParametersValidator(ParametersValidator):
        compiled = schemas

    body: dict[str, Any] = dict(cast(dict[str, Any], VALIDATOR_MAP["body"]))
    return {
        **VALIDATOR_MAP,
        "parameter": AppParametersValidator,
        "body": MediaTypeDict({**body, "*/*json": AppJSONBodyValidator}),
    }
