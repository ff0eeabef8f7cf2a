"""The dev loop's figures: first start, warm start and restart after a save of `-dev`, and the
factor report run, on a default bake. Prints them; asserts nothing.

    uv run python bench/devloop.py [PROJECT]

Without PROJECT it bakes the template into a scratch directory and installs it (`uv sync`).
Each figure is the wall time a developer waits: `uv run <package>-dev` to its `ready:` line,
a touched source file to its `web ready again` line, `uv run pytest --factors` to its end.
PYTHONDONTWRITEBYTECODE is removed from the environment, as on a developer's machine: with it
set, every process compiles every module again and each start takes about three times longer.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
PACKAGE = "twelve_factor_service"
TIMEOUT = 300.0
ROUNDS = 3


def environment() -> dict[str, str]:
    """This environment, less what would point the project at other servers or slow it."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(
            ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "TEST_", "DATABASE_", "REDIS_")
        )
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Dev:
    """`uv run <package>-dev` in its own process group, its lines collected as they come."""

    def __init__(self, project: Path, env: dict[str, str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            ["uv", "run", f"{PACKAGE}-dev"],
            cwd=project,
            env={**env, "PORT": str(free_port())},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            process_group=0,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout or ():
            self.lines.append((time.monotonic(), line))

    def wait_for(self, marker: str, after: float) -> float:
        """The time of the first line with marker that came after `after`."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            for at, line in list(self.lines):
                if at >= after and marker in line:
                    return at
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        tail = "".join(line for _, line in self.lines[-30:])
        raise SystemExit(f"no {marker!r} from the dev command:\n{tail}")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)
        self.process.wait(timeout=60)


def install(project: Path, env: dict[str, str]) -> None:
    subprocess.run(["uv", "sync", "--locked"], cwd=project, env=env, check=True)


def bake(directory: Path, env: dict[str, str]) -> Path:
    subprocess.run(
        ["uv", "run", "cookiecutter", "--no-input", "-o", str(directory), str(TEMPLATE)],
        cwd=TEMPLATE,
        env=env,
        check=True,
        capture_output=True,
    )
    [project] = [path for path in directory.iterdir() if path.is_dir()]
    return project


def start(project: Path, env: dict[str, str]) -> float:
    """Seconds from the command to its ready line; the run is then stopped."""
    dev = Dev(project, env)
    ready = dev.wait_for("| ready: ", dev.started)
    dev.stop()
    return ready - dev.started


def restarts(project: Path, env: dict[str, str]) -> list[float]:
    """Seconds from a saved source file to web answering again, ROUNDS times in one run."""
    dev = Dev(project, env)
    dev.wait_for("| ready: ", dev.started)
    source = project / "src" / PACKAGE / "features" / "notes" / "routes.py"
    figures = []
    for _ in range(ROUNDS):
        time.sleep(2)  # worker and clock are up again
        saved = time.monotonic()
        source.touch()
        figures.append(dev.wait_for("| web ready again", saved) - saved)
    dev.stop()
    return figures


def factor_report(project: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(
        ["uv", "run", "pytest", "--factors", "-q"],
        cwd=project,
        env=env,
        capture_output=True,
        check=False,
    )
    return time.monotonic() - started


def spread(figures: list[float]) -> str:
    return f"{statistics.median(figures):.1f} s (of {', '.join(f'{f:.1f}' for f in figures)})"


def main() -> None:
    env = environment()
    with tempfile.TemporaryDirectory(prefix="devloop-") as scratch:
        project = Path(sys.argv[1]) if len(sys.argv) > 1 else bake(Path(scratch), env)
        install(project, env)
        subprocess.run(["rm", "-rf", str(project / ".local")], check=True)
        first = start(project, env)
        warm = [start(project, env) for _ in range(ROUNDS)]
        restart = restarts(project, env)
        factors = factor_report(project, env)
    print(f"dev first start to ready (initdb, database, migrations): {first:.1f} s")
    print(f"dev warm start to ready:                              {spread(warm)}")
    print(f"dev restart after a save to web ready:                {spread(restart)}")
    print(f"factor report (uv run pytest --factors):              {factors:.1f} s")


if __name__ == "__main__":
    main()
