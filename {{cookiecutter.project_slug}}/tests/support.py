"""Test helpers: throwaway databases, the Procfile's commands as real processes, HTTP polling."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from {{ cookiecutter.package_name }}.core.settings import Settings

PROJECT_DIR = Path(__file__).resolve().parents[1]
BIN_DIR = Path(sys.executable).parent
REDIS_DATABASES = 16  # Redis' default number of logical databases
# The servers the tests may use: their own variables, never DATABASE_URL and REDIS_URL, so a
# shell that sourced .env cannot hand the tests the development data. Unset, conftest.py starts
# throwaway local servers for the run and sets them. Tests create (and drop) databases of their
# own on TEST_DATABASE_URL's server, and empty Redis databases of TEST_REDIS_URL's number and up.
TEST_DATABASE_URL = "TEST_DATABASE_URL"
TEST_REDIS_URL = "TEST_REDIS_URL"


def _worker_redis_url(url: str) -> str:
    """TEST_REDIS_URL's database moved on by three per xdist worker (gw0 keeps it, gw1 takes +3):
    each worker empties its own database, the one after it (other_redis_url) and the third
    (module_redis_url)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    base, _, number = url.rpartition("/")
    index = (int(number) if number.isdigit() else 0) + 3 * int(worker.removeprefix("gw") or 0)
    if index + 2 >= REDIS_DATABASES:
        raise RuntimeError(
            f"{TEST_REDIS_URL}: test worker {worker} would need Redis databases {index} to "
            f"{index + 2}; choose a lower database there or fewer workers (pytest -n)"
        )
    return f"{base}/{index}"


def base_database_url() -> str:
    """The server where the tests create their databases (set before any test runs)."""
    return os.environ[TEST_DATABASE_URL]


def base_redis_url() -> str:
    """This xdist worker's first Redis database (the next one is other_redis_url's)."""
    return _worker_redis_url(os.environ[TEST_REDIS_URL])


def module_redis_url() -> str:
    """This xdist worker's third Redis database: for a web process that serves a whole test
    module, so that the jobs it enqueues never reach the queue the other tests read."""
    return other_redis_url(other_redis_url(base_redis_url()))


TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


def _admin_conninfo() -> str:
    url = make_url(base_database_url().replace("postgres://", "postgresql://", 1))
    return url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )


