"""Side-by-side benchmark: the generated web service against two reference apps.

The references: a bare FastAPI app (baseline_app.py: start-up, memory, /healthz) and the floor
(floor_app.py: bare FastAPI, an asyncpg pool, the same queries, orjson) for the database-backed
routes.

    uv run python bench/run.py              # full run, a few minutes
    uv run python bench/run.py --smoke      # seconds per figure: proves the benchmark still works

It bakes the default project into a scratch directory, installs it from its lock as the
Dockerfile does, creates a database, runs the Procfile's release, seeds notes, and then measures
the references and the generated `web` in alternating runs, then the generated `web`'s API
route with tracing and metrics on against off. It prints a table of figures (medians
with min-max) and ratios to the baseline, marks the issue's budget lines met or NOT met, and
writes every sample as JSON. It never asserts a figure: exit status 0 means that every figure
was measured, 1 that one could not be, 130 that it was interrupted. Processes it started and
the database it created are removed in every case, and its Redis database (8) is emptied.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import redis
from psycopg import sql

import bakes
import loadgen
import procs
import report
from procs import HOST, Children, MeasurementError

BENCH_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
BASELINE_SCRIPT = BENCH_DIR / "baseline_app.py"
FLOOR_SCRIPT = BENCH_DIR / "floor_app.py"
SIDES = ("baseline", "floor", "generated")
DEEP_ROWS = 5_000  # how deep the deep page starts

POSTGRES_ADMIN = f"host={HOST} port=5432 user=postgres dbname=postgres"
POSTGRES_URL = f"postgresql://postgres@{HOST}:5432"
# The benchmark's own Redis database: creates enqueue jobs there (no worker runs), so it is
# emptied before and after a run.
BENCH_REDIS_DB = 8
BENCH_REDIS_URL = f"redis://{HOST}:6379/{BENCH_REDIS_DB}"
SUITE_REDIS_URL = f"redis://{HOST}:6379/2"  # its three workers take databases 2 to 7
SETTLE_SECONDS = 0.3  # quiet time before an "idle" SIGTERM or an RSS reading
LIST_PATH = "/api/v1/notes?limit=20"
READ_PATH = "/api/v1/notes/1"

# Endpoint key -> (path, wrk script). Keys appear in the JSON and in report.py. The deep page's
# path names a cursor, made once the notes are seeded (Benchmark.release_and_seed).
ENDPOINTS = {
    "healthz": ("/healthz", "get"),
    "read": (READ_PATH, "get"),
    "list": (LIST_PATH, "get"),
    "list_deep": (LIST_PATH, "get"),
    "create": ("/api/v1/notes", "post"),
}
# One round of load, in order; each pair of reference and generated runs swaps places every
# round.
LOAD_RUNS = (
    ("baseline", "healthz", 64),
    ("generated", "healthz", 64),
    ("floor", "read", 64),
    ("generated", "read", 64),
    ("floor", "list", 64),
    ("generated", "list", 64),
    ("generated", "list_deep", 64),
    ("generated", "create", 64),
    ("generated", "list", 8),
    ("generated", "list", 256),
)
TABLE_LOAD_KEYS = (
    ("healthz@64", "/healthz, 64 conns:"),
    ("read@64", "read one note (API route), 64 conns:"),
    ("list@64", "list (20 rows), 64 conns:"),
    ("list_deep@64", f"list {DEEP_ROWS:,} rows deep, 64 conns:"),
    ("list@8", "list, 8 conns:"),
    ("list@256", "list, 256 conns:"),
    ("create@64", "create, 64 conns:"),
)
OBSERVABILITY_MODES = ("off", "on")
# The servers the generated app was measured on (Benchmark.compare_servers), each with its own
# workers and request bounds, serving the same app factory (`<package>.web:app`).
COMPARED_SERVERS = ("granian", "uvicorn", "gunicorn")
# Installed beside the generated project for the reference apps and the comparison only.
REFERENCE_SERVERS = ("uvicorn[standard]>=0.55", "gunicorn>=25.1")
VERSION_PACKAGES = (
    "fastapi",
    "starlette",
    "granian",
    "gunicorn",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "sqlalchemy",
    "psycopg",
    "redis",
    "structlog",
    "orjson",
)


@dataclass(frozen=True)
class Plan:
    """How much of everything to measure."""

    cold_starts: int
    warmup_starts: int
    rounds: int
    seconds: int
    warmup_seconds: int
    bakes: int
    seed: int
    inflight: int
    hold_seconds: float
    suite_collect_only: bool


FULL = Plan(
    cold_starts=5,
    warmup_starts=1,
    rounds=3,
    seconds=5,
    warmup_seconds=2,
    bakes=5,
    seed=6000,
    inflight=3,
    hold_seconds=0.5,
    suite_collect_only=False,
)
SMOKE = Plan(
    cold_starts=2,
    warmup_starts=0,
    rounds=1,
    seconds=1,
    warmup_seconds=0,
    bakes=1,
    seed=5100,
    inflight=1,
    hold_seconds=0.3,
    suite_collect_only=True,
)


class Progress:
    """Progress lines on stderr, each with the seconds since the start."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:6.1f} s] {message}", file=sys.stderr, flush=True)


