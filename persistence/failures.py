"""What a database failure was, in the terms on-call acts on: its SQLSTATE and the class of it
(PostgreSQL's Appendix A), the server's own message, the kind of statement it stopped, and
whether a retry may cure it or the database refused a write while still answering reads.

SQLAlchemy wraps the driver's error (asyncpg's, which carries the SQLSTATE and the server's
message), which may wrap the operating system's: `describe` looks through all of them. Only the
server's primary message is kept, never its DETAIL (a unique violation's DETAIL quotes the
values), and not even that for class 22, whose messages quote the value that was refused.
"""

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# PostgreSQL's SQLSTATE classes (Appendix A, "PostgreSQL Error Codes"), by their first two
# characters: a bounded set, so it can label a metric.
SQLSTATE_CLASSES = {
    "00": "successful_completion",
    "01": "warning",
    "02": "no_data",
    "03": "sql_statement_not_yet_complete",
    "08": "connection_exception",
    "09": "triggered_action_exception",
    "0A": "feature_not_supported",
    "0B": "invalid_transaction_initiation",
    "0F": "locator_exception",
    "0L": "invalid_grantor",
    "0P": "invalid_role_specification",
    "0Z": "diagnostics_exception",
    "20": "case_not_found",
    "21": "cardinality_violation",
    "22": "data_exception",
    "23": "integrity_constraint_violation",
    "24": "invalid_cursor_state",
    "25": "invalid_transaction_state",
    "26": "invalid_sql_statement_name",
    "27": "triggered_data_change_violation",
    "28": "invalid_authorization_specification",
    "2B": "dependent_privilege_descriptors_still_exist",
    "2D": "invalid_transaction_termination",
    "2F": "sql_routine_exception",
    "34": "invalid_cursor_name",
    "38": "external_routine_exception",
    "39": "external_routine_invocation_exception",
    "3B": "savepoint_exception",
    "3D": "invalid_catalog_name",
    "3F": "invalid_schema_name",
    "40": "transaction_rollback",
    "42": "syntax_error_or_access_rule_violation",
    "44": "with_check_option_violation",
    "53": "insufficient_resources",
    "54": "program_limit_exceeded",
    "55": "object_not_in_prerequisite_state",
    "57": "operator_intervention",
    "58": "system_error",
    "72": "snapshot_failure",
    "F0": "config_file_error",
    "HV": "fdw_error",
    "P0": "plpgsql_error",
    "XX": "internal_error",
}
# Failures that came with no SQLSTATE: the driver, the pool or the network failed instead.
NO_SQLSTATE = "none"
# Classes a retry may cure: 08 connection exception, 40 serialization failure or deadlock,
# 53 insufficient resources (disk full, too many connections), 57 operator intervention (a
# statement timeout, a server shutting down or starting up), 58 system error (I/O).
RETRYABLE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
# Codes of other classes a retry may cure: a read-only transaction (a standby after failover, a
# database put in read-only mode) and a lock not obtained in time.
RETRYABLE_CODES = frozenset({"25006", "55P03"})
# Codes that, failing a write, mean the database refuses writes while it still answers reads:
# read-only, disk full, a lock not obtained or a statement timed out (a write waiting on a lock).
REFUSING_WRITES = frozenset({"25006", "53100", "55P03", "57014"})
WRITES = frozenset({"insert", "update", "delete", "merge"})
# Their messages quote the value refused (`invalid input syntax for type integer: "..."`).
QUOTING_CLASSES = frozenset({"22"})
MAX_MESSAGE = 300


