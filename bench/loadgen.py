"""Load with wrk (the Debian package): one run, its figures read from a Lua done() hook."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from procs import HOST, MeasurementError

THREADS = 2  # one per core of the machine this was written for; wrk shares them with the server
TIMEOUT = "10s"  # wrk's default of 2 s would hide slow answers as timeouts instead of latency
MARKER = "BENCH_JSON "

# wrk calls done() once with the totals of every thread; latency values are in microseconds.
REPORT_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"non_2xx_3xx":%d,"connect_errors":%d,'
    .. '"read_errors":%d,"write_errors":%d,"timeouts":%d,'
    .. '"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    MARKER, summary.requests, summary.duration, e.status, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""

POST_LUA = """
wrk.method = "POST"
wrk.body = '{"title":"bench note","body":"written by the benchmark"}'
wrk.headers["Content-Type"] = "application/json"
"""


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured."""

    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # non-2xx/3xx answers, socket errors and timeouts

    def as_dict(self) -> dict[str, float | int]:
        """A JSON-ready copy."""
        return asdict(self)


def require_wrk() -> str:
    """The wrk executable, or a clear failure naming the package to install."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit(
            "error: wrk is not installed; the benchmark needs the Debian package:"
            " apt-get install -y wrk"
        )
    return wrk


def write_scripts(directory: Path) -> dict[str, Path]:
    """Write the Lua scripts wrk runs: 'get' reports only, 'post' also sends a JSON body."""
    report = REPORT_LUA.replace("MARKER", json.dumps(MARKER))
    scripts = {"get": directory / "get.lua", "post": directory / "post.lua"}
    scripts["get"].write_text(report)
    scripts["post"].write_text(POST_LUA + report)
    return scripts


def run_wrk(
    wrk: str,
    script: Path,
    port: int,
    path: str,
    *,
    connections: int,
    seconds: int,
    headers: Sequence[str] = (),
) -> LoadResult:
    """Load http://127.0.0.1:port/path for `seconds` with `connections` open connections,
    each request carrying `headers` ("Name: value")."""
    argv = [
        wrk,
        f"-t{min(THREADS, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={TIMEOUT}",
        *(item for header in headers for item in ("-H", header)),
        "-s",
        str(script),
        f"http://{HOST}:{port}{path}",
    ]
    try:
        completed = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
    except subprocess.TimeoutExpired:
        raise MeasurementError(f"wrk on {path} did not finish") from None
    line = next((ln for ln in completed.stdout.splitlines() if ln.startswith(MARKER)), None)
    if completed.returncode != 0 or line is None:
        raise MeasurementError(
            f"wrk on {path} failed ({completed.returncode}): {completed.stderr.strip()[:500]}"
        )
    raw = json.loads(line.removeprefix(MARKER))
    duration = raw["duration_us"] / 1e6
    errors = sum(
        raw[key]
        for key in ("non_2xx_3xx", "connect_errors", "read_errors", "write_errors", "timeouts")
    )
    return LoadResult(
        connections=connections,
        seconds=round(duration, 3),
        requests=raw["requests"],
        rps=round(raw["requests"] / duration, 1) if duration else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=errors,
    )
