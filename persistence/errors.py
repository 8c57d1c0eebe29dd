"""Typed errors raised by persistence; `contract/problems.py` maps each to an HTTP problem."""

from dataclasses import dataclass


@dataclass
class PersistenceError(Exception):
    detail: str
    field: str | None = None

    def __str__(self) -> str:
        return self.detail


class NotFound(PersistenceError):
    """No row has the requested id."""


class Conflict(PersistenceError):
    """The change breaks a constraint: a duplicate unique value or a missing referenced row."""


class PreconditionFailed(PersistenceError):
    """The row's version is not one the caller expected."""


class InvalidCursor(PersistenceError):
    """A pagination cursor that this service did not issue."""
