"""Day one with a generated project: the README's two commands, with only uv on the machine.

The heavy test runs them inside a network namespace where no PostgreSQL or Redis answers (the
machine's Unix sockets hidden too), so the project must bring its own servers. The others try
what goes wrong on a developer's machine: a taken port, servers given by URL, a broken
data directory.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
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
    models = project / "src" / "twelve_factor_service" / "features" / "notes" / "models.py"
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
    versions = project / "src" / "twelve_factor_service" / "migrations" / "versions"
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


# The dev command ended every way a developer ends it (issue 22). Each test runs it in a
# directory of its own beside the project (its .local/ there), so they never meet the project's
# own .local/ nor each other's; the first run in a directory makes the database (initdb).
DEV = "twelve_factor_service-dev"
DEV_READY_TIMEOUT = 180.0
GONE_TIMEOUT = 15.0  # "within a few seconds": web's drain bound in dev is 5 s


class DevRun:
    """The dev command, started as a terminal starts it: in a process group of its own."""

    def __init__(self, project: Path, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.port = int(env["PORT"])
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [str(project / ".venv" / "bin" / DEV)],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            process_group=0,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, marker: str, timeout: float = DEV_READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not any(marker in line for line in self.lines):
            assert self.process.poll() is None or self.reader.is_alive(), self.text()
            assert time.monotonic() < deadline, f"no {marker!r} within {timeout} s:\n{self.text()}"
            time.sleep(0.05)

    def text(self) -> str:
        return "\n".join(self.lines)

    def processes(self) -> dict[str, int]:
        """Every process this run and its servers are: its children, the keeper, the servers
        (by what .local/ records)."""
        found = {
            f"child {child.pid}": child.pid
            for child in psutil.Process(self.process.pid).children(recursive=True)
        }
        local = self.root / ".local"
        state = json.loads((local / "servers.json").read_text())
        found["keeper"] = state["keeper"]
        found["postgres"] = int((local / "postgres" / "postmaster.pid").read_text().split()[0])
        found["valkey"] = int((local / "valkey" / "valkey.pid").read_text())
        return found

    def ports(self) -> list[int]:
        state = json.loads((self.root / ".local" / "servers.json").read_text())
        return [self.port, int(state["redis_url"].rsplit(":", 1)[1].split("/")[0])]

    def end(self, how: str) -> int:
        """End the run as a developer would; its exit code (negative: the signal)."""
        if how == "sigkill":
            self.process.kill()
        elif how == "sigterm":
            self.process.terminate()
        else:  # Ctrl-C and a closed terminal signal the terminal's foreground process group
            os.killpg(self.process.pid, signal.SIGINT if how == "ctrl-c" else signal.SIGHUP)
        code = self.process.wait(timeout=60)
        self.reader.join(timeout=5)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _working_in(root: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.cwd().startswith(str(root)) and _alive(process.pid):
                found.append(process)
        except psutil.Error:
            continue
    return found


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def assert_nothing_left(
    processes: dict[str, int], ports: list[int], output: str, root: Path
) -> None:
    """None of processes, nothing working in root, none of ports, within a few seconds."""
    deadline = time.monotonic() + GONE_TIMEOUT
    while time.monotonic() < deadline:
        left = [name for name, pid in processes.items() if _alive(pid)]
        left += [f"{p.pid} in {root}" for p in _working_in(root)]
        taken = [port for port in ports if _listening(port)]
        if not left and not taken:
            return
        time.sleep(0.2)
    raise AssertionError(f"left running: {left}, ports still taken: {taken}\n{output}")


@pytest.fixture(scope="module")
def dev_root(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the project's Procfile, for the dev command's .local/ of these tests."""
    root = tmp_path_factory.mktemp("dev-root")
    for name in ("pyproject.toml", "Procfile"):
        (root / name).write_text((project / name).read_text())
    return root


@pytest.fixture
def dev_runs(project: Path, dev_root: Path) -> Iterator[Callable[[dict[str, str]], DevRun]]:
    """Start dev runs in dev_root; whatever a failing test left running is ended after it."""
    runs: list[DevRun] = []

    def start(env: dict[str, str]) -> DevRun:
        runs.append(DevRun(project, dev_root, env))
        return runs[-1]

    yield start
    for run in runs:
        if run.process.returncode is None:
            run.end("ctrl-c")


@pytest.fixture
def dev_env(clean_env: dict[str, str]) -> dict[str, str]:
    """The developer's environment: no server URLs; bytecode cached as on a laptop, so that a
    start takes seconds (PYTHONDONTWRITEBYTECODE makes every process compile every module)."""
    env = {
        name: value
        for name, value in clean_env.items()
        if not name.startswith(("TEST_", "DATABASE_", "REDIS_", "PYTHONDONTWRITEBYTECODE"))
    }
    return {**env, "PORT": str(_free_port())}


