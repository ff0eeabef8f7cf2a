"""The `-dev` command: the whole service on a developer's machine, until Ctrl-C.

It plays the platform. It starts local PostgreSQL and Valkey servers when `DATABASE_URL` or
`REDIS_URL` is unset (data in `.local/`), creates the database, runs the release, then runs web,
worker and clock from their Procfile commands with an environment it builds, restarting them
when a file under `src/` changes (after applying a new migration). The app processes still read
nothing but that environment. Written here rather than taken from honcho, which can neither
start the servers nor restart on a change, and stops every process when one exits.

Nothing outlives it: the app processes get SIGTERM from the kernel when it ends, however it ends
(PR_SET_PDEATHSIG), and the local servers belong to a keeper that stops them once no dev command
claims them (dev/localservers.py).
"""

from __future__ import annotations

import signal

# From the first moment, Ctrl-C (and SIGTERM, SIGHUP) asks the dev command to stop and never
# ends it with a KeyboardInterrupt traceback: these handlers go in before the other imports, and
# main() hands what they caught to Stop.
EARLY_SIGNALS: list[int] = []
for _signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_signum, lambda signum, _frame: EARLY_SIGNALS.append(signum))

import argparse
import ctypes
import errno
import json
import os
import queue
import secrets
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import FrameType
from typing import IO, Any

from . import localservers

PROCESS_TYPES = ("web", "worker", "clock")
# The log event that says a process type is up (web's is its readiness probe instead).
STARTED_EVENTS = {"worker": '"event":"worker started"', "clock": '"event":"clock started"'}
DATABASE_NAME = "{{ cookiecutter.package_name }}"  # the name .env.example and compose use
LOCAL_KEY_NAME = "local-dev"
DEFAULT_PORT = 8000
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 25.0  # longer than web's and the worker's own shutdown bounds below
# Shorter stop bounds than production's, so that a restart after a change takes a moment.
DEV_DEFAULTS = {
    "APP_ENV": "development",
    "LOG_LEVEL": "INFO",
    "GRACEFUL_TIMEOUT": "5",
    "WORKER_SHUTDOWN_TIMEOUT": "5",
    "PYTHONUNBUFFERED": "1",
}
EXIT_FAILED = 1
MIGRATIONS = "migrations/versions"  # a change here is applied (the release) before the restart
VERSIONS = Path(__file__).parents[1] / "migrations" / "versions"
RELEASED = "released.json"  # per database URL: the migrations as they were at its last release
MIGRATION_QUIET = 1.0  # seconds without a change: alembic's file is written, then ruff rewrites it
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# A missing or damaged file of .local/. A named tuple, as `except (A, B):` is formatted
# differently for Python 3.14 (PEP 758).
UNREADABLE = (OSError, ValueError)


class DevError(Exception):
    """Something the developer must fix; the message says what, in one line."""


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn that makes the kernel send the child SIGTERM when this process ends, however
    it ends (SIGKILL included): Linux only; elsewhere None."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here, not in the forked child
    parent = os.getpid()

    def die_with_parent() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent ended before the line above took effect
            os._exit(EXIT_FAILED)

    return die_with_parent


def _end_with_parent() -> None:
    """SIGTERM for this process when its parent ends (`uv run` killed, a terminal's shell gone):
    the dev command then stops as on Ctrl-C. Linux only."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def project_root(start: Path) -> Path:
    """The nearest directory at or above start that holds pyproject.toml (else start)."""
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").is_file():
            return directory
    return start


class Output:
    """Every line of every process, prefixed by its name; readable on a terminal, else raw."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.terminal = stream.isatty()
        self.lock = threading.Lock()
        self.renderer: Any = None
        if self.terminal:
            import structlog  # noqa: PLC0415  # only for the readable rendering

            self.renderer = structlog.dev.ConsoleRenderer(colors=True, sort_keys=False)

    def line(self, name: str, text: str) -> None:
        """Write one line of process `name`."""
        text = text.rstrip("\n")
        if self.renderer is not None:
            text = self._readable(text)
        with self.lock:
            try:
                self.stream.write(f"{name:<7}| {text}\n")
                self.stream.flush()
            except OSError:  # the terminal was closed (EIO) or the pipe's reader left
                pass

    def _readable(self, text: str) -> str:
        try:
            event = json.loads(text)
        except ValueError:
            return text
        if not isinstance(event, dict) or "event" not in event:
            return text
        timestamp = str(event.pop("ts", ""))
        event["timestamp"] = timestamp[11:19]  # HH:MM:SS of the UTC time
        event.pop("logger", None)
        return str(self.renderer(None, "info", event))


