"""How every process starts: settings or exit 78, logging, reachable backing services or a
telling exit code."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

{% if cookiecutter.observability %}from . import observability
{% endif %}from .logs import configure_logging
from .settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from redis import Redis
    from sqlalchemy.engine import Engine

# Exit codes a platform or a script can act on; the stderr line says the rest.
EXIT_CONFIG = 78  # sysexits.h EX_CONFIG: the environment is wrong, restarting will not help
EXIT_POSTGRES = 3
EXIT_REDIS = 4
EXIT_BOTH = 5
{%- if cookiecutter.observability %}
EXIT_START = 1  # a part asked for cannot start (observability: METRICS_PORT taken)
{%- endif %}
EXIT_UNMIGRATED = 6  # admin check: the schema is behind the code
EXIT_DATABASE_WAIT = 7  # admin migrate: PostgreSQL did not answer in DB_WAIT_TIMEOUT
EXIT_KEY_NAME_TAKEN = 8
EXIT_NO_SUCH_KEY = 9


def fail(message: str) -> None:
    """One line on stderr for a human: no traceback, no setting's value."""
    print(f"error: {message}", file=sys.stderr)  # noqa: T201  # before or instead of logging


def begin(process_type: str | None = None) -> Settings:
    """Start an entry point: the settings, or exit 78 with one line naming every bad variable;
    then logging configured from them
{%- if cookiecutter.observability %} and, for a process type, the observability they ask for
{%- endif %}."""
    try:
        settings = load_settings()
    except ConfigError as error:
        fail(str(error))
        sys.exit(EXIT_CONFIG)
{%- if cookiecutter.observability %}
    try:
        processors = [] if process_type is None else observability.configure(settings, process_type)
    except observability.ObservabilityError as error:
        fail(str(error))
        sys.exit(EXIT_START)
    configure_logging(settings.log_level, processors)
{%- else %}
    configure_logging(settings.log_level)
{%- endif %}
    return settings


def reason(error: BaseException, secrets: Sequence[str] = ()) -> str:
    """An error's type and the first line of its message, any secret's value masked: enough to
    act on, nothing more."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0][:300]}" if lines else type(error).__name__
    for secret in secrets:
        text = text.replace(secret, "[Filtered]")
    return text


def unreachable(*, redis: Redis | None = None, postgres: Engine | None = None) -> dict[str, str]:
    """Ping the given backing services once each (bounded by their own timeouts).

    Returns the services that did not answer, by name, with the reason.
    """
    problems: dict[str, str] = {}
    if postgres is not None:
        try:
            with postgres.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except Exception as error:  # any failure means "not reachable"
            problems["PostgreSQL"] = reason(error)
    if redis is not None:
        try:
            redis.ping()
        except Exception as error:  # any failure means "not reachable"
            problems["Redis"] = reason(error)
    return problems


def exit_code(problems: dict[str, str]) -> int:
    """The exit code that names which backing services failed."""
    if {"PostgreSQL", "Redis"} <= problems.keys():
        return EXIT_BOTH
    return EXIT_POSTGRES if "PostgreSQL" in problems else EXIT_REDIS


def exit_unreachable(what: str, problems: dict[str, str]) -> NoReturn:
    """Stop a process that cannot reach its backing services: one line, a telling exit code."""
    fail(f"{what}: " + "; ".join(f"{name} unreachable ({why})" for name, why in problems.items()))
    sys.exit(exit_code(problems))