@dataclass
class Server:
    """A web server to measure: how to start it and where its output goes."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path

    def start(self, children: Children) -> tuple[subprocess.Popen[bytes], int, float]:
        """Spawn on a free port and wait for /healthz; returns (process, port, seconds to 200)."""
        port = procs.free_port()
        with self.log.open("ab") as out:
            started = time.perf_counter()
            process = children.start(
                self.argv,
                env={**self.env, "PORT": str(port)},
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            ready = procs.wait_ready(process, port, started)
        except MeasurementError as error:
            children.end(process)
            tail = self.log.read_text(errors="replace").splitlines()[-15:]
            raise MeasurementError(
                f"{self.name}: {error}; the end of its output:\n" + "\n".join(tail)
            ) from None
        return process, port, ready


def _sides() -> dict[str, list[Any]]:
    return {side: [] for side in SIDES}


@dataclass
class Samples:
    """Every sample of the run, by figure and side."""

    ready_s: dict[str, list[float]] = field(default_factory=_sides)
    sigterm_idle_s: dict[str, list[float]] = field(default_factory=_sides)
    sigterm_loaded_s: dict[str, list[float]] = field(default_factory=_sides)
    exit_codes: dict[str, list[int]] = field(default_factory=_sides)
    rss_mib: dict[str, list[float]] = field(default_factory=_sides)
    load: dict[str, dict[str, list[dict[str, Any]]]] = field(
        default_factory=lambda: {side: {} for side in SIDES}
    )
    sigterm_inflight: list[dict[str, Any]] = field(default_factory=list)
    bake_s: dict[str, list[float]] = field(
        default_factory=lambda: {"one_file": [], "no_lock": [], "with_lock": []}
    )
    setup_s: dict[str, float] = field(default_factory=dict)
    access_log: dict[str, Any] = field(default_factory=dict)
    suite: dict[str, Any] = field(default_factory=dict)
    suite_local: dict[str, Any] = field(default_factory=dict)
    dev: dict[str, Any] = field(default_factory=dict)
    # The API route with tracing and metrics off and on (Benchmark.observability): wrk results
    # with the start's seconds to /healthz, by mode.
    observability: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {mode: [] for mode in OBSERVABILITY_MODES}
    )
    # The generated app on each compared server: read@64 and list@64 wrk results with the
    # server's ready, RSS and idle-stop figures, by server.
    servers: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {name: [] for name in COMPARED_SERVERS}
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds per figure")
    parser.add_argument("--out", type=Path, help="JSON file (default: bench/results/<time>.json)")
    parser.add_argument("--rounds", type=int, help="load rounds (full: 3, smoke: 1)")
    parser.add_argument("--seconds", type=int, help="seconds per wrk run (full: 5, smoke: 1)")
    parser.add_argument("--cold-starts", type=int, help="cold starts per side (full: 5)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch directory (the bake) for profiling"
    )
    parser.add_argument(
        "--template",
        type=Path,
        default=TEMPLATE_DIR,
        help="template to bake (default: this repository), e.g. a copy to compare with",
    )
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    """The mode's plan with the command line's overrides, each bounded."""
    plan = SMOKE if args.smoke else FULL
    overrides: dict[str, Any] = {}
    for name, low, high in (("rounds", 1, 20), ("seconds", 1, 60), ("cold_starts", 1, 50)):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = max(low, min(high, value))
    return Plan(**{**asdict(plan), **overrides})


def tool_env(scratch: Path) -> dict[str, str]:
    """Environment for cookiecutter, uv and the generated suite: ours, minus other venvs."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "PYTHONHOME"}
    }
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    env["COOKIECUTTER_CONFIG"] = str(bakes.cookiecutter_config(scratch / "cookiecutter"))
    return env


def server_env(project: Path, database_url: str) -> dict[str, str]:
    """Production settings from the environment alone, as the Dockerfile's runtime stage has."""
    keep = {name: os.environ[name] for name in ("HOME", "LANG", "LC_ALL") if name in os.environ}
    return {
        **keep,
        "PATH": os.pathsep.join(
            [str(project / ".venv" / "bin"), "/usr/local/bin", "/usr/bin", "/bin"]
        ),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "APP_ENV": "production",
        "DATABASE_URL": database_url,
        "REDIS_URL": BENCH_REDIS_URL,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": f"{HOST},localhost",
        "RATE_LIMIT_PER_MINUTE": "0",  # writes are measured, not limited
        "LOG_LEVEL": "INFO",
    }


