"""Day one with a generated project: the README's two commands, with only uv on the machine.

The heavy test runs them inside a network namespace where no PostgreSQL or Redis answers (the
machine's Unix sockets hidden too), so the project must bring its own servers. The others try
what goes wrong on a developer's machine: a taken port, servers given by URL, a broken
data directory.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TEST_DATABASE_URL, TEST_REDIS_URL, bake, redis_url, scratch_database

SESSION_SCRIPT = Path(__file__).with_name("day_one_session.py")


def readme_commands(project: Path) -> list[str]:
    """The commands of the first shell block of the generated README."""
    text = (project / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.DOTALL)
    assert block, "the README shows no commands"
    return [line.split("#", 1)[0].strip() for line in block[1].splitlines() if line.strip()]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, clean_env: dict[str, str]) -> Path:
    """A default bake, installed from its lock (uv needs the index for that, once)."""
    baked = bake(tmp_path_factory.mktemp("day-one"), init_git="yes")
    subprocess.run(
        ["uv", "sync", "--locked"],
        cwd=baked,
        env=clean_env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return baked


def test_readme_starts_with_the_two_commands(project: Path) -> None:
    assert readme_commands(project) == ["uv run twelve_factor_service-dev", "uv run pytest"]


@pytest.mark.slow
@pytest.mark.heavy
def test_readme_commands_run_and_test_the_service_where_no_server_is_reachable(
    project: Path, clean_env: dict[str, str]
) -> None:
    run_command, test_command = readme_commands(project)
    env = {**clean_env, "UV_OFFLINE": "1"}  # inside the namespace no index is reachable either
    result = subprocess.run(
        [
            *("unshare", "-n", "-m", sys.executable, str(SESSION_SCRIPT)),
            *(str(project), run_command, test_command),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.splitlines()[-1])
    first, second, tests = report["first"], report["second"], report["tests"]
    output = "\n".join(first["output"])

    assert first["ready"], output
    assert first["anonymous"] == 401, "the API lets in only callers with a key"
    status, note = first["created"]
    assert status == 201
    assert note["title"] == "Hello"
    assert first["readyz"] == 200
    assert "| try: curl" in output, "the dev command shows a request to paste"
    assert re.search(r"^web +\| ", output, re.MULTILINE)
    assert re.search(r"^worker +\| ", output, re.MULTILINE)
    assert re.search(r"^clock +\| ", output, re.MULTILINE)
    # Ctrl-C stops every process and both servers, and the command exits 0.
    assert first["exit_code"] == 0, output
    assert first["leftovers"] == []
    # The second run starts from the first one's data.
    assert second["ready"], "\n".join(second["output"])
    assert [item["title"] for item in second["listed"][1]["items"]] == ["Hello"]
    assert second["exit_code"] == 0
    assert second["leftovers"] == []
    # The tests start throwaway servers of their own, and remove them.
    assert tests["exit_code"] == 0, tests["tail"]
    assert re.search(r"\d+ passed", tests["tail"]), tests["tail"]
    assert tests["leftovers"] == []
    print(  # the figures, for the note: first run (cold), second (warm)
        f"dev cold {first['seconds']} s, warm {second['seconds']} s, "
        f"Ctrl-C {first['stop_seconds']} / {second['stop_seconds']} s"
    )


def _dev(project: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(project / ".venv" / "bin" / "twelve_factor_service-dev")],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_line(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        lines.append(line)
        if marker in line or time.monotonic() > deadline:
            break
    return lines


def test_dev_refuses_a_taken_port_in_one_line_and_starts_nothing(
    project: Path, clean_env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104  # where web would bind
        taken.listen()
        port = taken.getsockname()[1]
        env = {**clean_env, "PORT": str(port)}
        # outside the project: its .local/ must stay as it is
        result = _in_project(
            [str(project / ".venv" / "bin" / "twelve_factor_service-dev")], tmp_path, env
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: port {port} is taken (another dev run, or another service?): stop that, or "
        f"choose another port: PORT={port + 1} uv run ...-dev"
    ]
    assert result.stdout == ""
    assert not (tmp_path / ".local").exists()


@pytest.fixture
def database() -> Iterator[str]:
    """A database of this test's own on the tests' server."""
    with scratch_database("dev") as url:
        yield url


def test_dev_uses_the_servers_it_is_given_and_starts_none(
    project: Path, clean_env: dict[str, str], database: str
) -> None:
    port = _free_port()
    local = project / ".local"
    before = sorted(p.name for p in local.iterdir()) if local.exists() else []
    env = {**clean_env, "PORT": str(port), "DATABASE_URL": database, "REDIS_URL": redis_url(9)}
    dev = _dev(project, env)
    try:
        lines = _wait_for_line(dev, "| ready: ", timeout=120)
        assert any("| ready: " in line for line in lines), "".join(lines)
    finally:
        dev.send_signal(signal.SIGINT)
        out, err = dev.communicate(timeout=60)
    text = "".join(lines) + out
    assert dev.returncode == 0, err
    assert "local PostgreSQL" not in text
    assert "local Valkey" not in text
    after = sorted(p.name for p in local.iterdir()) if local.exists() else []
    assert {"postgres", "valkey"} & set(after) <= set(before), "it started a local server"


def test_dev_names_a_broken_local_server_and_stops(
    project: Path, clean_env: dict[str, str], tmp_path: Path
) -> None:
    # A copy of the project whose .local/postgres is a file: initdb cannot use it.
    (tmp_path / ".local").mkdir()
    (tmp_path / ".local" / "postgres").write_text("not a data directory\n")
    (tmp_path / "pyproject.toml").write_text((project / "pyproject.toml").read_text())
    (tmp_path / "Procfile").write_text((project / "Procfile").read_text())
    env = {**clean_env, "PORT": str(_free_port())}
    env.pop("DATABASE_URL", None)
    result = _in_project(
        [str(project / ".venv" / "bin" / "twelve_factor_service-dev")], tmp_path, env
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: the local PostgreSQL did not start"), line
    assert str(tmp_path / ".local" / "postgres") in line


def test_tests_ignore_database_url_and_redis_url(project: Path) -> None:
    support = (project / "tests" / "support.py").read_text()
    conftest = (project / "tests" / "conftest.py").read_text()
    for text in (support, conftest):
        assert 'environ["DATABASE_URL"]' not in text
        assert 'environ.get("DATABASE_URL"' not in text
        assert 'environ.get("REDIS_URL"' not in text
    assert TEST_DATABASE_URL in support
    assert TEST_REDIS_URL in support


def _in_project(
    argv: list[str], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_readme_migration_recipe_writes_a_numbered_revision_that_passes_ruff(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    project = bake(tmp_path, init_git="no")
    [recipe] = [
        line.strip()
        for line in (project / "README.md").read_text().splitlines()
        if "alembic revision --autogenerate" in line
    ]
    models = project / "src" / "twelve_factor_service" / "notes" / "models.py"
    text = models.read_text()
    body = '    body: Mapped[str] = mapped_column(Text, default="")\n'
    assert body in text
    models.write_text(
        text.replace(
            body, body + '    priority: Mapped[int] = mapped_column(Integer, server_default="0")\n'
        )
    )
    env = {name: value for name, value in clean_env.items() if not name.startswith("TEST_")}
    env["PORT"] = str(_free_port())
    result = _in_project(shlex.split(recipe), project, env)
    assert result.returncode == 0, result.stderr[-3000:]
    versions = project / "src" / "twelve_factor_service" / "db" / "migrations" / "versions"
    assert sorted(path.name for path in versions.glob("*.py")) == [
        "0001_create_notes.py",
        "0002_create_note_stats.py",
        "0003_create_the_api_keys_table.py",
        "0004_add_a_priority_to_notes.py",
    ]
    revision = (versions / "0004_add_a_priority_to_notes.py").read_text()
    assert 'revision: str = "0004"' in revision
    assert 'down_revision: str | None = "0003"' in revision
    assert 'op.add_column("notes", sa.Column("priority"' in revision
    for check in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
        lint = _in_project(["uv", "run", "--no-sync", *check], project, env)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    # The same command again finds nothing to write.
    again = _in_project(shlex.split(recipe), project, env)
    assert again.returncode == 0
    assert "no revision written" in again.stderr
    assert len(list(versions.glob("*.py"))) == 4
