"""Structured logs: JSON lines on stdout (readable lines with APP_DEBUG).

Every record, ours and the libraries' (uvicorn, SQLAlchemy, Alembic), goes through structlog's
processors, so each carries the id of the request that logged it (see `middleware/access.py`).
"""

import logging
import sys
from typing import Any, TextIO, override

import orjson
import structlog

from settings import Settings


def _drop_color_message(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    # uvicorn passes a second, ANSI-coloured copy of some messages as an `extra`.
    event.pop("color_message", None)
    return event


def _orjson_dumps(value: Any, **_kwargs: Any) -> str:
    return orjson.dumps(value, default=str).decode()


class StdoutHandler(logging.StreamHandler[TextIO]):
    """Writes to `sys.stdout` as it is when a record is emitted.

    A handler bound to the stream at start-up would keep writing to a stream that a test's
    output capture or a process manager has since replaced.
    """

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @override
    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def configure_logging(settings: Settings) -> None:
    """Route every log record to stdout through structlog; safe to call more than once."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if settings.debug:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if not settings.debug:
        final.append(structlog.processors.format_exc_info)
    handler = StdoutHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[*final, renderer])
    )
    root = logging.getLogger()
    # Ours from an earlier call, and the plain console handler that Alembic's `fileConfig`
    # installs when `serve` migrates first: either would print every record a second time.
    for previous in [h for h in root.handlers if type(h) in (StdoutHandler, logging.StreamHandler)]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Our access line replaces uvicorn's; uvicorn's own messages still come through.
    logging.getLogger("uvicorn.access").disabled = True
    # Under `dev`, watchfiles says "1 change detected" for every file written in the tree, the
    # SQLite file under var/ included; uvicorn reloads only for code, and says so itself.
    logging.getLogger("watchfiles.main").setLevel(logging.WARNING)
