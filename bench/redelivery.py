"""Redelivery after a crash: seconds from a worker's SIGKILL to another worker starting its job.

Prints figures; asserts nothing.

    uv run python bench/redelivery.py PROJECT [--rounds 20] [--database-url URL] [--redis-url URL]
    WORKER_HEARTBEAT_TIMEOUT=3 WORKER_MAINTENANCE_CHANCE=1000000 \
        uv run python bench/redelivery.py PROJECT

PROJECT is a baked and installed project (`uv sync` done in it). The script talks to it only
through its console scripts, its log lines and its servers: it creates a database of its own on
the PostgreSQL server of --database-url, runs `<project>-admin migrate` there and inserts one
note, then runs two `<project>-worker` processes (`uv run`, each in its own session) on the Redis
database of --redis-url, which must be empty and is emptied at the end. Each round sends one slow
job (`[note id, --work-seconds]` to --actor, sent with Dramatiq's public API by a small
`uv run python` inside PROJECT), SIGKILLs the process group of the worker that logged "job
started" for it, and times the other worker's "job started" line for the same message id. Then
it waits for that job to end and starts a new worker in place of the killed one.

The workers get this environment's WORKER_* and other settings (not DATABASE_URL or REDIS_URL),
so the settings under test are set as environment variables. Before the rounds it also reports
the Redis commands the two idle workers cause per second (from INFO commandstats, which counts
the whole server). Nothing else may use that Redis database while it runs: another project's
workers would take the messages, and its tests empty their databases. It refuses a database with
keys or other clients, but a test suite can start later, so on a shared machine give it a server
of its own (`redis-server --port 6390 --save ''`), which also keeps the command counts clean.

Exit status: 0 when every round was measured or timed out, 1 when the benchmark could not run,
130 when interrupted. Processes it started and the database it created are removed in every case.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
STARTED = "job started"  # the service's log events this script reads, matched on message_id
DONE = "job done"
WORKER_STARTED = "worker started"
START_TIMEOUT = 60.0  # a worker's start, a job's first start
SETTLE_SECONDS = 1.0  # both workers idle and polling before a job is sent
STOP_TIMEOUT = 30.0
# Redis commands counted while the workers idle: the dispatch script and what it runs inside.
COUNTED_COMMANDS = ("evalsha", "zadd", "lpop", "zrangebyscore", "smembers", "keys")

# Runs inside PROJECT: sends one message per line of JSON arguments read from stdin and answers
# with REPLY and its message id (an imported module may log to stdout too). An actor given as
# `module:attribute` is imported and sent with Actor.send; a bare actor name needs no module of
# the project: the message is built and enqueued with Dramatiq's Message and RedisBroker.
REPLY = "sent "
SENDER = """
import importlib, json, sys
import dramatiq
from dramatiq.brokers.redis import RedisBroker
url, namespace, queue_name, actor, reply = sys.argv[1:6]
if ":" in actor:
    module, _, attribute = actor.partition(":")
    send = getattr(importlib.import_module(module), attribute).send
else:
    broker = RedisBroker(url=url, namespace=namespace)
    def send(*args):
        return broker.enqueue(dramatiq.Message(
            queue_name=queue_name, actor_name=actor, args=args, kwargs={}, options={}
        ))
print(reply + dramatiq.__version__, flush=True)
for line in sys.stdin:
    print(reply + send(*json.loads(line)).message_id, flush=True)
"""


class BenchError(Exception):
    """The benchmark could not go on (a process failed or never logged what it should)."""


def environment(**settings: str) -> dict[str, str]:
    """This environment less what points at other servers or another venv, plus settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("VIRTUAL_ENV", "PYTHONPATH", "TEST_", "DATABASE_", "REDIS_"))
    }
    return env | {"PYTHONUNBUFFERED": "1"} | settings