def causes(error: BaseException) -> Iterator[BaseException]:
    """The error and what it wraps: SQLAlchemy wraps the driver's error, which wraps the OS's."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        pending += [current.__cause__, current.__context__]
        if isinstance(orig, BaseException):
            pending.append(orig)


@dataclass(frozen=True, slots=True)
class DatabaseFailure:
    sqlstate: str | None
    sqlstate_class: str
    # The class's name; without a SQLSTATE: connection_failure, timeout, pool_timeout, unknown.
    class_name: str
    # The innermost driver (or OS) error's class: `DiskFullError`, `ConnectionRefusedError`.
    error: str
    # The server's primary message (the driver's when there is no SQLSTATE), shortened.
    message: str
    # The first word of the statement that failed (`insert`, `select`), or "".
    statement: str
    retryable: bool

    @property
    def refused_write(self) -> bool:
        """A write refused by a database that still answers (read-only, full, locked)."""
        return self.sqlstate in REFUSING_WRITES and self.statement in WRITES

    @property
    def rolled_back(self) -> bool:
        """Class 40: the server undid the transaction to resolve a conflict with another one."""
        return self.sqlstate_class == "40"

    @property
    def summary(self) -> str:
        code = f"SQLSTATE {self.sqlstate}" if self.sqlstate else "no SQLSTATE"
        return f"{code} ({self.class_name}): {self.message}"

    def log_fields(self) -> dict[str, Any]:
        return {
            "sqlstate": self.sqlstate,
            "sqlstate_class": self.sqlstate_class,
            "class_name": self.class_name,
            "error": self.error,
            "server_message": self.message if self.sqlstate else None,
            "statement": self.statement or None,
        }


def describe(error: BaseException) -> DatabaseFailure:
    """What `error`, raised by database work, says about the database."""
    chain = list(causes(error))
    coded = next((cause for cause in chain if _sqlstate(cause)), None)
    innermost = _innermost(chain)
    statement = _statement(error)
    if coded is not None:
        sqlstate = _sqlstate(coded)
        assert sqlstate is not None
        group = sqlstate[:2]
        return DatabaseFailure(
            sqlstate=sqlstate,
            sqlstate_class=group,
            class_name=SQLSTATE_CLASSES.get(group, "unknown"),
            error=type(innermost).__name__,
            message=_message(coded, group),
            statement=statement,
            retryable=group in RETRYABLE_CLASSES or sqlstate in RETRYABLE_CODES,
        )
    return DatabaseFailure(
        sqlstate=None,
        sqlstate_class=NO_SQLSTATE,
        class_name=_kind(chain),
        error=type(innermost).__name__,
        message=_message(innermost, NO_SQLSTATE),
        statement=statement,
        retryable=_retryable_without_sqlstate(error),
    )


def _sqlstate(error: BaseException) -> str | None:
    sqlstate = getattr(error, "sqlstate", None)
    # asyncpg's codes, and SQLAlchemy's copy of them; five characters of 0-9 and A-Z.
    if isinstance(sqlstate, str) and len(sqlstate) == 5 and sqlstate.isalnum():
        return sqlstate.upper()
    return None


def _innermost(chain: list[BaseException]) -> BaseException:
    """The driver's or the OS's error rather than SQLAlchemy's wrapper of it (or the
    cancellation by which asyncio ends a wait that timed out)."""
    for cause in reversed(chain):
        wrapper = type(cause).__module__.split(".")[0] == "sqlalchemy"
        if not wrapper and not isinstance(cause, asyncio.CancelledError):
            return cause
    return chain[-1]


def _message(error: BaseException, group: str) -> str:
    if group in QUOTING_CLASSES:
        return "(withheld: messages of this class quote the values sent)"
    # asyncpg keeps the server's primary message apart from its DETAIL, which `str()` appends.
    message = getattr(error, "message", None)
    if not isinstance(message, str) or not message:
        message = str(error)
    return (message.splitlines()[0] if message else type(error).__name__)[:MAX_MESSAGE]


def _statement(error: BaseException) -> str:
    statement = getattr(error, "statement", None)
    words = statement.split(None, 1) if isinstance(statement, str) else []
    return words[0].lower() if words else ""


def _kind(chain: list[BaseException]) -> str:
    for cause in chain:
        if isinstance(cause, PoolTimeoutError):
            return "pool_timeout"
    for cause in chain:
        if isinstance(cause, TimeoutError):
            return "timeout"
    for cause in chain:
        if isinstance(cause, (OSError, InterfaceError, OperationalError)):
            return "connection_failure"
    if isinstance(chain[0], DBAPIError) and chain[0].connection_invalidated:
        return "connection_failure"
    return "unknown"


def _retryable_without_sqlstate(error: BaseException) -> bool:
    """The pool, the network and the driver's own timeouts; a disconnect SQLAlchemy saw."""
    if isinstance(error, (OperationalError, InterfaceError)):
        return True
    if isinstance(error, DBAPIError):
        return error.connection_invalidated
    return isinstance(error, (PoolTimeoutError, OSError, TimeoutError))
