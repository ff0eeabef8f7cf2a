"""The twelve-factor report: `pytest --factors` runs the conformance tests, one line a factor."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

FACTORS = {
    1: "I. Codebase",
    2: "II. Dependencies",
    3: "III. Config",
    4: "IV. Backing services",
    5: "V. Build, release, run",
    6: "VI. Processes",
    7: "VII. Port binding",
    8: "VIII. Concurrency",
    9: "IX. Disposability",
    10: "X. Dev/prod parity",
    11: "XI. Logs",
    12: "XII. Admin processes",
}
_FACTOR_TEST = re.compile(r"::test_factor_(\d\d)_")
_outcomes: dict[int, list[str]] = defaultdict(list)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--factors",
        action="store_true",
        help="run only the twelve-factor conformance tests and report each factor",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--factors"):
        return
    selected = [item for item in items if _FACTOR_TEST.search(item.nodeid)]
    config.hook.pytest_deselected(items=[item for item in items if item not in selected])
    items[:] = selected


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    match = _FACTOR_TEST.search(report.nodeid)
    if match and (report.when == "call" or report.outcome != "passed"):
        _outcomes[int(match.group(1))].append(report.outcome)


def _verdict(number: int) -> str:
    outcomes = _outcomes.get(number, [])
    if not outcomes:
        return "not run"
    return "pass" if all(outcome == "passed" for outcome in outcomes) else "FAIL"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _outcomes and not terminalreporter.config.getoption("--factors"):
        return
    terminalreporter.section("twelve-factor conformance")
    for number, name in FACTORS.items():
        count = len([o for o in _outcomes.get(number, []) if o != "skipped"])
        terminalreporter.write_line(f"{name:<26} {_verdict(number):<8} ({count} checks)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):  # an xdist worker sees only its share of tests
        return
    requested = session.config.getoption("--factors")
    if requested and exitstatus == 0 and any(_verdict(n) != "pass" for n in FACTORS):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