class _DiscardingHandler(BaseHTTPRequestHandler):
    """Takes an OTLP/HTTP export, answers 200 and forgets it."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def discarding_otlp_receiver() -> Iterator[str]:
    """A loopback OTLP/HTTP endpoint that accepts spans and keeps none; its URL."""
    server = ThreadingHTTPServer((HOST, 0), _DiscardingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def deep_cursor(after_id: int) -> str:
    """The generated list's cursor of the page after note `after_id` (notes/cursor.py's form)."""
    return base64.urlsafe_b64encode(f"n:{after_id}".encode()).decode().rstrip("=")


def procfile_command(project: Path, process_type: str) -> list[str]:
    """A Procfile command with its program resolved in the project's virtual environment."""
    for line in (project / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process_type:
            program, *args = command.split()
            return [str(project / ".venv" / "bin" / program), *args]
    raise MeasurementError(f"the Procfile has no {process_type} process")


def machine() -> dict[str, Any]:
    """The machine the figures come from."""
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "kernel": platform.release(),
        "bench_python": platform.python_version(),
    }


def versions(children: Children, python: Path, wrk: str) -> dict[str, Any]:
    """Versions of the generated project's interpreter and serving stack, and of wrk."""
    code = (
        "import importlib.metadata as m, json, platform\n"
        "def v(n):\n"
        "    try:\n        return m.version(n)\n"
        "    except m.PackageNotFoundError:\n        return None\n"
        f"print(json.dumps({{'python': platform.python_version(), "
        f"**{{n: v(n) for n in {list(VERSION_PACKAGES)!r}}}}}))"
    )
    _, out = children.run([str(python), "-c", code], env={}, what="version probe")
    found: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    probe = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    found["wrk"] = (
        (probe.stdout or probe.stderr).splitlines()[0] if (probe.stdout or probe.stderr) else None
    )
    return found


@contextlib.contextmanager
def database(progress: Progress) -> Iterator[str]:
    """A database of the benchmark's own, dropped (connections and all) on the way out."""
    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    progress(f"created database {name}")
    try:
        yield f"{POSTGRES_URL}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        progress(f"dropped database {name}")


@contextlib.contextmanager
def redis_database(progress: Progress) -> Iterator[None]:
    """The benchmark's Redis database, empty at the start and emptied on the way out."""
    client = redis.Redis(host=HOST, port=6379, db=BENCH_REDIS_DB, socket_timeout=10)
    try:
        client.flushdb()
        yield
    finally:
        client.flushdb()
        client.close()
        progress(f"emptied Redis database {BENCH_REDIS_DB}")