@pytest.mark.parametrize(
    ("how", "when"),
    [
        ("ctrl-c", "| ready: "),
        ("ctrl-c", "| starting the local"),
        ("sigterm", "| ready: "),
        ("sighup", "| ready: "),
        ("sigkill", "| ready: "),
    ],
)
def test_nothing_outlives_the_dev_command_however_it_ends(
    dev_runs: Callable[[dict[str, str]], DevRun],
    dev_root: Path,
    dev_env: dict[str, str],
    how: str,
    when: str,
) -> None:
    run = dev_runs(dev_env)
    run.wait_for(when)
    run.wait_for("| starting the local")
    processes = {"dev": run.process.pid}
    while "keeper" not in processes:  # the servers.json of this run's keeper
        try:
            processes |= run.processes()
        except (OSError, ValueError, KeyError):
            assert run.process.poll() is None, run.text()
            time.sleep(0.05)
    ports = [run.port, *run.ports()[1:]]
    code = run.end(how)
    if how == "sigkill":
        assert code == -signal.SIGKILL
    else:
        assert code == 0, run.text()
        assert "Traceback" not in run.text()
        assert not any(line.startswith("error") for line in run.lines), run.text()
    assert_nothing_left(processes, ports, run.text(), dev_root)


def test_the_next_run_stops_what_a_killed_keeper_left_and_says_so(
    dev_runs: Callable[[dict[str, str]], DevRun], dev_root: Path, dev_env: dict[str, str]
) -> None:
    run = dev_runs(dev_env)
    run.wait_for("| ready: ")
    processes = run.processes()
    os.kill(processes["keeper"], signal.SIGKILL)  # then nothing stops the servers...
    run.end("sigkill")
    time.sleep(1)
    assert _alive(processes["postgres"])
    assert _alive(processes["valkey"])
    again = dev_runs(dev_env)  # ...but the next run
    again.wait_for("| ready: ")
    [line] = [line for line in again.lines if "earlier run left running" in line] or [again.text()]
    assert f"Valkey (pid {processes['valkey']})" in line
    assert f"PostgreSQL (pid {processes['postgres']})" in line
    assert not _alive(processes["postgres"])
    assert not _alive(processes["valkey"])
    processes = again.processes()
    ports = again.ports()
    assert again.end("ctrl-c") == 0
    assert_nothing_left(processes, ports, again.text(), dev_root)


def _get(port: int, key: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/notes", headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310  # loopback
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_two_dev_runs_share_the_servers_and_the_key(
    dev_runs: Callable[[dict[str, str]], DevRun], dev_root: Path, dev_env: dict[str, str]
) -> None:
    first = dev_runs(dev_env)
    first.wait_for("| ready: ")
    key = (dev_root / ".local" / "api_key").read_text().strip()
    second = dev_runs({**dev_env, "PORT": str(_free_port())})
    second.wait_for("| ready: ")
    assert (dev_root / ".local" / "api_key").read_text().strip() == key
    assert _get(first.port, key) == 200
    assert _get(second.port, key) == 200
    processes = first.processes()
    assert second.processes()["keeper"] == processes["keeper"], "one set of servers"
    assert second.end("ctrl-c") == 0
    assert "keep running for the other dev run" in second.text()
    assert _get(first.port, key) == 200, "the first run serves on, with its key"
    ports = first.ports()
    assert first.end("ctrl-c") == 0
    assert "stopped the local servers" in first.text()
    assert_nothing_left(processes, ports, first.text(), dev_root)


def test_every_command_also_answers_to_the_directory_name(
    project: Path, dev_env: dict[str, str]
) -> None:
    assert project.name == "twelve-factor-service"
    for kind in ("dev", "admin"):
        result = subprocess.run(
            [str(project / ".venv" / "bin" / f"{project.name}-{kind}"), "--help"],
            env=dev_env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "usage:" in result.stdout


def test_the_readme_try_it_block_runs_as_pasted(
    project: Path,
    dev_runs: Callable[[dict[str, str]], DevRun],
    dev_root: Path,
    dev_env: dict[str, str],
) -> None:
    text = (project / "README.md").read_text()
    block = re.search(r"## Try it\n.*?```sh\n(.*?)```", text, re.DOTALL)
    assert block
    run = dev_runs(dev_env)
    run.wait_for("| ready: ")
    pasted = block[1].replace("localhost:8000", f"localhost:{run.port}")
    result = subprocess.run(
        ["bash", "-e", "-c", pasted], cwd=dev_root, capture_output=True, text=True, check=False
    )
    assert run.end("ctrl-c") == 0
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count('"error"') == 1, out  # the request without a key, and no other
    assert '"missing API key"' in out
    assert '"title":"Hello"' in out
    assert '"body":"edited"' in out
    assert '"words":3' in out, "the stats the worker computed"
    assert out.rstrip().endswith("204")
