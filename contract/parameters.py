"""Integer parameters read strictly: 1 to 19 ASCII digits, or the value is refused with 400.

Connexion turns a path or query value into an integer with Python's `int()`, which also takes
`1_0`, `+2`, ` 2 `, full-width and Arabic-Indic digits, and raises on 5,000 digits (a 500,
from the path converter it registers with Starlette). A client must not be able to name one
resource in many spellings, nor cost the server a big-number parse. Here a value is an integer
only when it is plain ASCII digits, at most 19 of them (int64 holds 19); anything else is kept
as the string it was, and validation refuses it, naming the parameter. Path parameters are
judged before Connexion's router sees them (`contract.routes`), query parameters by
`StrictURIParser`, Connexion's parser for this app.
"""

import re
from typing import Any

from connexion.uri_parsing import OpenAPIURIParser

from contract.problems import Problem

INTEGER = re.compile(r"-?[0-9]{1,19}", re.ASCII)


def strict_integer(value: Any) -> Any:
    """`value` as an int if it is one in plain ASCII digits, else unchanged."""
    if isinstance(value, str) and INTEGER.fullmatch(value):
        return int(value)
    return value


def not_an_integer(location: str, name: str, value: str) -> Problem:
    return Problem(
        400,
        f"{location} parameter '{name}' must be an integer written in 1 to 19 ASCII digits, "
        f"not {value[:40]!r}",
        field=name,
    )


class StrictURIParser(OpenAPIURIParser):
    """Connexion's OpenAPI parser, converting integer parameters with `strict_integer`."""

    def resolve_params(self, params: dict[str, Any], _in: str) -> dict[str, Any]:
        loose: dict[str, Any] = {}
        for name, values in params.items():
            schema = self.param_schemas.get(name) or {}
            if schema.get("type") != "integer":
                continue
            value = values if _in == "path" else values[-1]
            if not isinstance(strict_integer(value), int):
                loose[name] = value
        resolved = super().resolve_params(
            {name: values for name, values in params.items() if name not in loose}, _in
        )
        return resolved | loose
