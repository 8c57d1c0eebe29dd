"""Which operation of `openapi.yaml` a request names, known before any layer reads it.

Connexion's router decides this deep in the stack; the outer layers need it first: the access
line and the metrics label every request with its operation (signature refusals included), and
the signature check reads a body only for an operation that takes one. Matching a method and a
path against the spec's templates is a few regular expressions, as Connexion's router does.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.routing import compile_path

from contract.parameters import strict_integer
from contract.problems import Problem

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
# Where the outermost layer leaves the match in the scope, for the layers inside it.
ROUTE = "backoffice.route"


@dataclass(frozen=True, slots=True)
class Route:
    """An operation: its operationId, whether it declares a request body, and the names of its
    integer path parameters with the pattern that finds them in a path."""

    operation_id: str
    takes_body: bool
    pattern: re.Pattern[str]
    integers: tuple[str, ...] = ()

    def check_path(self, path: str) -> None:
        """Refuse an integer path parameter that is not plain ASCII digits (404: the URL names
        no resource), before Connexion's router turns it into a number with `int()`."""
        if not self.integers:
            return
        found = self.pattern.match(path)
        assert found is not None
        for name in self.integers:
            value = found[name]
            if not isinstance(strict_integer(value), int):
                # A URL that names no resource: 404, as for a path the spec does not have.
                raise Problem(
                    404,
                    f"no resource at {path}: {name} is an integer written in 1 to 19 ASCII digits",
                    field=name,
                )


class Routes:
    """The spec's operations, matched by method and path template."""

    def __init__(self, paths: Mapping[str, Mapping[str, Any]]) -> None:
        table: list[tuple[re.Pattern[str], dict[str, Route]]] = []
        for template, item in paths.items():
            pattern = compile_path(template)[0]
            by_method = {
                method.upper(): Route(
                    operation["operationId"],
                    "requestBody" in operation,
                    pattern,
                    _integers_in_path(
                        [*item.get("parameters", ()), *operation.get("parameters", ())]
                    ),
                )
                for method, operation in item.items()
                if method in HTTP_METHODS
            }
            # As Starlette does, HEAD is answered wherever GET is.
            if "GET" in by_method and "HEAD" not in by_method:
                by_method["HEAD"] = by_method["GET"]
            table.append((pattern, by_method))
        self._table = tuple(table)

    def match(self, method: str, path: str) -> Route | None:
        for pattern, by_method in self._table:
            if method in by_method and pattern.match(path):
                return by_method[method]
        return None


def _integers_in_path(parameters: list[Mapping[str, Any]]) -> tuple[str, ...]:
    return tuple(
        parameter["name"]
        for parameter in parameters
        if parameter["in"] == "path" and parameter.get("schema", {}).get("type") == "integer"
    )
