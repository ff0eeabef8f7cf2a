"""Figures from samples: medians with min-max, ratios to the reference apps, the budget lines.

Everything here only prints and returns verdicts; nothing asserts.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Connection counts of the list endpoint's runs (run.py's LOAD_RUNS); figures are keyed "list@<n>".
LIST_CONNECTIONS = (8, 64, 256)
COLLAPSE_SHARE = 0.75  # "no collapse": every list figure keeps this share of the best one


@dataclass(frozen=True)
class Stat:
    """Median, minimum and maximum of some samples."""

    median: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        """A JSON-ready copy."""
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n}


def stat(values: Sequence[float]) -> Stat | None:
    """Summarise samples; None when there are none."""
    if not values:
        return None
    return Stat(statistics.median(values), min(values), max(values), len(values))


def _number(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}" if abs(value) >= 1000 else f"{value:.{digits}f}"


def show(value: Stat | None, digits: int = 2) -> str:
    """'median (min-max)', or a dash when not measured."""
    if value is None:
        return "-"
    if value.n == 1 or value.low == value.high:
        return _number(value.median, digits)
    low, high = _number(value.low, digits), _number(value.high, digits)
    return f"{_number(value.median, digits)} ({low}-{high})"


def ratio(numerator: Stat | None, denominator: Stat | None) -> float | None:
    """Ratio of two medians, or None."""
    if numerator is None or denominator is None or denominator.median == 0:
        return None
    return numerator.median / denominator.median


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    figure: str
    baseline: str
    generated: str
    ratio: str = ""
    budget: str = ""
    verdict: str = ""


@dataclass(frozen=True)
class Verdict:
    """One budget line of the issue and whether this run met it."""

    line: str
    measured: str
    met: bool | None  # None: not measured in this run

    def word(self) -> str:
        """met, NOT met, or n/a."""
        return {True: "met", False: "NOT met", None: "n/a"}[self.met]


def _load_stats(samples: Mapping[str, Any], key: str, field: str) -> Stat | None:
    return stat([run[field] for run in samples.get(key, [])])


def _errors(samples: Mapping[str, Any], key: str) -> int:
    return sum(run["errors"] for run in samples.get(key, []))


def summarise(samples: Mapping[str, Any]) -> dict[str, Any]:
    """Every figure of the run as Stat objects (or None), keyed by a stable name."""
    figures: dict[str, Any] = {}
    for name in ("ready_s", "sigterm_idle_s", "sigterm_loaded_s", "rss_mib"):
        for side in ("baseline", "generated"):
            figures[f"{name}.{side}"] = stat(samples[name][side])
    load = samples["load"]
    for side in load:
        for key in load[side]:
            for field in ("rps", "p50_ms", "p99_ms"):
                figures[f"load.{side}.{key}.{field}"] = _load_stats(load[side], key, field)
            figures[f"load.{side}.{key}.errors"] = _errors(load[side], key)
    inflight = samples["sigterm_inflight"]
    figures["inflight.sigterm_to_exit_s"] = stat([s["sigterm_to_exit_s"] for s in inflight])
    figures["inflight.release_to_exit_s"] = stat([s["release_to_exit_s"] for s in inflight])
    figures["inflight.statuses"] = sorted({s["status"] for s in inflight})
    for name, values in samples["bake_s"].items():
        figures[f"bake.{name}"] = stat(values)
    figures["suite"] = samples["suite"]
    figures["suite_local"] = samples["suite_local"]
    figures["dev"] = samples["dev"]
    return figures


def _ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _check(value: float | None, test: Callable[[float], bool]) -> bool | None:
    return None if value is None else test(value)


def budget(figures: Mapping[str, Any], smoke: bool) -> list[Verdict]:
    """The budget lines, each evaluated on ratios (or times) from this one run."""
    ready = ratio(figures["ready_s.generated"], figures["ready_s.baseline"])
    read = ratio(figures.get("load.generated.read@64.rps"), figures.get("load.floor.read@64.rps"))
    listed = ratio(figures.get("load.generated.list@64.rps"), figures.get("load.floor.list@64.rps"))
    healthz = ratio(
        figures.get("load.generated.healthz@64.rps"), figures.get("load.baseline.healthz@64.rps")
    )
    read_p99 = ratio(
        figures.get("load.generated.read@64.p99_ms"), figures.get("load.floor.read@64.p99_ms")
    )
    p99 = ratio(
        figures.get("load.generated.list@64.p99_ms"), figures.get("load.floor.list@64.p99_ms")
    )
    deep = ratio(
        figures.get("load.generated.list_deep@64.p50_ms"),
        figures.get("load.generated.list@64.p50_ms"),
    )
    rss = ratio(figures["rss_mib.generated"], figures["rss_mib.baseline"])
    idle = [figures["sigterm_idle_s.generated"], figures["sigterm_loaded_s.generated"]]
    idle_worst = max((s.median for s in idle if s is not None), default=None)
    bake = ratio(figures.get("bake.no_lock"), figures.get("bake.one_file"))
    suite = figures["suite"]
    suite_s = None if smoke or suite.get("collect_only") else suite.get("seconds")
    collapse = no_collapse(figures)
    return [
        Verdict(
            "ready <= 1.5x bare FastAPI", _ratio_text(ready), _check(ready, lambda v: v <= 1.5)
        ),
        Verdict(
            "/healthz req/s >= 0.8x bare FastAPI's (64 conns)",
            _ratio_text(healthz),
            _check(healthz, lambda v: v >= 0.8),
        ),
        Verdict(
            "API route (read one note), every middleware and access log on,"
            " req/s >= 0.8x the floor's",
            _ratio_text(read),
            _check(read, lambda v: v >= 0.8),
        ),
        Verdict(
            "API route p99 <= 1.5x the floor's (64 conns)",
            _ratio_text(read_p99),
            _check(read_p99, lambda v: v <= 1.5),
        ),
        Verdict(
            "list req/s >= 0.8x the floor's (64 conns)",
            _ratio_text(listed),
            _check(listed, lambda v: v >= 0.8),
        ),
        Verdict(
            "list p99 <= 1.5x the floor's (64 conns)",
            _ratio_text(p99),
            _check(p99, lambda v: v <= 1.5),
        ),
        Verdict(
            f"list: no collapse at 8/64/256 connections (each >= {COLLAPSE_SHARE:.2f}x the best,"
            " no errors)",
            collapse[0],
            collapse[1],
        ),
        Verdict(
            "a page 5,000 rows deep: p50 <= 1.5x page 1's",
            _ratio_text(deep),
            _check(deep, lambda v: v <= 1.5),
        ),
        Verdict(
            "RSS after load <= 1.5x bare FastAPI (server process and workers together)",
            _ratio_text(rss),
            _check(rss, lambda v: v <= 1.5),
        ),
        Verdict(
            "idle SIGTERM to exit <= 0.5 s (worse of fresh / after load)",
            "-" if idle_worst is None else f"{idle_worst:.3f} s",
            _check(idle_worst, lambda v: v <= 0.5),
        ),
        Verdict(
            "bake before uv lock <= 2x one-file template",
            _ratio_text(bake),
            _check(bake, lambda v: v <= 2),
        ),
        Verdict(
            "generated test suite <= 20 s",
            "not run (smoke: collection only)" if suite_s is None else f"{suite_s:.1f} s",
            _check(suite_s, lambda v: v <= 20),
        ),
        Verdict("template's whole CI <= 15 min", "not measured here: time .ci/run", None),
    ]


def no_collapse(figures: Mapping[str, Any]) -> tuple[str, bool | None]:
    """Whether the list endpoint holds its throughput past the pool size, and the figures."""
    rates = {c: figures.get(f"load.generated.list@{c}.rps") for c in LIST_CONNECTIONS}
    if any(value is None for value in rates.values()):
        return "-", None
    medians = {c: value.median for c, value in rates.items() if value is not None}
    best = max(medians.values())
    errors = sum(figures.get(f"load.generated.list@{c}.errors", 0) for c in LIST_CONNECTIONS)
    text = " / ".join(f"{medians[c]:,.0f}" for c in LIST_CONNECTIONS) + f" req/s, {errors} errors"
    held = best > 0 and all(v >= COLLAPSE_SHARE * best for v in medians.values())
    return text, held and errors == 0


def _load_rows(
    figures: Mapping[str, Any], key: str, label: str, base_rps: Stat | None
) -> list[Row]:
    reference = next(
        (side for side in ("baseline", "floor") if figures.get(f"load.{side}.{key}.rps")), None
    )
    base = figures.get(f"load.{reference}.{key}.rps")
    gen = figures.get(f"load.generated.{key}.rps")
    name = "" if reference is None else f" ({'bare' if reference == 'baseline' else 'floor'})"
    rows = [
        Row(
            f"{label} req/s{name}",
            show(base, 0),
            show(gen, 0),
            _ratio_text(ratio(gen, base)) if base is not None else "",
        )
    ]
    latency = []
    for side in (reference or "baseline", "generated"):
        p50 = figures.get(f"load.{side}.{key}.p50_ms")
        p99 = figures.get(f"load.{side}.{key}.p99_ms")
        errors = figures.get(f"load.{side}.{key}.errors", 0)
        if p50 is None or p99 is None:
            latency.append("-")
        else:
            note = f", {errors} errors" if errors else ""
            latency.append(f"{p50.median:.1f} / {p99.median:.1f}{note}")
    rows.append(Row(f"{label} p50 / p99 ms", latency[0], latency[1]))
    return rows


def table_rows(figures: Mapping[str, Any], load_keys: Sequence[tuple[str, str]]) -> list[Row]:
    """The table: start-up, load, memory, shutdown, bake and tests."""
    base_rps = figures.get("load.baseline.healthz@64.rps")
    ready_b, ready_g = figures["ready_s.baseline"], figures["ready_s.generated"]
    rows = [
        Row(
            "ready: spawn to first 200 on /healthz, s",
            show(ready_b, 3),
            show(ready_g, 3),
            _ratio_text(ratio(ready_g, ready_b)),
        )
    ]
    for key, label in load_keys:
        rows += _load_rows(figures, key, label, base_rps)
    rss_b, rss_g = figures["rss_mib.baseline"], figures["rss_mib.generated"]
    rows.append(
        Row(
            "RSS of process tree after load, MiB",
            show(rss_b, 1),
            show(rss_g, 1),
            _ratio_text(ratio(rss_g, rss_b)),
        )
    )
    for name, label in (("sigterm_idle_s", "fresh"), ("sigterm_loaded_s", "after load")):
        b, g = figures[f"{name}.baseline"], figures[f"{name}.generated"]
        rows.append(
            Row(
                f"SIGTERM to exit, idle ({label}), s",
                show(b, 3),
                show(g, 3),
                _ratio_text(ratio(g, b)),
            )
        )
    statuses = ",".join(str(s) for s in figures["inflight.statuses"]) or "-"
    rows.append(
        Row(
            "SIGTERM to exit, request in flight, s",
            "n/a (no slow route)",
            show(figures["inflight.sigterm_to_exit_s"], 3),
            f"answer {statuses}",
        )
    )
    rows.append(
        Row(
            "  of which after the request could finish, s",
            "",
            show(figures["inflight.release_to_exit_s"], 3),
        )
    )
    one, no_lock, locked = (figures.get(f"bake.{k}") for k in ("one_file", "no_lock", "with_lock"))
    rows.append(
        Row(
            "bake: render + hooks, no uv lock, s (baseline: one-file template)",
            show(one, 2),
            show(no_lock, 2),
            _ratio_text(ratio(no_lock, one)),
        )
    )
    rows.append(
        Row(
            "bake: render + hooks + uv lock, s",
            show(one, 2),
            show(locked, 2),
            _ratio_text(ratio(locked, one)),
        )
    )
    for key in ("suite", "suite_local"):
        suite = figures[key]
        what = "collect only" if suite.get("collect_only") else "uv run pytest -q"
        rows.append(
            Row(
                f"generated test suite ({what}, {suite['servers']}), s",
                "",
                f"{suite['seconds']:.1f} ({suite['summary']})",
            )
        )
    dev = figures["dev"]
    for label in ("cold", "warm"):
        run = dev[label]
        rows.append(
            Row(
                f"`-dev` {label}: spawn to /readyz 200 / Ctrl-C to exit, s",
                "",
                f"{run['ready_s']:.2f} / {run['stop_s']:.2f} (exit {run['exit_code']})",
            )
        )
    return rows


def render(rows: Sequence[Row], verdicts: Sequence[Verdict]) -> str:
    """The table and the budget as fixed-width text (also valid Markdown)."""
    header = Row("Figure", "Reference (bare or floor)", "Generated", "Ratio")
    table = [header, *rows]
    widths = [
        max(len(getattr(r, f)) for r in table) for f in ("figure", "baseline", "generated", "ratio")
    ]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line([header.figure, header.baseline, header.generated, header.ratio])]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out += [line([r.figure, r.baseline, r.generated, r.ratio]) for r in rows]
    out.append("")
    budget_rows = [("Budget line", "This run", "Verdict")]
    budget_rows += [(v.line, v.measured, v.word()) for v in verdicts]
    bw = [max(len(r[i]) for r in budget_rows) for i in range(3)]
    out.append(
        "| " + " | ".join(c.ljust(w) for c, w in zip(budget_rows[0], bw, strict=True)) + " |"
    )
    out.append("|" + "|".join("-" * (w + 2) for w in bw) + "|")
    out += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, bw, strict=True)) + " |"
        for r in budget_rows[1:]
    ]
    return "\n".join(out)