def create_database(label: str) -> str:
    """Create an empty database and return its URL (TEST_DATABASE_URL's server and user)."""
    name = f"test_{{ cookiecutter.package_name }}_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(base_database_url().replace("postgres://", "postgresql://", 1))
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop a database made by create_database, closing whatever still uses it."""
    name = make_url(url).database
    with psycopg.connect(_admin_conninfo(), autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name or ""))
        )


def other_redis_url(url: str) -> str:
    """The same Redis server, the next logical database."""
    base, _, number = url.rpartition("/")
    index = int(number) if number.isdigit() else 0
    return f"{base}/{(index + 1) % 16}"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def procfile_command(process_type: str) -> list[str]:
    """The Procfile's command for a process type, resolved inside this environment."""
    for line in (PROJECT_DIR / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process_type:
            program, *args = command.split()
            return [str(BIN_DIR / program), *args]
    raise LookupError(f"no {process_type} process in the Procfile")


def admin_command(*args: str) -> list[str]:
    """An admin one-off: the program of the Procfile's release command, with other arguments."""
    return [procfile_command("release")[0], *args]


@dataclass(frozen=True)
class Finished:
    """How a process that ran to its end ended: exit code, stdout, stderr."""

    returncode: int
    stdout: str
    stderr: str


def run_admin(env: Mapping[str, str], *args: str, timeout: float = 30) -> Finished:
    """Run an admin one-off to its end, within timeout seconds."""
    admin = Service("admin", env, *args)
    code = admin.wait(timeout)
    return Finished(code, admin.output, admin.stderr)


def service_env(**overrides: str) -> dict[str, str]:
    """A process environment: PATH and friends, plus settings; nothing from a .env file."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env |= {"PYTHONUNBUFFERED": "1", "SECRET_KEY": TEST_SECRET, "ALLOWED_HOSTS": "*"}
    env |= overrides
    return {name: value for name, value in env.items() if value != ""}


_API_KEYS: dict[str, str] = {}


def api_key(database_url: str) -> str:
    """An API key of the tests in this database, made by the admin command once per database."""
    if database_url not in _API_KEYS:
        env = service_env(DATABASE_URL=database_url, REDIS_URL=base_redis_url())
        made = run_admin(env, "api-keys", "create", "tests", "--replace")
        if made.returncode != 0:
            raise RuntimeError(f"api-keys create failed: {made.stderr}")
        _API_KEYS[database_url] = made.stdout.strip().splitlines()[-1]
    return _API_KEYS[database_url]


def auth(database_url: str) -> dict[str, str]:
    """The Authorization header of the tests' API key in this database."""
    return {"Authorization": f"Bearer {api_key(database_url)}"}


def make_settings(database_url: str, redis_url: str | None = None, **extra: object) -> Settings:
    """Settings for tests, given explicitly so that no stray environment variable leaks in."""
    values: dict[str, object] = {
        "app_env": "test",
        "database_url": SecretStr(database_url),
        "redis_url": SecretStr(redis_url or base_redis_url()),
        "secret_key": SecretStr(TEST_SECRET),
        "allowed_hosts": ["testserver", "localhost", "127.0.0.1"],
    }
    values |= extra
    return Settings.model_validate(values)


# Short bounds for the worker and the clock, so that the process tests take seconds.
FAST_JOBS = {
    "WORKER_THREADS": "2",
    "WORKER_SHUTDOWN_TIMEOUT": "5",
    "WORKER_HEARTBEAT_TIMEOUT": "3",
    "WORKER_MAINTENANCE_CHANCE": "1000000",
    "JOB_MAX_RETRIES": "2",
    "JOB_MIN_BACKOFF": "0.05",
    "JOB_MAX_BACKOFF": "0.1",
    "REDIS_TIMEOUT": "1",
}


class Service:
    """A real process of the service, started for a test: a Procfile process type, or "admin"
    for an admin one-off. Its JSON log lines are collected as they arrive, its stderr at exit.

    The one way the tests start a process; `run_admin` runs a one-off through it to its end.
    """

    def __init__(
        self, process_type: str, env: Mapping[str, str], *args: str, cwd: Path = PROJECT_DIR
    ) -> None:
        self.name = process_type
        if process_type == "admin":
            command = admin_command(*args)
        else:
            command = [*procfile_command(process_type), *args]
        self.process = subprocess.Popen(
            command,
            env=dict(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.process.pid
        self.raw: list[str] = []
        self.lines: list[dict[str, Any]] = []
        self.stderr = ""
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"event": None, "raw": raw}
            with self._changed:
                self.raw.append(raw)
                self.lines.append(line)
                self._changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        text = self.process.stderr.read()
        with self._changed:
            self.stderr = text
            self._changed.notify_all()

    @property
    def output(self) -> str:
        """Everything written to stdout so far, as written."""
        with self._changed:
            return "".join(self.raw)

    def events(self, event: str, **fields: object) -> list[dict[str, Any]]:
        """Log lines of this event whose fields have the given values."""
        with self._changed:
            return [
                line
                for line in self.lines
                if line.get("event") == event
                and all(line.get(name) == value for name, value in fields.items())
            ]

    def wait_for(self, event: str, timeout: float = 10.0, **fields: object) -> dict[str, Any]:
        """The first log line of this event (and fields); fail after timeout or if it exits."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self.events(event, **fields)
                if found:
                    return found[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    break
                self._changed.wait(min(remaining, 0.1))
        tail = "\n".join(json.dumps(line) for line in self.lines[-15:])
        raise AssertionError(
            f"{self.name}: no {event!r} {fields or ''} within {timeout} s "
            f"(exit code {self.process.poll()}):\n{tail}\n{self.stderr[-2000:]}"
        )

    def wait_http(self, url: str, timeout: float = 15.0) -> float:
        """Poll url until it answers 200; the seconds it took. Fail at once if the process exits."""
        started = time.monotonic()
        with httpx.Client(timeout=1.0) as http:  # one client: polling stays cheap on a busy machine
            while time.monotonic() - started < timeout and self.process.poll() is None:
                try:
                    if http.get(url).status_code == 200:
                        return time.monotonic() - started
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        if self.process.poll() is not None:
            self._finish()
        raise AssertionError(
            f"{self.name}: {url} not 200 within {timeout} s"
            f" (exit code {self.process.poll()}): {self.stderr[-2000:]}"
        )

    def signal(self, sig: int = signal.SIGTERM) -> float:
        """Send a signal now; return the monotonic time it was sent."""
        self.process.send_signal(sig)
        return time.monotonic()

    def wait(self, timeout: float) -> int:
        """Wait for the exit (killing the process after timeout); its exit code."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            self._finish()
            raise AssertionError(f"{self.name} did not exit within {timeout} s") from None
        self._finish()
        return code

    def _finish(self) -> None:
        # The readers end at end-of-file, once every process holding the pipes has exited.
        for reader in self._readers:
            reader.join(timeout=5)
        if not any(reader.is_alive() for reader in self._readers):
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit; the exit code. The default wait outlasts granian's
        kill timeout (GRACEFUL_TIMEOUT, 20 s): tests that bound a stop's time pass their own."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """Make sure the process is gone (for finally blocks)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._finish()


def wait_until(check: Any, timeout: float, interval: float = 0.05) -> Any:
    """Poll check() until it returns something truthy; return that, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def insert_note(connection: psycopg.Connection, body: str = "one two three") -> int:
    """Store a note directly (committed, visible to every process); its id."""
    row = connection.execute(
        "INSERT INTO notes (title, body) VALUES (%s, %s) RETURNING id", ("t", body)
    ).fetchone()
    assert row is not None
    return int(row[0])
