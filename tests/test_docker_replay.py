"""The image, replayed outside Docker: only the build context, the Dockerfile's own install steps,
then the Procfile's release and web commands with environment variables alone.

There is no Docker engine here, so this is the closest check of the Dockerfile that can run.
"""

from __future__ import annotations

import re
import shlex
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import bake, redis_url, scratch_database

DEV_TOOLS = ("pytest", "mypy", "ruff")


def dockerignore_rules(project: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """The .dockerignore as (excluded?, regex) rules; the last matching rule wins, as in Docker."""
    rules = []
    for raw in (project / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = ""
        index = 0
        while index < len(pattern):
            if pattern.startswith("**/", index):
                regex, index = regex + "(?:.*/)?", index + 3
            elif pattern.startswith("**", index):
                regex, index = regex + ".*", index + 2
            elif pattern[index] == "*":
                regex, index = regex + "[^/]*", index + 1
            elif pattern[index] == "?":
                regex, index = regex + "[^/]", index + 1
            elif pattern[index] == "[":
                end = pattern.index("]", index)
                regex, index = regex + pattern[index : end + 1], end + 1
            else:
                regex, index = regex + re.escape(pattern[index]), index + 1
        rules.append((not include, re.compile(rf"{regex}(?:/.*)?")))
    return rules


def build_context(project: Path) -> list[str]:
    """The relative paths of the files Docker would send for `docker build .`."""
    rules = dockerignore_rules(project)
    kept = []
    for path in sorted(project.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(project).as_posix()
        excluded = False
        for is_exclusion, regex in rules:
            if regex.fullmatch(relative):
                excluded = is_exclusion
        if not excluded:
            kept.append(relative)
    return kept


def uv_sync_steps(project: Path) -> list[list[str]]:
    """The `uv sync` commands of the Dockerfile's RUN instructions, in order."""
    text = (project / "Dockerfile").read_text().replace("\\\n", " ")
    steps = []
    for line in text.splitlines():
        if line.startswith("RUN ") and "uv sync" in line:
            words = shlex.split(line[line.index("uv sync") :])
            steps.append(words)
    return steps


def procfile(project: Path) -> dict[str, list[str]]:
    """The Procfile's process types and their commands."""
    commands = {}
    for line in (project / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        commands[name.strip()] = command.split()
    return commands


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    baked = bake(tmp_path_factory.mktemp("docker"), init_git="yes")
    # What a developer's checkout may hold next to the code, none of which may reach the image.
    (baked / ".env").write_text("SECRET_KEY=local-only\n")
    (baked / ".venv").mkdir()
    (baked / ".venv" / "marker").write_text("local environment\n")
    return baked


@pytest.fixture
def database() -> Iterator[str]:
    with scratch_database("docker") as url:
        yield url


def test_build_context_keeps_out_secrets_tests_and_local_state(project: Path) -> None:
    context = build_context(project)
    assert {"pyproject.toml", "uv.lock"} <= set(context)
    assert any(path.startswith("src/") for path in context)
    for path in context:
        top = path.split("/", 1)[0]
        assert top not in {".git", ".venv", "tests", ".env", ".github", "deploy"}, path
        assert not path.startswith(".env"), path
        assert "__pycache__" not in path, path


def test_dockerfile_installs_dependencies_from_the_lock_before_the_source(project: Path) -> None:
    steps = uv_sync_steps(project)
    assert len(steps) == 2
    assert "--no-install-project" in steps[0]
    for step in steps:
        assert {"--locked", "--no-dev"} <= set(step)
    text = (project / "Dockerfile").read_text()
    assert text.index("--no-install-project") < text.index("COPY . /app")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  # our own server
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_image_steps_replayed_run_release_and_web_from_env_alone(
    project: Path, database: str, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    steps = uv_sync_steps(project)
    app_dir, venv = tmp_path / "app", tmp_path / "app" / ".venv"
    env = {**clean_env, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"}
    # Layer 1: the lock and pyproject alone are enough to install every dependency.
    app_dir.mkdir()
    for name in ("pyproject.toml", "uv.lock", ".python-version"):
        shutil.copy2(project / name, app_dir / name)
    subprocess.run(steps[0], cwd=app_dir, env=env, check=True, capture_output=True, timeout=300)
    # Layer 2: the build context, then the project itself.
    for relative in build_context(project):
        target = app_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project / relative, target)
    subprocess.run(steps[1], cwd=app_dir, env=env, check=True, capture_output=True, timeout=300)
    for tool in DEV_TOOLS:
        assert not (venv / "bin" / tool).exists(), f"{tool} reached the production environment"

    # Run stage: only the virtual environment, started elsewhere, configured by variables.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    port = _free_port()
    runtime_env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database,
        "REDIS_URL": redis_url(1),
        "SECRET_KEY": "replay-secret-key-0123456789-abcdefghijklmnop",
        "ALLOWED_HOSTS": "*",
        "PORT": str(port),
        "RELEASE_VERSION": "9.9.9",
        "RELEASE_COMMIT": "abc1234",
    }
    commands = procfile(project)
    release = subprocess.run(
        [str(venv / "bin" / commands["release"][0]), *commands["release"][1:]],
        cwd=run_dir,
        env=runtime_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert release.returncode == 0, release.stderr
    web = subprocess.Popen(
        [str(venv / "bin" / commands["web"][0]), *commands["web"][1:]],
        cwd=run_dir,
        env=runtime_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        status, body = 0, b""
        while time.monotonic() < deadline and web.poll() is None:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/readyz")
            except OSError:
                status = 0
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200, body
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert b'"version":"9.9.9"' in body
        assert b'"commit":"abc1234"' in body
    finally:
        web.terminate()
        out, err = web.communicate(timeout=30)
    assert web.returncode == 0, err
    assert list(run_dir.iterdir()) == [], "the running service wrote into its working directory"
    assert "Traceback" not in out + err