@dataclass
class Child:
    """One process type, run from its Procfile command, its output copied line by line."""

    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    output: Output
    process: subprocess.Popen[str] | None = None
    reader: threading.Thread | None = None
    restarts: int = field(default=0)
    up: threading.Event = field(default_factory=threading.Event)
    kept: list[str] | None = None  # when a list, the lines are kept here instead of shown

    def start(self) -> None:
        """Start the process in a session of its own (Ctrl-C reaches only this command), bound
        to end with it. Call it from the main thread: the kernel ties the parent-death signal to
        the thread that started the child."""
        self.up.clear()
        self.process = subprocess.Popen(  # noqa: S603  # the Procfile's own commands
            self.command,
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=_parent_death_signal(),  # noqa: PLW1509  # one prctl call, no lock
        )
        self.reader = threading.Thread(target=self._copy, args=(self.process,), daemon=True)
        self.reader.start()

    def _copy(self, process: subprocess.Popen[str]) -> None:
        started = STARTED_EVENTS.get(self.name)
        for text in process.stdout or ():
            if started is not None and started in text:
                self.up.set()
            if self.kept is None:
                self.output.line(self.name, text)
            else:
                self.kept.append(text)

    def exit_code(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, as a platform stops a process; SIGKILL after timeout."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.output.line("dev", f"{self.name} did not stop within {timeout:g} s: killed")
            process.kill()
            process.wait()
        if self.reader is not None:
            self.reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()

    def kill(self) -> None:
        """SIGKILL at once (a second Ctrl-C)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()


class Stop:
    """SIGINT, SIGTERM and SIGHUP as a flag; the main thread acts on it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.count = 0

    def install(self) -> Stop:
        """Handle the stop signals from now on (counting those that came before)."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._handle)
        self.count += len(EARLY_SIGNALS)
        if self.count:
            self.event.set()
        return self

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        self.event.set()


def procfile_commands(root: Path, bin_dir: Path) -> dict[str, list[str]]:
    """The Procfile's commands by process type, their programs resolved in this environment."""
    commands = {}
    for line in (root / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and command.strip():
            program, *args = shlex.split(command)
            commands[name.strip()] = [str(bin_dir / program), *args]
    return commands


def check_port_free(port: int) -> None:
    """Fail with one line when something already listens on the web port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))  # noqa: S104  # where web will bind
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            raise DevError(
                f"port {port} is taken (another dev run, or another service?): stop that, "
                f"or choose another port: PORT={port + 1} uv run ...-dev"
            ) from None


def secret_key(local: Path) -> str:
    """A random SECRET_KEY for this checkout, made once and kept in .local/."""
    path = local / "secret_key"
    if not path.exists():
        local.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def wait_ready(url: str, children: list[Child], stop: Stop, timeout: float) -> None:
    """Poll url until it answers 200 and wait for the other processes' start lines; fail if a
    process exits or time runs out."""
    import urllib.request  # noqa: PLC0415  # imported late: the dev command starts fast

    deadline = time.monotonic() + timeout
    web_ready = False
    while time.monotonic() < deadline and not stop.event.is_set():
        for child in children:
            code = child.exit_code()
            if code is not None:
                raise DevError(f"{child.name} exited with code {code} while starting (see above)")
        if not web_ready:
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310  # our own URL
                    web_ready = answer.status == HTTPStatus.OK
            except OSError:
                pass
        if web_ready and all(c.up.is_set() for c in children if c.name in STARTED_EVENTS):
            return
        stop.event.wait(0.05)
    if not stop.event.is_set():
        raise DevError(f"{url} did not answer 200 within {timeout:g} s (see the lines above)")


def watch_sources(source: Path, changes: queue.Queue[set[Path]], stop: Stop) -> threading.Thread:
    """Put the changed paths on changes whenever Python files under source change."""
    import watchfiles  # noqa: PLC0415  # only the dev command watches files

    def run() -> None:
        for batch in watchfiles.watch(
            source, watch_filter=watchfiles.PythonFilter(), stop_event=stop.event, debounce=300
        ):
            changes.put({Path(path) for _, path in batch})

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def build_parser() -> argparse.ArgumentParser:
    """The dev command line; the environment says the rest."""
    parser = argparse.ArgumentParser(
        prog="{{ cookiecutter.package_name }}-dev",
        description=(
            "Run the whole service locally: local PostgreSQL and Valkey unless DATABASE_URL and "
            "REDIS_URL are set, the release, then web, worker and clock until Ctrl-C."
        ),
    )
    commands = parser.add_subparsers(dest="action", metavar="ACTION")
    run = commands.add_parser(
        "run",
        help="run one command in the dev environment, e.g. alembic revision --autogenerate",
        description="Run one command with the environment the app processes get (the local "
        "servers started if needed, the schema migrated), then stop what was started.",
    )
    run.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    return parser


class Dev:
    """One run of the dev command."""

    def __init__(self, root: Path, environ: dict[str, str], output: Output, stop: Stop) -> None:
        self.root = root
        self.local = root / ".local"
        self.environ = environ
        self.output = output
        self.stop = stop
        self.claim: localservers.Claim | None = None
        self.keeper: int | None = None  # the local servers' keeper, when this run uses them
        self.children: list[Child] = []
        self.changes: queue.Queue[set[Path]] = queue.Queue()

    def say(self, text: str) -> None:
        """A line of the dev command itself."""
        self.output.line("dev", text)

    def environment(self) -> dict[str, str]:
        """The environment of every app process: the platform's part is ours to fill in."""
        env = dict(DEV_DEFAULTS) | self.environ
        env.setdefault("PORT", str(DEFAULT_PORT))
        # This environment's programs first: `-dev run alembic ...` also without `uv run`.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        if not env.get("SECRET_KEY"):
            env["SECRET_KEY"] = secret_key(self.local)
        if not env.get("DATABASE_URL") or not env.get("REDIS_URL"):
            servers = self.local_servers()
            if not env.get("DATABASE_URL"):
                if localservers.create_database(servers.database_url, DATABASE_NAME):
                    self.say(f"created database {DATABASE_NAME}")
                env["DATABASE_URL"] = servers.database(DATABASE_NAME)
            if not env.get("REDIS_URL"):
                env["REDIS_URL"] = servers.redis_url
        return env

    def local_servers(self) -> localservers.SharedServers:
        """Claim the local servers of .local/: those another dev command runs, else new ones."""
        with localservers.locked(self.local):
            self.claim = localservers.Claim(self.local)
            servers = localservers.running_servers(self.local)
            if servers is not None:
                others = [pid for pid in localservers.live_claims(self.local) if pid != os.getpid()]
                whose = f"dev run (pid {', '.join(map(str, others))})" if others else "keeper"
                self.say(f"using the local servers of the {whose} that is running (.local/)")
            else:
                left = localservers.stop_leftovers(self.local)
                if left:
                    self.say(f"stopped what an earlier run left running: {', '.join(left)}")
                self.say("starting the local PostgreSQL and Valkey (.local/)")
                servers, _ = localservers.start_keeper(self.local)
            self.keeper = servers.keeper
        return servers

    def run_command(self, command: list[str]) -> int:
        """Run one command in the dev environment (servers started, schema at head)."""
        commands = procfile_commands(self.root, Path(sys.executable).parent)
        try:
            env = self.environment()
            self.release(commands, env)
            try:
                completed = subprocess.run(  # noqa: S603  # the developer's own command
                    command,
                    env=env,
                    cwd=self.root,
                    check=False,
                    preexec_fn=_parent_death_signal(),  # one prctl call, no lock
                )
            except FileNotFoundError:
                raise DevError(f"no such command: {command[0]}") from None
            self.forget_release(env)
            return completed.returncode
        finally:
            self.shutdown()

    def release_if_changed(self, commands: dict[str, list[str]], env: dict[str, str]) -> None:
        """The release, unless this database had one since the last change of a migration."""
        marker = self.local / RELEASED
        try:
            released = json.loads(marker.read_text())
        except UNREADABLE:
            released = {}
        if released.get(env["DATABASE_URL"]) == migrations_fingerprint():
            self.say("no migration changed since the last release on this database")
            return
        self.release(commands, env)

    def release(
        self, commands: dict[str, list[str]], env: dict[str, str], kept: list[str] | None = None
    ) -> None:
        """Run the release process type to its end, as a platform does before the others."""
        release = Child("release", commands["release"], env, self.root, self.output, kept=kept)
        release.start()
        while release.exit_code() is None:
            if self.stop.event.wait(0.05):
                release.stop()
                return
        release.stop()
        code = release.exit_code()
        if code:
            self.forget_release(env)
            raise DevError(f"the release failed with exit code {code} (see its line above)")
        self.local.mkdir(parents=True, exist_ok=True)
        with localservers.locked(self.local):
            marker = self.local / RELEASED
            released = json.loads(marker.read_text()) if marker.exists() else {}
            released[env["DATABASE_URL"]] = migrations_fingerprint()
            marker.write_text(json.dumps(released))

    def forget_release(self, env: dict[str, str]) -> None:
        """The next start runs the release (a command run in the dev environment may have
        changed the schema)."""
        marker = self.local / RELEASED
        with localservers.locked(self.local):
            if marker.exists():
                released = json.loads(marker.read_text())
                released.pop(env["DATABASE_URL"], None)
                marker.write_text(json.dumps(released))

    def restart(self, changed: set[Path], commands: dict[str, list[str]], base: str) -> None:
        """Apply a new migration, then restart every app process (web, worker and clock all run
        the project's code); a failed migration leaves the running processes as they are."""
        names = ", ".join(sorted({path.name for path in changed}))
        env = self.children[0].env
        if any(MIGRATIONS in path.as_posix() for path in changed):
            self.say(f"changed: {names}; applying the migration first")
            lines: list[str] = []
            try:
                self.release(commands, env, kept=lines)
            except DevError:
                log = self.local / "release.log"
                log.write_text("".join(lines))
                self.say(
                    f"the migration failed: {error_line(lines)} (all of it: .local/{log.name}); "
                    "web, worker and clock go on as they were: fix it and save it again"
                )
                return
            for line in lines:
                self.output.line("release", line)
        self.say(f"changed: {names}; restarting {', '.join(PROCESS_TYPES)}")
        started = time.monotonic()
        stoppers = [threading.Thread(target=child.stop) for child in self.children]
        for thread in stoppers:
            thread.start()
        # web first, the others once it answers: on a laptop's few cores, web's start-up gets
        # them to itself
        web, *others = self.children
        try:
            for group, stopping in (([web], stoppers[:1]), (others, stoppers[1:])):
                for thread in stopping:
                    thread.join()
                for child in group:
                    child.restarts += 1
                    child.start()
                wait_ready(f"{base}/readyz", group, self.stop, READY_TIMEOUT)
                if group == [web] and not self.stop.event.is_set():
                    self.say(f"web ready again in {time.monotonic() - started:.1f} s")
        except DevError as error:
            self.say(f"{error}; save a file to restart")

    def run(self) -> int:
        """Start everything, wait for Ctrl-C, stop everything; the exit code."""
        try:
            port = int(self.environ.get("PORT") or DEFAULT_PORT)
        except ValueError:
            raise DevError("PORT must be a number") from None
        check_port_free(port)
        commands = procfile_commands(self.root, Path(sys.executable).parent)
        try:
            env = self.environment()
            if self.stop.event.is_set():
                return 0
            self.release_if_changed(commands, env)
            if self.stop.event.is_set():
                return 0
            key_path = self.local / "api_key"
            known = key_path.read_text().strip() if key_path.exists() else None
            key = known or self.new_api_key(commands, env)
            self.children = [
                Child(name, commands[name], env, self.root, self.output) for name in PROCESS_TYPES
            ]
            for child in self.children:
                child.start()
            base = f"http://127.0.0.1:{port}"
            wait_ready(f"{base}/readyz", self.children, self.stop, READY_TIMEOUT)
            if self.stop.event.is_set():
                return 0
            if known and not key_works(base, known):
                key = self.new_api_key(commands, env)  # the database was made anew
            self.banner(base, key)
            watch_sources(Path(__file__).parents[1], self.changes, self.stop)  # the code being run
            self.supervise(commands, base)
        finally:
            self.shutdown()
        return 0

    def new_api_key(self, commands: dict[str, list[str]], env: dict[str, str]) -> str:
        """A new API key called local-dev (any earlier one revoked), kept in .local/api_key.

        A running dev command keeps using the key in that file, so a second one (another PORT)
        does not make a new key: it would shut the first one's out."""
        admin = [commands["release"][0], "api-keys", "create", LOCAL_KEY_NAME, "--replace"]
        result = subprocess.run(  # noqa: S603  # the project's own admin command
            admin,
            env=env,
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            start_new_session=True,  # Ctrl-C reaches only this command
            preexec_fn=_parent_death_signal(),  # one prctl call
        )
        lines = result.stdout.strip().splitlines()
        if result.returncode or not lines:
            raise DevError(f"could not create the local API key: {result.stderr.strip()[-300:]}")
        key = lines[-1]
        self.local.mkdir(parents=True, exist_ok=True)
        path = self.local / "api_key"
        path.write_text(key + "\n")
        path.chmod(0o600)
        return key

    def banner(self, base: str, key: str) -> None:
        """Where the service answers, and a request to paste."""
        note = '{"title": "Hello", "body": "my first note"}'
        auth = '-H "Authorization: Bearer $(cat .local/api_key)"'
        self.say(f"ready: {base}  (API docs: {base}/docs; Ctrl-C stops everything)")
        self.say(f"API key {LOCAL_KEY_NAME} (also in .local/api_key): {key}")
        self.say(
            f"try: curl -s -X POST {base}/api/v1/notes {auth} "
            f"-H 'Content-Type: application/json' -d '{note}'"
        )
        self.say(f"     curl -s {base}/api/v1/notes {auth}")

    def supervise(self, commands: dict[str, list[str]], base: str) -> None:
        """Until Ctrl-C: restart after a change (here, in the main thread), report a process
        that exits; the next change starts it again."""
        reported: set[tuple[str, int]] = set()
        while not self.stop.event.is_set():
            try:
                changed = self.changes.get(timeout=0.2)
            except queue.Empty:
                changed = set()
            if changed:
                self.restart(self.settled(changed), commands, base)
                continue
            for child in self.children:
                code = child.exit_code()
                if code is not None and (child.name, child.restarts) not in reported:
                    reported.add((child.name, child.restarts))
                    self.say(f"{child.name} exited with code {code}; save a file to restart")

    def settled(self, changed: set[Path]) -> set[Path]:
        """The changes once a new migration file has stopped changing (alembic writes it, then
        ruff fixes and formats it): one restart, one release per migration."""
        while any(MIGRATIONS in path.as_posix() for path in changed):
            try:
                changed |= self.changes.get(timeout=MIGRATION_QUIET)
            except queue.Empty:
                break
        return changed

    def shutdown(self) -> None:
        """Stop the app processes (in parallel), then give up the claim on the servers: the last
        dev command out stops them, through their keeper."""
        if self.children:
            self.say("stopping web, worker and clock")
        killer = threading.Thread(target=self._kill_on_second_signal, daemon=True)
        killer.start()
        stoppers = [threading.Thread(target=child.stop) for child in self.children]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        if self.claim is None:
            return
        with localservers.locked(self.local):
            self.claim.release()
            others = localservers.live_claims(self.local)
        if others:
            pids = ", ".join(map(str, others))
            self.say(f"the local servers keep running for the other dev run (pid {pids})")
            return
        if self.keeper is not None and localservers.wait_for_keeper(
            self.local, localservers.STOP_TIMEOUT * 2
        ):
            self.say("stopped the local servers; their data stays in .local/")

    def _kill_on_second_signal(self) -> None:
        first = self.stop.count
        while any(child.exit_code() is None for child in self.children):
            if self.stop.count > max(first, 1):
                for child in self.children:
                    child.kill()
                return
            time.sleep(0.1)


def error_line(lines: list[str]) -> str:
    """The exception line of the last traceback in lines, else their last line; shortened."""
    text = [line.rstrip() for line in lines if line.strip()]
    starts = [i for i, line in enumerate(text) if line.startswith("Traceback (most recent")]
    after = text[starts[-1] + 1 :] if starts else []
    found = next((line for line in after if not line.startswith(" ")), text[-1] if text else "")
    return found[:240]


def migrations_fingerprint() -> list[list[object]]:
    """The migration files as they are: name, size and modification time of each."""
    return [
        [path.name, path.stat().st_size, path.stat().st_mtime_ns]
        for path in sorted(VERSIONS.glob("*.py"))
    ]


def key_works(base: str, key: str) -> bool:
    """Whether the API takes key (it does not once the database was made anew)."""
    import urllib.request  # noqa: PLC0415  # imported late: the dev command starts fast

    request = urllib.request.Request(  # noqa: S310  # our own URL
        f"{base}/api/v1/notes?limit=1", headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            return bool(answer.status == HTTPStatus.OK)
    except OSError:
        return False


def main(argv: list[str] | None = None) -> None:
    """Entry point of `-dev`."""
    stop = Stop().install()  # first: Ctrl-C from now on is a flag, never a traceback
    _end_with_parent()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.action == "run" and not args.command:
        parser.error("run needs a command, e.g.: run alembic revision --autogenerate -m 'x'")
    output = Output(sys.stdout)
    root = project_root(Path.cwd())
    # The dev command is the platform here: it reads the developer's environment and hands the
    # app processes theirs. The app's own modules read only their settings.
    dev = Dev(root, dict(os.environ), output, stop)
    try:
        code = dev.run_command(args.command) if args.action == "run" else dev.run()
    except (DevError, localservers.LocalServerError) as error:
        print(f"error: {error}", file=sys.stderr)  # noqa: T201  # one line for a human
        code = EXIT_FAILED
    sys.exit(code)
