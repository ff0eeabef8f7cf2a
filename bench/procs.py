"""Child processes of the benchmark: start, wait for HTTP, measure memory and exit, clean up."""

from __future__ import annotations

import contextlib
import http.client
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"  # every request of the benchmark goes here, nowhere else
POLL_INTERVAL = 0.005
READY_TIMEOUT = 60.0
EXIT_TIMEOUT = 30.0
TOOL_TIMEOUT = 900.0


class MeasurementError(Exception):
    """A figure could not be measured (a process failed, never answered or never exited)."""


class Children:
    """Every process the benchmark starts, each in its own session so it can be ended alone.

    ``cleanup`` ends what is still running (its whole process group, found by its id), so a
    Ctrl-C or a failure leaves nothing behind.
    """

    def __init__(self) -> None:
        self._running: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | None = None,
        stdout: IO[bytes] | int | None = subprocess.DEVNULL,
        stderr: IO[bytes] | int | None = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        """Start argv in a new session and remember it."""
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        self._running.append(process)
        return process

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | None = None,
        timeout: float = TOOL_TIMEOUT,
        what: str = "",
    ) -> tuple[float, str]:
        """Run a command to its end; return (wall seconds, combined output). Fails on non-zero."""
        started = time.perf_counter()
        process = self.start(
            argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.end(process)
            raise MeasurementError(
                f"{what or argv[0]} did not finish within {timeout:g} s"
            ) from None
        elapsed = time.perf_counter() - started
        self.forget(process)
        text = out.decode(errors="replace")
        if process.returncode != 0:
            tail = "\n".join(text.splitlines()[-25:])
            raise MeasurementError(
                f"{what or argv[0]} failed with exit status {process.returncode}:\n{tail}"
            )
        return elapsed, text

    def forget(self, process: subprocess.Popen[bytes]) -> None:
        """Stop tracking a process that has ended."""
        with contextlib.suppress(ValueError):
            self._running.remove(process)

    def end(self, process: subprocess.Popen[bytes]) -> None:
        """Kill a process and its group (SIGKILL), then reap it."""
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        self.forget(process)

    def cleanup(self) -> None:
        """End every process still tracked."""
        for process in list(self._running):
            self.end(process)


def free_port() -> int:
    """A TCP port on which nobody listens right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def get(
    port: int, path: str, timeout: float = 5.0, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    """One HTTP GET to 127.0.0.1:port; returns (status, body)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_ready(
    process: subprocess.Popen[bytes], port: int, started: float, path: str = "/healthz"
) -> float:
    """Seconds from `started` (a perf_counter reading taken before the spawn) to the first 200.

    Raises if the process dies first or nothing answers 200 within READY_TIMEOUT.
    """
    deadline = started + READY_TIMEOUT
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise MeasurementError(f"server exited with {process.returncode} before it was ready")
        try:
            status, _ = get(port, path, timeout=2.0)
        except OSError:
            status = 0
        if status == 200:
            return time.perf_counter() - started
        time.sleep(POLL_INTERVAL)
    raise MeasurementError(f"server never answered 200 on {path} within {READY_TIMEOUT:g} s")


def wait_exit(process: subprocess.Popen[bytes], timeout: float = EXIT_TIMEOUT) -> int | None:
    """Wait for a process to exit, woken by its pidfd (no polling delay); None on timeout."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except (OSError, AttributeError):
        pidfd = None
    if pidfd is None:
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if not readable:
        return None
    return process.wait(timeout=5)


def terminate_timed(children: Children, process: subprocess.Popen[bytes]) -> tuple[float, int]:
    """Send SIGTERM to the process alone (as a platform does) and time its exit.

    Returns (seconds, exit code); raises when it is still running after EXIT_TIMEOUT.
    """
    started = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    code = wait_exit(process)
    elapsed = time.perf_counter() - started
    if code is None:
        children.end(process)
        raise MeasurementError(f"server did not exit within {EXIT_TIMEOUT:g} s of SIGTERM")
    children.forget(process)
    return elapsed, code


def _parent_pids() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = stat.rpartition(")")[2].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB, from /proc."""
    parents = _parent_pids()
    tree = {pid}
    grew = True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grew = True
    return sum(_rss_kib(member) for member in tree) / 1024
