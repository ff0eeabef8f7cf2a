"""Logs as an event stream: one JSON object per line on stdout, UTC timestamps, request ids.

Our own loggers use structlog's documented fast configuration (a filtering bound logger, orjson
rendering to bytes, a BytesLogger, loggers cached on first use); the access line of every
request is one of their events. Libraries log through the standard library; a handler on the
root logger renders their records to the same JSON. Both write through one writer: a whole line
at a time, flushed at once.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import orjson
import structlog

# Loggers of libraries that otherwise print their own formats or their own access lines.
_LIBRARY_LOGGERS = ("alembic", "dramatiq")
# Alembic's set-up chatter on every run (plugins loaded, dialect chosen): no event for a reader.
_ALEMBIC_CHATTER = ("Context impl ", "Will assume ")


def _not_alembic_chatter(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(_ALEMBIC_CHATTER)


_render = structlog.processors.JSONRenderer(serializer=orjson.dumps)


def _render_text(logger: Any, name: str, event_dict: structlog.typing.EventDict) -> str:
    rendered = _render(logger, name, event_dict)
    return rendered.decode() if isinstance(rendered, bytes) else rendered


def _add_logger_name(logger: Any, _: str, event_dict: structlog.typing.EventDict) -> Any:
    # BytesLogger knows the name it was created with (structlog 26.1+); None before that.
    event_dict["logger"] = getattr(logger, "name", None)
    return event_dict


class _LibraryHandler(logging.Handler):
    """Renders standard-library records as JSON lines, written by our loggers' writer."""

    def __init__(self, writer: structlog.BytesLogger) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.msg(self.format(record).encode())
        except Exception:  # logging must never take the process down
            self.handleError(record)


def configure_logging(
    level: str = "INFO", processors: Sequence[structlog.typing.Processor] = ()
) -> None:
    """Send every log record of the process, ours and libraries', to stdout as JSON lines;
    `processors` add fields to every line ({% if cookiecutter.observability %}the trace ids, when tracing is on{% else %}none by default{% endif %})."""
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts")
    # BytesLoggers share one lock per file: lines of ours and of libraries never interleave.
    writer = structlog.BytesLogger(sys.stdout.buffer)
    handler = _LibraryHandler(writer)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                timestamper,
                *processors,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _render_text,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _LIBRARY_LOGGERS:
        library_logger = logging.getLogger(name)
        library_logger.handlers[:] = []
        library_logger.propagate = True
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    migration_logger = logging.getLogger("alembic.runtime.migration")
    migration_logger.filters[:] = [_not_alembic_chatter]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _add_logger_name,
            timestamper,
            *processors,
            structlog.processors.format_exc_info,
            _render,
        ],
        # A BytesLogger writes the line and flushes it; below the level a call returns at once.
        logger_factory=structlog.BytesLoggerFactory(sys.stdout.buffer),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        cache_logger_on_first_use=True,
    )


def library_logging_config() -> dict[str, Any]:
    """The logging set-up granian applies in each of its processes (a `dictConfig`): its loggers
    keep no handler of their own and pass their records to the root logger's JSON handler."""
    return {
        "formatters": {},
        "handlers": {},
        "loggers": {
            name: {"handlers": [], "propagate": True} for name in ("_granian", "granian.access")
        },
    }


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger whose lines carry its name and the context bound for the current request or job."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