def console_script(project: Path, kind: str) -> str:
    """The project's `<name>-<kind>` console script, preferring the directory's name."""
    scripts = tomllib.loads((project / "pyproject.toml").read_text())["project"]["scripts"]
    preferred = f"{project.name}-{kind}"
    if preferred in scripts:
        return preferred
    for name in scripts:
        if name.endswith(f"-{kind}"):
            return str(name)
    raise BenchError(f"{project}/pyproject.toml has no *-{kind} console script")


class Process:
    """A command under `uv run` in PROJECT, in its own session; its output lines as they come,
    each with the monotonic time it arrived and, for JSON lines, the parsed object."""

    def __init__(self, project: Path, argv: list[str], env: dict[str, str]) -> None:
        self.lines: list[tuple[float, dict[str, Any] | None, str]] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            ["uv", "run", *argv],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.process.stdout or ():
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            with self._changed:
                self.lines.append(
                    (time.monotonic(), parsed if isinstance(parsed, dict) else None, raw)
                )
                self._changed.notify_all()

    def find(
        self, event: str, after: float = 0.0, **fields: object
    ) -> tuple[float, dict[str, Any]] | None:
        """The first line of this event (and fields) that arrived after `after`."""
        with self._changed:
            for at, line, _ in self.lines:
                if (
                    at >= after
                    and line is not None
                    and line.get("event") == event
                    and all(line.get(name) == value for name, value in fields.items())
                ):
                    return at, line
        return None

    def wait_for(
        self, event: str, timeout: float, after: float = 0.0, **fields: object
    ) -> tuple[float, dict[str, Any]] | None:
        """find(), waiting up to timeout; None after it or once the process has ended."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (found := self.find(event, after, **fields)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    return None
                self._changed.wait(min(remaining, 0.05))
            return found

    def tail(self, count: int = 20) -> str:
        with self._changed:
            return "".join(raw for _, _, raw in self.lines[-count:])

    def kill(self) -> float:
        """SIGKILL the whole session (uv and the process it runs); the monotonic time sent."""
        killed = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        return killed

    def stop(self) -> None:
        """SIGTERM the session, then SIGKILL it if it is still there after STOP_TIMEOUT."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=STOP_TIMEOUT)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill()


