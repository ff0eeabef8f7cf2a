"""Shared helpers of the generation tests: where the template is and how to bake it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cookiecutter.main import cookiecutter

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
DEFAULTS: dict[str, Any] = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())
# This machine's PostgreSQL, where tests create and drop the databases of their bakes.
ADMIN_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


# The tests that run a generated project's own suite (marked `heavy`), by name. xdist runs them
# on one worker, one after another: they share Redis databases and a bake, and two suites at once
# on two cores make their timing bounds flaky. The scheduler below sees node ids only, hence the
# names; pytest_collection_modifyitems keeps them in step with the marks.
HEAVY_TESTS = frozenset(
    {
        "test_baked_project_passes_its_own_toolchain",
        "test_an_untouched_project_passes_every_factor",
        "test_exercise_fails_exactly_its_named_test",
        "test_update_brings_template_changes_keeps_local_edits_and_passes_own_tests",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse to run when the `heavy` marks and HEAVY_TESTS disagree."""
    for item in items:
        name = getattr(item, "originalname", item.name)
        if bool(item.get_closest_marker("heavy")) != (name in HEAVY_TESTS):
            raise pytest.UsageError(f"{name}: mark it heavy and list it in HEAVY_TESTS, or neither")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Each test is a unit of work of its own, except the heavy ones, which make one unit.

    xdist's own `--dist loadgroup` does this with `xdist_group` marks, but its pytest 9 release
    loses the marks (it renames node ids in a way pytest 9 ignores), so the group is ours.
    """
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415  # only under xdist

    class HeavyTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            name = nodeid.rsplit("::", 1)[-1].split("[", 1)[0]
            return "heavy" if name in HEAVY_TESTS else nodeid

    return HeavyTogether(config, log)


def admin_connection() -> psycopg.Connection[Any]:
    """An autocommit connection for CREATE and DROP DATABASE."""
    return psycopg.connect(ADMIN_DATABASE_URL, autocommit=True)


def bake(output_dir: Path, **answers: Any) -> Path:
    """Render the template without prompts into output_dir and return the project directory."""
    context = {key: str(value) for key, value in answers.items()}
    project = cookiecutter(
        str(TEMPLATE_DIR),
        no_input=True,
        extra_context=context,
        output_dir=str(output_dir),
    )
    return Path(project)


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bake with every default answer, shared by the tests that only read files."""
    return bake(tmp_path_factory.mktemp("default"), init_git="no")


@pytest.fixture(scope="session")
def clean_env() -> dict[str, str]:
    """The environment a baked project's commands get: this one, less this venv's traces."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("VIRTUAL_ENV", "PYTHONPATH"))
    }
