"""Optimistic concurrency: every row has a `version`, and a write may require one of several."""

from collections.abc import Mapping
from typing import Any

from persistence.errors import PreconditionFailed

# The versions a conditional write accepts; None accepts any (no `If-Match`, or `If-Match: *`).
type Versions = frozenset[int] | None


def check_version(row: Mapping[Any, Any], expected: Versions, *, what: str) -> None:
    if expected is not None and row["version"] not in expected:
        raise PreconditionFailed(f'{what} has changed: its ETag is now "{row["version"]}"')