class Sender:
    """The message sender running inside PROJECT (see SENDER)."""

    def __init__(self, project: Path, env: dict[str, str], args: argparse.Namespace) -> None:
        argv = ["python", "-c", SENDER, args.redis_url, args.namespace, args.queue, args.actor]
        argv.append(REPLY)
        self.process = subprocess.Popen(
            ["uv", "run", *argv],
            cwd=project,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.replies: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.dramatiq_version = self._reply()

    def _read(self) -> None:
        for line in self.process.stdout or ():
            if line.startswith(REPLY):
                self.replies.put(line.removeprefix(REPLY).strip())
        self.replies.put("")

    def _reply(self) -> str:
        try:
            reply = self.replies.get(timeout=START_TIMEOUT)
        except queue.Empty:
            reply = ""
        if not reply:
            raise BenchError("the sender inside the project did not answer (is it installed?)")
        return reply

    def send(self, *job_args: object) -> str:
        """Send one message; its message id."""
        if self.process.stdin is None:
            raise BenchError("the sender has no input")
        self.process.stdin.write(json.dumps(job_args) + "\n")
        self.process.stdin.flush()
        return self._reply()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Bench:
    """The servers, the workers and the rounds."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.project: Path = args.project.resolve()
        self.worker_script = console_script(self.project, "worker")
        self.admin_script = console_script(self.project, "admin")
        self.redis = redis.Redis.from_url(args.redis_url)
        self.admin_url = args.database_url.replace("postgres://", "postgresql://", 1)
        self.database = f"bench_redelivery_{uuid.uuid4().hex[:8]}"
        parts = urlsplit(self.admin_url)
        database_url = urlunsplit(parts._replace(path=f"/{self.database}"))
        self.env = environment(
            DATABASE_URL=database_url,
            REDIS_URL=args.redis_url,
            SECRET_KEY=secrets.token_urlsafe(32),
            ALLOWED_HOSTS="*",
        )
        self.workers: list[Process] = []
        self.sender: Sender | None = None
        self.heartbeat_timeout: float | None = None
        self.owns_redis = False  # emptied at the end only if it was empty at the start

    # Set-up and clean-up.

    def set_up(self) -> int:
        """Database, schema and one note; the note's id. Fails if the Redis database is in use."""
        if self.redis.dbsize():
            raise BenchError(f"{self.args.redis_url} is not empty: give an unused database")
        me = self.redis.client_id()
        database = str(self.redis.connection_pool.connection_kwargs.get("db", 0))
        others = [
            client
            for client in self.redis.client_list()
            if str(client.get("db")) == database and str(client.get("id")) != str(me)
        ]
        if others:
            # Another suite's workers would take (or flush) the messages this script times.
            raise BenchError(f"{len(others)} other clients use {self.args.redis_url}")
        self.owns_redis = True
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        migrate = subprocess.run(
            ["uv", "run", self.admin_script, "migrate"],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if migrate.returncode != 0:
            raise BenchError(
                f"{self.admin_script} migrate failed:\n{migrate.stdout}{migrate.stderr}"
            )
        with psycopg.connect(self.env["DATABASE_URL"], autocommit=True) as connection:
            row = connection.execute(
                "INSERT INTO notes (title, body) VALUES (%s, %s) RETURNING id",
                ("redelivery", "one two three"),
            ).fetchone()
        if row is None:
            raise BenchError("the note was not inserted")
        self.sender = Sender(self.project, self.env, self.args)
        return int(row[0])

    def clean_up(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.sender is not None:
            self.sender.close()
        if self.owns_redis:
            self.redis.flushdb()
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.database)
                )
            )

    # Workers.

    def start_worker(self) -> Process:
        worker = Process(self.project, [self.worker_script], self.env)
        self.workers.append(worker)
        found = worker.wait_for(WORKER_STARTED, START_TIMEOUT)
        if found is None:
            raise BenchError(f"a worker did not start:\n{worker.tail()}")
        timeout = found[1].get("heartbeat_timeout")
        if isinstance(timeout, int | float):
            self.heartbeat_timeout = float(timeout)
        return worker

    def replace(self, dead: Process) -> None:
        self.workers.remove(dead)
        self.start_worker()

    # Figures.

    def idle_commands(self, seconds: float) -> dict[str, tuple[float, float]]:
        """Per command: (calls per second, microseconds per call) over seconds of idle workers."""
        before = self.redis.info("commandstats")
        time.sleep(seconds)
        after = self.redis.info("commandstats")
        figures = {}
        for command in COUNTED_COMMANDS:
            key = f"cmdstat_{command}"
            old = before.get(key, {"calls": 0, "usec": 0})
            new = after.get(key, {"calls": 0, "usec": 0})
            calls = new["calls"] - old["calls"]
            usec = new["usec"] - old["usec"]
            figures[command] = (calls / seconds, usec / calls if calls else 0.0)
        return figures

    def round(self, note_id: int) -> float | None:
        """One kill; seconds from it to the other worker's start of the job (None: timed out)."""
        if self.sender is None:
            raise BenchError("set_up() first")
        time.sleep(SETTLE_SECONDS)
        message_id = self.sender.send(note_id, self.args.work_seconds)
        deadline = time.monotonic() + START_TIMEOUT
        taker = None
        while taker is None and time.monotonic() < deadline:
            taker = next((w for w in self.workers if w.find(STARTED, message_id=message_id)), None)
            time.sleep(0.005)
        if taker is None:
            raise BenchError(
                f"no worker started message {message_id} within {START_TIMEOUT:g} s"
                " (does another process take jobs from this Redis database?)"
            )
        killed = taker.kill()
        [survivor] = [worker for worker in self.workers if worker is not taker]
        timeout = self.args.timeout or (self.heartbeat_timeout or 60.0) + 60.0
        found = survivor.wait_for(STARTED, timeout, after=killed, message_id=message_id)
        if found is not None:
            survivor.wait_for(DONE, self.args.work_seconds + 30, message_id=message_id)
        elif survivor.process.poll() is not None:
            raise BenchError(f"the surviving worker exited:\n{survivor.tail()}")
        self.replace(taker)
        return None if found is None else found[0] - killed


