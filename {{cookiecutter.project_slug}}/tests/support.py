"""Test helpers: throwaway databases, the Procfile's commands as real processes, HTTP polling."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from {{ cookiecutter.package_name }}.settings import Settings

PROJECT_DIR = Path(__file__).resolve().parents[1]
BIN_DIR = Path(sys.executable).parent
BASE_DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BASE_REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


def _admin_conninfo() -> str:
    url = make_url(BASE_DATABASE_URL.replace("postgres://", "postgresql://", 1))
    return url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )


def create_database(label: str) -> str:
    """Create an empty database and return its URL (same server and user as DATABASE_URL)."""
    name = f"test_{{ cookiecutter.package_name }}_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(BASE_DATABASE_URL.replace("postgres://", "postgresql://", 1))
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


def service_env(**overrides: str) -> dict[str, str]:
    """A process environment: PATH and friends, plus settings; nothing from a .env file."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env |= {"PYTHONUNBUFFERED": "1", "SECRET_KEY": TEST_SECRET, "ALLOWED_HOSTS": "*"}
    env |= overrides
    return {name: value for name, value in env.items() if value != ""}


def start(process_type: str, env: Mapping[str, str], *args: str) -> subprocess.Popen[str]:
    """Start a Procfile process type as a real process, with stdout and stderr piped."""
    return subprocess.Popen(
        [*procfile_command(process_type), *args],
        env=dict(env),
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_http(url: str, process: subprocess.Popen[str], timeout: float = 15.0) -> float:
    """Poll url until it answers 200; return the seconds it took. Fail if the process dies."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            _, err = process.communicate()
            raise AssertionError(f"process exited with {process.returncode}: {err[-2000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer 200 within {timeout} s")


def stop(process: subprocess.Popen[str], timeout: float = 10.0) -> tuple[int, str, str]:
    """SIGTERM a process and collect its exit code and output."""
    if process.poll() is None:
        process.terminate()
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


def make_settings(database_url: str, redis_url: str = BASE_REDIS_URL, **extra: object) -> Settings:
    """Settings for tests, given explicitly so that no stray environment variable leaks in."""
    values: dict[str, object] = {
        "app_env": "test",
        "database_url": SecretStr(database_url),
        "redis_url": SecretStr(redis_url),
        "secret_key": SecretStr(TEST_SECRET),
        "allowed_hosts": ["testserver", "localhost", "127.0.0.1"],
    }
    values |= extra
    return Settings.model_validate(values)
