"""Every workshop exercise of docs/twelve-factor.md, applied to a fresh bake, fails exactly the
conformance test it names, so the page cannot drift from the code."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import TEMPLATE_DIR, bake, redis_url

DOC = "docs/twelve-factor.md"
DIFF_BLOCK = re.compile(r"^```diff\n(.*?)^```", re.DOTALL | re.MULTILINE)


@dataclass
class Hunk:
    """Replace `old` by `new` in `path`; with no old lines, create the file."""

    path: str
    old: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)


@dataclass
class Exercise:
    """A breaking change and the one test it must make fail."""

    fails: str
    hunks: list[Hunk]


def parse_exercises(text: str) -> list[Exercise]:
    """Read the ```diff blocks of the factor page."""
    exercises = []
    for block in DIFF_BLOCK.findall(text):
        hunks: list[Hunk] = []
        fails = ""
        for line in block.splitlines():
            if line.startswith("# file: "):
                hunks.append(Hunk(line.removeprefix("# file: ").strip()))
            elif line.startswith("# fails: "):
                fails = line.removeprefix("# fails: ").strip()
            elif line.startswith("-"):
                hunks[-1].old.append(line[1:])
            elif line.startswith("+"):
                hunks[-1].new.append(line[1:])
            else:
                raise AssertionError(f"unexpected line in an exercise: {line!r}")
        assert fails, f"an exercise names no failing test: {block[:80]!r}"
        exercises.append(Exercise(fails, hunks))
    return exercises


def apply(project: Path, exercise: Exercise) -> dict[Path, str | None]:
    """Apply an exercise; return the original content of every touched file (None: new)."""
    originals: dict[Path, str | None] = {}
    for hunk in exercise.hunks:
        path = project / hunk.path
        if path not in originals:
            originals[path] = path.read_text() if path.exists() else None
        if not hunk.old:
            assert not path.exists(), f"{hunk.path} should be a new file"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(hunk.new) + "\n")
            continue
        text = path.read_text()
        old, new = "\n".join(hunk.old) + "\n", "\n".join(hunk.new) + ("\n" if hunk.new else "")
        assert text.count(old) == 1, f"{hunk.path}: the lines to replace must occur once:\n{old}"
        path.write_text(text.replace(old, new))
    return originals


def restore(originals: dict[Path, str | None]) -> None:
    """Undo apply()."""
    for path, content in originals.items():
        if content is None:
            path.unlink()
            if not any(path.parent.iterdir()):
                path.parent.rmdir()
        else:
            path.write_text(content)


TEMPLATE_DOC = (TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / DOC).read_text()
EXERCISES = parse_exercises(TEMPLATE_DOC)


def test_there_is_an_exercise_for_every_factor() -> None:
    numbers = sorted({int(e.fails.split("_")[2]) for e in EXERCISES})
    assert numbers == list(range(1, 13))


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, clean_env: dict[str, str]
) -> tuple[Path, dict[str, str]]:
    baked = bake(tmp_path_factory.mktemp("exercises"), init_git="no")
    env = {**clean_env, "UV_PYTHON_DOWNLOADS": "never", "TEST_REDIS_URL": redis_url(2)}
    subprocess.run(
        ["uv", "sync", "--locked"], cwd=baked, env=env, check=True, capture_output=True, timeout=600
    )
    return baked, env


def failed_conformance_tests(project: Path, env: dict[str, str], report: Path) -> dict[str, str]:
    """Run `pytest --factors` in the project; return the failed tests and their messages.

    In one process: for these 17 tests, xdist's workers cost more to start than they save."""
    subprocess.run(
        [str(project / ".venv/bin/python"), "-m", "pytest", "--factors", "-q", "-p",
         "no:cacheprovider", "-n", "0", f"--junitxml={report}"],
        cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    tree = ET.parse(report)  # noqa: S314  # our own pytest's report
    failed: dict[str, str] = {}
    names = set()
    for case in tree.iter("testcase"):
        names.add(case.get("name", ""))
        for problem in (case.find("failure"), case.find("error")):
            if problem is not None:
                text = problem.text or ""
                if len(text) > 4000:
                    text = f"{text[:3000]}\n[...]\n{text[-1000:]}"
                failed[case.get("name", "")] = text
    assert len(names) >= 12, f"the conformance suite did not run: {names}"
    return failed


# Every test that runs a generated suite goes to one xdist worker (conftest.HEAVY_TESTS): the
# exercises share a bake, and two suites at once on two cores make their timing bounds flaky.
EXERCISE_WORKER = pytest.mark.heavy


def describe(failed: dict[str, str]) -> str:
    """The failures of a conformance run, readable in a test report."""
    return "\n\n".join(f"{name} failed:\n{text}" for name, text in failed.items())


@pytest.mark.slow
@EXERCISE_WORKER
def test_an_untouched_project_passes_every_factor(
    project: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    baked, env = project
    failed = failed_conformance_tests(baked, env, tmp_path / "report.xml")
    assert not failed, describe(failed)


@pytest.mark.slow
@EXERCISE_WORKER
@pytest.mark.parametrize("index", range(len(EXERCISES)), ids=[e.fails for e in EXERCISES])
def test_exercise_fails_exactly_its_named_test(
    project: tuple[Path, dict[str, str]], index: int, tmp_path: Path
) -> None:
    baked, env = project
    exercise = parse_exercises((baked / DOC).read_text())[index]  # as rendered in the bake
    originals = apply(baked, exercise)
    try:
        failed = failed_conformance_tests(baked, env, tmp_path / "report.xml")
    finally:
        restore(originals)
    assert exercise.fails in failed, "the exercise did not break its factor's test"
    assert set(failed) == {exercise.fails}, describe(failed)