def summary(figures: list[float]) -> str:
    ordered = sorted(figures)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return (
        f"min {ordered[0]:.2f}  median {statistics.median(ordered):.2f}  "
        f"p90 {p90:.2f}  max {ordered[-1]:.2f} s"
    )


def run(args: argparse.Namespace) -> int:
    bench = Bench(args)
    try:
        note_id = bench.set_up()
        bench.start_worker()
        bench.start_worker()
        if bench.sender is None:
            raise BenchError("no sender")
        chance = os.environ.get("WORKER_MAINTENANCE_CHANCE", "(the service's default)")
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"project: {bench.project}  dramatiq {bench.sender.dramatiq_version}")
        print(f"load average at the start: {load} ({os.cpu_count()} CPUs)")
        print(
            f"WORKER_HEARTBEAT_TIMEOUT (from the worker's start line): {bench.heartbeat_timeout} s"
            f"  WORKER_MAINTENANCE_CHANCE: {chance}  rounds: {args.rounds}"
        )
        if args.idle_seconds > 0:
            time.sleep(SETTLE_SECONDS)
            idle = bench.idle_commands(args.idle_seconds)
            print(f"Redis commands, two idle workers, {args.idle_seconds:g} s (whole server):")
            for command, (rate, usec) in idle.items():
                print(f"  {command:<14} {rate:8.1f} calls/s  {usec:6.1f} us/call")
        figures: list[float] = []
        missed = 0
        for number in range(1, args.rounds + 1):
            took = bench.round(note_id)
            if took is None:
                missed += 1
                print(f"round {number:3}: not redelivered within the round's timeout", flush=True)
            else:
                figures.append(took)
                print(f"round {number:3}: {took:.2f} s", flush=True)
        if figures:
            print(f"kill to redelivered job started: {summary(figures)}  ({len(figures)} rounds)")
            if bench.heartbeat_timeout is not None:
                beyond = [took - bench.heartbeat_timeout for took in figures]
                print(f"  beyond the heartbeat timeout:  {summary(beyond)}")
        if missed:
            print(f"not redelivered within the round's timeout: {missed} of {args.rounds}")
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"load average at the end: {load}")
        return 0
    finally:
        bench.clean_up()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path, help="a baked project with its venv synced")
    parser.add_argument("--rounds", type=int, default=20, help="kills to time (default 20)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL server where a database is created and dropped"
        " (default: $BENCH_DATABASE_URL, else %(default)s)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        help="an empty Redis database, emptied at the end"
        " (default: $BENCH_REDIS_URL, else %(default)s)",
    )
    parser.add_argument(
        "--actor",
        default="refresh_note_stats",
        help="the slow job: an actor name, sent to --queue in --namespace (default %(default)s),"
        " or module:attribute of the actor, imported in PROJECT and sent with its own broker",
    )
    parser.add_argument("--queue", default="default", help="queue of an actor given by name")
    parser.add_argument("--namespace", default="dramatiq", help="key prefix of an actor by name")
    parser.add_argument(
        "--work-seconds", type=float, default=2.0, help="the job's second argument (default 2)"
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=5.0,
        help="seconds of idle workers whose Redis commands are counted (0: skip; default 5)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds a round waits for the redelivery (default: heartbeat timeout + 60)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (BenchError, OSError, psycopg.Error, redis.RedisError) as error:
        print(f"redelivery benchmark failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