def interrupt_on_signals() -> None:
    """Turn SIGINT, SIGTERM and SIGHUP into KeyboardInterrupt, so clean-up always runs.

    SIGINT too: a shell starts background jobs with it ignored, and Python then keeps it so.
    """

    def handler(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


class Benchmark:
    """One run: its plan, scratch directory, child processes and samples."""

    def __init__(
        self, plan: Plan, scratch: Path, wrk: str, progress: Progress, template: Path
    ) -> None:
        self.plan = plan
        self.template = template
        self.scratch = scratch
        self.wrk = wrk
        self.progress = progress
        self.children = Children()
        self.samples = Samples()
        self.env = tool_env(scratch)
        self.scripts = loadgen.write_scripts(scratch)
        self.meta: dict[str, Any] = {}
        self.project = Path()
        self.auth: dict[str, str] = {}
        self.servers: dict[str, Server] = {}
        self.endpoints = dict(ENDPOINTS)

    # -- set-up ---------------------------------------------------------------------------

    def bake_project(self) -> None:
        """Bake the default project (hooks and uv lock included) and time it."""
        cookiecutter = str(Path(sys.executable).parent / "cookiecutter")
        seconds, self.project = bakes.bake(
            self.children,
            cookiecutter,
            self.template,
            self.scratch / "bake",
            self.env,
            "init_git=no",
        )
        self.samples.bake_s["with_lock"].append(seconds)
        self.progress(f"baked {self.project.name} with uv lock in {seconds:.2f} s")

    def time_bakes(self) -> None:
        """Bake times, alternating: one-file template, no uv lock, with uv lock."""
        cookiecutter = str(Path(sys.executable).parent / "cookiecutter")
        one_file = bakes.make_one_file_template(self.scratch / "one-file-template")
        stub = bakes.stub_uv(self.scratch / "stub-uv")
        no_uv = {**self.env, "PATH": f"{stub}{os.pathsep}{self.env.get('PATH', '')}"}
        kinds = {
            "one_file": (one_file, self.env, ()),
            "no_lock": (self.template, no_uv, ("init_git=no",)),
            "with_lock": (self.template, self.env, ("init_git=no",)),
        }
        order = list(kinds)
        for i in range(self.plan.bakes):
            for kind in order[i % 3 :] + order[: i % 3]:
                # The project bake above was the first with-lock sample.
                if kind == "with_lock" and i == self.plan.bakes - 1:
                    continue
                template, env, extra = kinds[kind]
                out = self.scratch / "bakes" / f"{kind}-{i}"
                seconds, _ = bakes.bake(self.children, cookiecutter, template, out, env, *extra)
                bakes.discard(out)
                self.samples.bake_s[kind].append(seconds)
                self.progress(f"bake {i + 1}/{self.plan.bakes} {kind}: {seconds:.2f} s")

    def install(self) -> None:
        """Production install from the lock, as the Dockerfile's build stage runs it."""
        argv = ["uv", "sync", "--locked", "--no-dev", "--no-editable", "--compile-bytecode"]
        seconds, _ = self.children.run(argv, env=self.env, cwd=self.project, what="uv sync")
        self.samples.setup_s["uv_sync_no_dev"] = seconds
        self.meta["install"] = " ".join(argv)
        # The reference apps run on uvicorn, as their authors would; the comparison on all three.
        python = str(self.project / ".venv" / "bin" / "python")
        extra = ["uv", "pip", "install", "--quiet", "--python", python, *REFERENCE_SERVERS]
        self.children.run(extra, env=self.env, cwd=self.project, what="uv pip install")
        self.meta["versions"] = versions(
            self.children, self.project / ".venv" / "bin" / "python", self.wrk
        )
        self.progress(f"installed ({' '.join(argv)}) in {seconds:.2f} s")

    def release_and_seed(self, database_url: str) -> None:
        """Run the Procfile's release, then seed notes with the admin command."""
        env = server_env(self.project, database_url)
        release = procfile_command(self.project, "release")
        seconds, _ = self.children.run(release, env=env, cwd=self.project, what="release")
        self.samples.setup_s["release"] = seconds
        self.progress(
            f"release ({Path(release[0]).name} {' '.join(release[1:])}) in {seconds:.2f} s"
        )
        seed = [release[0], "seed-notes", str(self.plan.seed)]
        seconds, _ = self.children.run(seed, env=env, cwd=self.project, what="seed-notes")
        self.samples.setup_s["seed"] = seconds
        self.progress(f"seeded {self.plan.seed} notes in {seconds:.2f} s")
        # The API routes need a key; the probes and the baseline ignore it.
        make_key = [release[0], "api-keys", "create", "bench", "--replace"]
        _, out = self.children.run(make_key, env=env, cwd=self.project, what="api-keys create")
        self.auth = {"Authorization": f"Bearer {out.strip().splitlines()[-1]}"}
        python = str(self.project / ".venv" / "bin" / "python")
        logs = self.scratch / "logs"
        logs.mkdir()
        self.servers = {
            "baseline": Server(
                "baseline", [python, str(BASELINE_SCRIPT)], env, self.project, logs / "baseline.log"
            ),
            "floor": Server(
                "floor",
                [python, str(FLOOR_SCRIPT)],
                {**env, "DATABASE_URL": database_url},
                self.project,
                logs / "floor.log",
            ),
            "generated": Server(
                "generated",
                procfile_command(self.project, "web"),
                env,
                self.project,
                logs / "generated.log",
            ),
        }
        # The seeded notes have ids 1 to seed: the page after id seed - DEEP_ROWS starts that deep.
        self.endpoints["list_deep"] = (
            f"{LIST_PATH}&cursor={deep_cursor(self.plan.seed - DEEP_ROWS)}",
            "get",
        )
        self.meta["commands"] = {name: s.argv for name, s in self.servers.items()}

    # -- measurements ----------------------------------------------------------------------

    def cold_starts(self) -> None:
        """Spawn to first 200, then an idle SIGTERM to exit, alternating which side goes first."""
        total = self.plan.warmup_starts + self.plan.cold_starts
        for i in range(total):
            warm_up = i < self.plan.warmup_starts
            order = ("baseline", "generated") if i % 2 == 0 else ("generated", "baseline")
            for side in order:
                process, _, ready = self.servers[side].start(self.children)
                time.sleep(SETTLE_SECONDS)
                stopped, code = procs.terminate_timed(self.children, process)
                label = (
                    "warm-up (not counted)"
                    if warm_up
                    else f"{i - self.plan.warmup_starts + 1}/{self.plan.cold_starts}"
                )
                self.progress(
                    f"cold start {label} {side}: ready {ready:.3f} s,"
                    f" SIGTERM to exit {stopped:.3f} s (exit {code})"
                )
                if not warm_up:
                    self.samples.ready_s[side].append(ready)
                    self.samples.sigterm_idle_s[side].append(stopped)
                    self.samples.exit_codes[side].append(code)

    @property
    def wrk_headers(self) -> list[str]:
        """The API key's header as wrk takes it."""
        return [f"{name}: {value}" for name, value in self.auth.items()]

    def _warm(self, port: int, side: str) -> None:
        keys = {
            "baseline": ["healthz"],
            "floor": ["read", "list"],
            "generated": ["healthz", "read", "list", "list_deep", "create"],
        }[side]
        for key in keys:
            path, script = self.endpoints[key]
            if self.plan.warmup_seconds:
                loadgen.run_wrk(
                    self.wrk,
                    self.scripts[script],
                    port,
                    path,
                    connections=64,
                    seconds=self.plan.warmup_seconds,
                    headers=self.wrk_headers,
                )
            elif script == "get":
                for _ in range(20):
                    procs.get(port, path, headers=self.auth)

    def load_rounds(self) -> None:
        """Each round: start both servers, load them alternately with wrk, read RSS, stop them."""
        for r in range(self.plan.rounds):
            order = SIDES if r % 2 == 0 else tuple(reversed(SIDES))
            running: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
            for side in order:
                process, port, _ = self.servers[side].start(self.children)
                running[side] = (process, port)
            for side in order:
                self._warm(running[side][1], side)
            runs = list(LOAD_RUNS)
            if r % 2:
                for first in (0, 2, 4):  # the reference/generated pairs
                    runs[first], runs[first + 1] = runs[first + 1], runs[first]
            for side, key, connections in runs:
                path, script = self.endpoints[key]
                result = loadgen.run_wrk(
                    self.wrk,
                    self.scripts[script],
                    running[side][1],
                    path,
                    connections=connections,
                    seconds=self.plan.seconds,
                    headers=self.wrk_headers,
                )
                name = f"{key}@{connections}"
                self.samples.load[side].setdefault(name, []).append(result.as_dict())
                self.progress(
                    f"round {r + 1}/{self.plan.rounds} {side} {name}: {result.rps:,.0f} req/s,"
                    f" p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms,"
                    f" {result.errors} errors"
                )
            time.sleep(SETTLE_SECONDS)
            for side in order:
                rss = procs.tree_rss_mib(running[side][0].pid)
                self.samples.rss_mib[side].append(rss)
            for side in order:
                stopped, code = procs.terminate_timed(self.children, running[side][0])
                self.samples.sigterm_loaded_s[side].append(stopped)
                if side != "floor":
                    self.samples.exit_codes[side].append(code)
                self.progress(
                    f"round {r + 1}/{self.plan.rounds} {side}:"
                    f" RSS {self.samples.rss_mib[side][-1]:.1f} MiB,"
                    f" idle SIGTERM to exit {stopped:.3f} s (exit {code})"
                )

    def observability(self) -> None:
        """The API route (read one note, 64 connections) of the generated web with tracing
        (to a loopback OTLP receiver that discards) and metrics on, against both off; one server
        at a time, alternating which goes first."""
        generated = self.servers["generated"]
        with discarding_otlp_receiver() as endpoint:
            for r in range(self.plan.rounds):
                order = OBSERVABILITY_MODES if r % 2 == 0 else tuple(reversed(OBSERVABILITY_MODES))
                for mode in order:
                    env = dict(generated.env)
                    if mode == "on":
                        env |= {
                            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                            "METRICS_PORT": str(procs.free_port()),
                        }
                    server = Server(
                        f"generated, observability {mode}",
                        generated.argv,
                        env,
                        generated.cwd,
                        generated.log,
                    )
                    process, port, ready = server.start(self.children)
                    self._warm(port, "floor")  # the read and list routes
                    path, script = self.endpoints["read"]
                    result = loadgen.run_wrk(
                        self.wrk,
                        self.scripts[script],
                        port,
                        path,
                        connections=64,
                        seconds=self.plan.seconds,
                        headers=self.wrk_headers,
                    )
                    procs.terminate_timed(self.children, process)
                    self.samples.observability[mode].append({**result.as_dict(), "ready_s": ready})
                    self.progress(
                        f"round {r + 1}/{self.plan.rounds} observability {mode} read@64:"
                        f" {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms,"
                        f" ready in {ready:.3f} s, {result.errors} errors"
                    )

    def compare_servers(self) -> None:
        """The generated app (read one note and the list, 64 connections) on granian (its
        Procfile web), uvicorn (httptools, uvloop, its own workers) and gunicorn's ASGI worker,
        one server at a time, alternating the order each round."""
        generated = self.servers["generated"]
        package = Path(generated.argv[0]).name.removesuffix("-web")
        bin_dir = self.project / ".venv" / "bin"
        commands = {
            "granian": generated.argv,
            "uvicorn": [
                "sh",
                "-c",
                f"exec {bin_dir}/uvicorn --factory {package}.processes.web:app"
                ' --host 0.0.0.0 --port "$PORT"'
                " --http httptools --loop uvloop --workers 1 --no-access-log --interface asgi3"
                " --timeout-graceful-shutdown 20",
            ],
            # gunicorn binds 0.0.0.0:$PORT by itself when PORT is set.
            "gunicorn": [
                str(bin_dir / "gunicorn"),
                "-k",
                "asgi",
                "--workers",
                "1",
                "--graceful-timeout",
                "20",
                f"{package}.processes.web:app()",
            ],
        }
        for r in range(self.plan.rounds):
            order = COMPARED_SERVERS if r % 2 == 0 else tuple(reversed(COMPARED_SERVERS))
            for name in order:
                server = Server(
                    f"generated on {name}",
                    commands[name],
                    generated.env,
                    generated.cwd,
                    self.scratch / "logs" / f"server-{name}.log",
                )
                process, port, ready = server.start(self.children)
                self._warm(port, "floor")
                figures: dict[str, Any] = {"ready_s": ready}
                for key in ("read", "list"):
                    path, script = self.endpoints[key]
                    result = loadgen.run_wrk(
                        self.wrk,
                        self.scripts[script],
                        port,
                        path,
                        connections=64,
                        seconds=self.plan.seconds,
                        headers=self.wrk_headers,
                    )
                    figures[key] = result.as_dict()
                time.sleep(SETTLE_SECONDS)
                figures["rss_mib"] = procs.tree_rss_mib(process.pid)
                figures["sigterm_s"], figures["exit"] = procs.terminate_timed(
                    self.children, process
                )
                self.samples.servers[name].append(figures)
                self.progress(
                    f"round {r + 1}/{self.plan.rounds} server {name}: read@64"
                    f" {figures['read']['rps']:,.0f} req/s p99 {figures['read']['p99_ms']:.1f} ms,"
                    f" list@64 {figures['list']['rps']:,.0f} req/s, ready {ready:.3f} s,"
                    f" RSS {figures['rss_mib']:.1f} MiB, stop {figures['sigterm_s']:.3f} s"
                )

    def inflight(self, database_url: str) -> None:
        """SIGTERM while a list request waits on a table lock; the lock goes after hold_seconds.

        The request is in the app, holding a pooled connection, when the signal arrives; a
        graceful server answers it once the lock is released and exits right after.
        """
        for i in range(self.plan.inflight):
            process, port, _ = self.servers["generated"].start(self.children)
            procs.get(
                port, LIST_PATH, headers=self.auth
            )  # one pooled connection, as in steady state
            outcome: dict[str, Any] = {}

            def request(port: int = port, outcome: dict[str, Any] = outcome) -> None:
                try:
                    outcome["status"], _ = procs.get(port, LIST_PATH, timeout=60, headers=self.auth)
                except OSError as error:
                    outcome["status"] = f"{type(error).__name__}"
                outcome["done"] = time.perf_counter()

            with (
                psycopg.connect(database_url) as locker,
                psycopg.connect(database_url, autocommit=True) as watcher,
            ):
                locker.execute("LOCK TABLE notes IN ACCESS EXCLUSIVE MODE")
                thread = threading.Thread(target=request, daemon=True)
                thread.start()
                self._wait_for_lock_waiter(watcher, locker.info.backend_pid)
                signalled = time.perf_counter()
                process.send_signal(signal.SIGTERM)
                time.sleep(self.plan.hold_seconds)
                locker.commit()
                released = time.perf_counter()
            code = procs.wait_exit(process)
            exited = time.perf_counter()
            if code is None:
                self.children.end(process)
                raise MeasurementError("generated web did not exit after its in-flight request")
            self.children.forget(process)
            thread.join(timeout=10)
            sample = {
                "sigterm_to_exit_s": exited - signalled,
                "release_to_exit_s": exited - released,
                "hold_s": self.plan.hold_seconds,
                "status": outcome.get("status", "no answer"),
                "answered_before_exit": "done" in outcome and outcome["done"] <= exited,
                "exit_code": code,
            }
            self.samples.sigterm_inflight.append(sample)
            self.progress(
                f"in flight {i + 1}/{self.plan.inflight}: answer {sample['status']},"
                f" SIGTERM to exit {sample['sigterm_to_exit_s']:.3f} s"
                f" ({sample['release_to_exit_s']:.3f} s after the lock went)"
            )

    def _wait_for_lock_waiter(self, watcher: psycopg.Connection[Any], locker_pid: int) -> None:
        deadline = time.perf_counter() + 10
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND pid <> %s"
        )
        while time.perf_counter() < deadline:
            row = watcher.execute(query, (locker_pid,)).fetchone()
            if row and row[0]:
                return
            time.sleep(0.01)
        raise MeasurementError("the in-flight request never reached the database")

    def count_access_lines(self) -> None:
        """Check that the generated server really wrote its JSON access log while loaded."""
        log = self.servers["generated"].log
        lines = requests = 0
        first: dict[str, Any] | None = None
        with log.open("rb") as handle:
            for line in handle:
                lines += 1
                if b'"event":"request"' in line:
                    requests += 1
                    if first is None:
                        with contextlib.suppress(ValueError):
                            first = json.loads(line)
        served = sum(
            run["requests"] for runs in self.samples.load["generated"].values() for run in runs
        )
        self.samples.access_log = {
            "lines": lines,
            "request_lines": requests,
            "wrk_requests": served,
            "example": first,
        }
        self.progress(
            f"generated access log: {requests:,} request lines for {served:,} measured requests"
        )
        if requests < served:
            raise MeasurementError(
                f"the generated web logged {requests:,} access lines for {served:,} requests:"
                " the comparison is meant with its access log on"
            )

    def suite(self) -> None:
        """The generated project's own test suite, installed with its dev group: on this
        machine's servers (TEST_*_URL), then on the throwaway servers it starts without them."""
        env = {
            name: value
            for name, value in self.env.items()
            if name not in ("DATABASE_URL", "REDIS_URL", "TEST_DATABASE_URL", "TEST_REDIS_URL")
        }
        seconds, _ = self.children.run(
            ["uv", "sync", "--locked"], env=env, cwd=self.project, what="uv sync"
        )
        self.samples.setup_s["uv_sync_dev"] = seconds
        machine_servers = {
            **env,
            "TEST_REDIS_URL": SUITE_REDIS_URL,
            "TEST_DATABASE_URL": f"{POSTGRES_URL}/postgres",
        }
        self.samples.suite = self._suite(machine_servers, "this machine's servers")
        self.samples.suite_local = self._suite(env, "throwaway local servers")

    def _suite(self, env: Mapping[str, str], servers: str) -> dict[str, Any]:
        argv = ["uv", "run", "pytest", "-q"]
        if self.plan.suite_collect_only:
            argv.append("--collect-only")
        started = time.perf_counter()
        process = self.children.start(
            argv, env=env, cwd=self.project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            out, _ = process.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            self.children.end(process)
            raise MeasurementError("the generated test suite did not finish within 900 s") from None
        seconds = time.perf_counter() - started
        self.children.forget(process)
        text = out.decode(errors="replace")
        summary = next(
            (
                ln.strip("= ")
                for ln in reversed(text.splitlines())
                if re.search(r"\d+ (passed|failed|tests? collected|error)", ln)
            ),
            f"exit status {process.returncode}",
        )
        if process.returncode not in (0, 1):  # 1: tests failed, still a measured wall time
            raise MeasurementError(
                f"the generated test suite could not run: {summary}\n{text[-2000:]}"
            )
        self.progress(
            f"generated test suite ({' '.join(argv)}) on {servers}: {seconds:.1f} s, {summary}"
        )
        return {
            "command": " ".join(argv),
            "servers": servers,
            "seconds": seconds,
            "exit_status": process.returncode,
            "summary": summary,
            "collect_only": self.plan.suite_collect_only,
        }

    def dev_runs(self) -> None:
        """`-dev` with no DATABASE_URL / REDIS_URL, from spawn to /readyz 200 and from Ctrl-C
        (SIGINT to its process group) to its exit: cold (no .local/ yet), then warm."""
        admin = procfile_command(self.project, "release")[0]
        program = admin.removesuffix("-admin") + "-dev"
        env = {
            name: value
            for name, value in self.env.items()
            if name not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")
        }
        shutil.rmtree(self.project / ".local", ignore_errors=True)
        for label in ("cold", "warm"):
            port = procs.free_port()
            started = time.perf_counter()
            process = self.children.start(
                [program], env={**env, "PORT": str(port)}, cwd=self.project
            )
            ready = procs.wait_ready(process, port, started, path="/readyz")
            stopped = time.perf_counter()
            os.killpg(process.pid, signal.SIGINT)
            code = procs.wait_exit(process, timeout=60)
            self.children.forget(process)
            if code is None:
                self.children.end(process)
                raise MeasurementError(f"-dev ({label}) did not exit within 60 s of Ctrl-C")
            self.samples.dev[label] = {
                "ready_s": ready,
                "stop_s": time.perf_counter() - stopped,
                "exit_code": code,
            }
            self.progress(
                f"-dev {label}: /readyz 200 after {ready:.2f} s; Ctrl-C to exit"
                f" {self.samples.dev[label]['stop_s']:.2f} s (exit {code})"
            )


def write_results(path: Path, data: Mapping[str, Any]) -> None:
    """Write the JSON results, creating the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(value: object) -> object:
    if isinstance(value, report.Stat):
        return value.as_dict()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)


def conclude(bench: Benchmark, out: Path, smoke: bool) -> None:
    """Print the table and the budget, and write the JSON."""
    samples = asdict(bench.samples)
    figures = report.summarise(samples)
    verdicts = report.budget(figures, smoke)
    rows = report.table_rows(figures, TABLE_LOAD_KEYS)
    text = report.render(rows, verdicts)
    info = bench.meta["machine"]
    stack = bench.meta.get("versions", {})
    print()
    print(
        f"Machine: {info['nproc']} cores ({info['cpu']}), Linux {info['kernel']}; the generated"
        f" project on Python {stack.get('python')}, FastAPI {stack.get('fastapi')}, granian"
        f" {stack.get('granian')}; the reference apps on uvicorn {stack.get('uvicorn')}"
        f" (uvloop {stack.get('uvloop')}, httptools {stack.get('httptools')})."
    )
    print(
        f"wrk and the server share these {info['nproc']} cores, so figures are ratios from one"
        " run on a shared machine, not capacity. Baseline: a bare FastAPI app with one route on"
        " uvicorn, no app logging; generated: its Procfile web command (granian), production"
        " settings, JSON access log on (to a file)."
    )
    print(f"Mode: {'smoke' if smoke else 'full'}; plan: {asdict(bench.plan)}")
    print()
    print(text)
    print()
    print(
        "Ratios of the list and create rows are to the baseline's /healthz req/s; the baseline"
        " exits by signal after SIGTERM (uvicorn re-raises it), the generated web exits 0; both"
        " are a clean stop."
    )
    print()
    print(observability_text(bench.samples.observability))
    print()
    print(servers_text(bench.samples.servers))
    data = {
        "meta": bench.meta,
        "plan": asdict(bench.plan),
        "samples": samples,
        "figures": figures,
        "budget": [{"line": v.line, "measured": v.measured, "met": v.met} for v in verdicts],
        "table": text,
    }
    write_results(out, data)
    print(f"JSON: {out}")


def servers_text(samples: Mapping[str, list[dict[str, Any]]]) -> str:
    """The generated app on each compared server: medians over the rounds."""

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2] if ordered else float("nan")

    lines = [
        "The generated app on three servers, one worker each (medians over the rounds):",
        f"{'server':<10} {'read req/s':>10} {'read p99':>9} {'list req/s':>10} {'list p99':>9}"
        f" {'ready':>7} {'RSS MiB':>8} {'stop':>7}",
    ]
    for name, runs in samples.items():
        if not runs:
            continue
        lines.append(
            f"{name:<10} {median([r['read']['rps'] for r in runs]):>10,.0f}"
            f" {median([r['read']['p99_ms'] for r in runs]):>7.1f}ms"
            f" {median([r['list']['rps'] for r in runs]):>10,.0f}"
            f" {median([r['list']['p99_ms'] for r in runs]):>7.1f}ms"
            f" {median([r['ready_s'] for r in runs]):>6.2f}s"
            f" {median([r['rss_mib'] for r in runs]):>8.1f}"
            f" {median([r['sigterm_s'] for r in runs]):>6.2f}s"
        )
    return "\n".join(lines)


def observability_text(samples: Mapping[str, list[dict[str, Any]]]) -> str:
    """The figures of Benchmark.observability: req/s, p99 and start-up, off and on."""
    figures = {
        mode: {
            name: report.stat([sample[name] for sample in samples[mode]])
            for name in ("rps", "p99_ms", "ready_s")
        }
        for mode in OBSERVABILITY_MODES
    }
    lines = ["Read one note (API route), 64 conns, tracing (OTLP/HTTP, to loopback) and metrics:"]
    for mode in OBSERVABILITY_MODES:
        lines.append(
            f"  {mode:>3}: {report.show(figures[mode]['rps'], 0)} req/s,"
            f" p99 {report.show(figures[mode]['p99_ms'], 1)} ms,"
            f" ready in {report.show(figures[mode]['ready_s'], 3)} s"
        )
    share = report.ratio(figures["on"]["rps"], figures["off"]["rps"])
    if share is not None:
        lines.append(f"  on/off req/s: {share:.2f}")
    return "\n".join(lines)


def run(args: argparse.Namespace, progress: Progress) -> int:
    """Measure everything; clean up whatever happens."""
    wrk = loadgen.require_wrk()
    if shutil.which("uv") is None:
        raise SystemExit("error: uv is not on PATH; run this with `uv run python bench/run.py`")
    plan = make_plan(args)
    out = args.out or RESULTS_DIR / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    template = args.template.resolve()
    if not (template / "cookiecutter.json").is_file():
        raise SystemExit(f"error: {template} is not a cookiecutter template")
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    bench = Benchmark(plan, scratch, wrk, progress, template)
    bench.meta = {
        "template": str(template),
        "machine": machine(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "smoke" if args.smoke else "full",
    }
    progress(
        f"scratch directory {scratch};"
        f" {bench.meta['machine']['nproc']} cores, shared by wrk and the server"
    )
    try:
        bench.bake_project()
        bench.time_bakes()
        bench.install()
        with redis_database(progress), database(progress) as database_url:
            try:
                bench.release_and_seed(database_url)
                bench.cold_starts()
                bench.load_rounds()
                bench.observability()
                bench.compare_servers()
                bench.count_access_lines()
                bench.inflight(database_url)
            finally:
                bench.children.cleanup()  # before the database goes
        bench.suite()
        bench.dev_runs()
        conclude(bench, out, args.smoke)
    except (MeasurementError, OSError, psycopg.Error, redis.RedisError) as error:
        # OSError: a program that would not start; the others: a backing service not reachable.
        print(f"error: a figure could not be measured: {error}", file=sys.stderr)
        return 1
    finally:
        bench.children.cleanup()
        if args.keep:
            progress(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    progress = Progress()
    interrupt_on_signals()
    try:
        return run(args, progress)
    except KeyboardInterrupt:
        print("interrupted: processes ended, database dropped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
