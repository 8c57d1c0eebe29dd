"""JSON for Connexion's responses, through orjson."""

from typing import Any

import orjson
from connexion.jsonifier import Jsonifier

OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


def dumps(data: Any) -> bytes:
    """A JSON body, as every response of the service writes it."""
    return orjson.dumps(data, option=OPTIONS)


class OrjsonJsonifier(Jsonifier):
    """orjson serializes several times faster than the standard library, datetimes included.

    SQLAlchemy row keys are `str` subclasses, which orjson accepts only with OPT_NON_STR_KEYS.
    """

    def __init__(self) -> None:
        super().__init__(orjson)

    def dumps(self, data: Any, **kwargs: Any) -> Any:
        return dumps(data)

    def loads(self, data: Any) -> Any:
        return orjson.loads(data)
