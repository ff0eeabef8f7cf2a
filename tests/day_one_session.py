"""A new user's first session with a generated project, run inside a network namespace.

Started by test_day_one.py as `unshare -n -m python day_one_session.py PROJECT RUN_COMMAND
TEST_COMMAND`: it brings loopback up, hides the machine's PostgreSQL and Redis sockets, then
runs the README's two commands as written. The run command goes twice (the second run must find
the first run's data) and is stopped each time with Ctrl-C, that is SIGINT to its process group.
It prints one JSON object with what it saw; the test asserts on it.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

READY_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0
BASE = "http://127.0.0.1:8000"
# Where this machine's own servers keep their Unix sockets; hidden under empty directories.
SYSTEM_SOCKET_DIRS = ("/run/postgresql", "/var/run/postgresql", "/run/redis", "/var/run/redis")


def isolate() -> None:
    """Loopback up; the machine's PostgreSQL and Redis sockets out of sight."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    for directory in SYSTEM_SOCKET_DIRS:
        if Path(directory).is_dir() and not Path(directory).is_symlink():
            subprocess.run(["mount", "-t", "tmpfs", "none", directory], check=True)


def request(
    method: str, path: str, key: str | None, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """One HTTP request to the service; (status, decoded JSON body), errors included."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:  # noqa: S310  # loopback only
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class Run:
    """The run command, started as a terminal would: in a process group of its own."""

    def __init__(self, project: Path, command: str, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            shlex.split(command),
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            process_group=0,
        )
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if "| ready: " in line:
                self.ready.set()

    def wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.ready.wait(0.2):
                return True
        return False

    def ctrl_c(self) -> tuple[int | None, float]:
        """SIGINT to the whole group, as Ctrl-C sends it; (exit code, seconds to exit)."""
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            code: int | None = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = None
        self.reader.join(timeout=5)
        return code, round(time.monotonic() - started, 2)


def leftovers(project: Path) -> list[str]:
    """Processes still running whose command line or working directory is in the project."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), os.getppid()):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (str(project) in cmdline or cwd.startswith(str(project))):
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def one_run(project: Path, command: str, env: dict[str, str], note: dict[str, str] | None) -> Any:
    run = Run(project, command, env)
    try:
        return _exercise(run, project, note)
    finally:
        if run.process.poll() is None:  # this script failed half-way: stop what it started
            run.ctrl_c()


def _exercise(run: Run, project: Path, note: dict[str, str] | None) -> Any:
    result: dict[str, Any] = {"ready": run.wait_ready()}
    if result["ready"]:
        # The key the dev command made and showed, as the README's requests read it.
        key = (project / ".local" / "api_key").read_text().strip()
        result["anonymous"] = request("GET", "/api/v1/notes", None)[0]
        if note is not None:
            result["created"] = request("POST", "/api/v1/notes", key, note)
        result["listed"] = request("GET", "/api/v1/notes", key)
        result["readyz"] = request("GET", "/readyz", None)[0]
    result["exit_code"], result["stop_seconds"] = run.ctrl_c()
    time.sleep(0.5)  # a server that outlived its parent would still be here
    result["leftovers"] = leftovers(project)
    result["output"] = run.lines[-400:]
    return result


def main() -> None:
    project, run_command, test_command = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    isolate()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("VIRTUAL_ENV", "PYTHONPATH", "TEST_", "DATABASE_", "REDIS_"))
    }
    report: dict[str, Any] = {}
    started = time.monotonic()
    report["first"] = one_run(project, run_command, env, {"title": "Hello", "body": "day one"})
    report["first"]["seconds"] = round(time.monotonic() - started, 1)
    started = time.monotonic()
    report["second"] = one_run(project, run_command, env, None)
    report["second"]["seconds"] = round(time.monotonic() - started, 1)
    tests = subprocess.run(
        shlex.split(test_command),
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    report["tests"] = {
        "exit_code": tests.returncode,
        "tail": (tests.stdout + tests.stderr)[-3000:],
        "leftovers": leftovers(project),
    }
    print(json.dumps(report))  # the report is this script's output


if __name__ == "__main__":
    main()
