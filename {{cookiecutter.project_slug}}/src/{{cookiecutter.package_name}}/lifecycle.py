"""What worker, clock and admin processes share: exit codes, start-up checks, stop signals."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from .settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from redis import Redis
    from sqlalchemy.engine import Engine

# Exit codes a platform or a script can act on; the stderr line says the rest.
EXIT_CONFIG = 78  # sysexits.h EX_CONFIG: the environment is wrong, restarting will not help
EXIT_POSTGRES = 3
EXIT_REDIS = 4
EXIT_BOTH = 5


def fail(message: str) -> None:
    """One line on stderr for a human: no traceback, no setting's value."""
    print(f"error: {message}", file=sys.stderr)  # noqa: T201  # before or instead of logging


def settings_or_exit() -> Settings:
    """The settings, or exit 78 with one line naming every bad variable."""
    try:
        return load_settings()
    except ConfigError as error:
        fail(str(error))
        sys.exit(EXIT_CONFIG)


def reason(error: BaseException) -> str:
    """An error's type and the first line of its message: enough to act on, nothing more."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


def unreachable(*, redis: Redis | None = None, postgres: Engine | None = None) -> dict[str, str]:
    """Ping the given backing services once each (bounded by their own timeouts).

    Returns the services that did not answer, by name, with the reason.
    """
    problems: dict[str, str] = {}
    if postgres is not None:
        from sqlalchemy import text  # noqa: PLC0415  # only processes that use PostgreSQL

        try:
            with postgres.connect() as connection:
                connection.execute(text("SELECT 1"))
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


def exit_unreachable(process: str, problems: dict[str, str]) -> NoReturn:
    """Stop a process that cannot reach its backing services: one line, a telling exit code."""
    fail(
        f"{process} not started: "
        + "; ".join(f"{name} unreachable ({why})" for name, why in problems.items())
    )
    sys.exit(exit_code(problems))


class Heartbeat:
    """Renews LIVENESS_FILE's modification time while the process can do its work: the liveness
    probe of a process without an HTTP server reads its age (deploy/kubernetes)."""

    INTERVAL = 5.0  # seconds between beats; the probe allows 60 s

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.failed = False

    def beat(self) -> None:
        """Touch the file (nothing when LIVENESS_FILE is unset)."""
        if self.path is None:
            return
        try:
            self.path.touch()
        except OSError as error:
            if not self.failed:  # say it once: the probe will restart the process anyway
                fail(f"cannot write LIVENESS_FILE ({type(error).__name__})")
            self.failed = True


class StopSignal:
    """Turns SIGTERM and SIGINT into a flag that the main thread polls.

    The handler only records the signal: logging or taking locks inside a handler can deadlock
    the thread it interrupts. A second signal changes nothing (platforms and honcho may signal
    a process more than once), so a stop always runs to its end.
    """

    POLL_SECONDS = 0.05

    def __init__(self) -> None:
        self.received: str | None = None
        self.count = 0

    def install(self) -> StopSignal:
        """Handle SIGTERM and SIGINT from now on."""
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        if self.received is None:
            self.received = signal.Signals(signum).name

    @property
    def requested(self) -> bool:
        """Whether a stop signal has arrived."""
        return self.received is not None

    def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking at once on a stop signal; True when one arrived."""
        deadline = time.monotonic() + seconds
        while self.received is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(remaining, self.POLL_SECONDS))
        return self.received is not None

    def wait(self) -> str:
        """Block until a stop signal arrives; return its name."""
        while self.received is None:
            time.sleep(self.POLL_SECONDS)
        return self.received
