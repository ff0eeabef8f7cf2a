"""Shared helpers of the generation tests: where the template is, how to bake it, and the
PostgreSQL and Redis-compatible servers the bakes' own suites run on.

The servers are TEST_DATABASE_URL's and TEST_REDIS_URL's, as for a generated project's suite;
unset, the run starts throwaway local ones with the generated project's own localservers module
(the template's dev group brings the same packages) and removes them at the end.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from cookiecutter.main import cookiecutter
from psycopg import sql

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
DEFAULTS: dict[str, Any] = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())
PROJECT_TEMPLATE = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
LOCAL_SERVERS = PROJECT_TEMPLATE / "src" / "{{cookiecutter.package_name}}" / "dev/localservers.py"
TEST_DATABASE_URL = "TEST_DATABASE_URL"
TEST_REDIS_URL = "TEST_REDIS_URL"
THROWAWAY = pytest.StashKey[tuple[Path, list[Any]]]()


def _local_servers() -> ModuleType:
    """The generated project's dev/localservers.py (plain Python, no template syntax), imported."""
    spec = importlib.util.spec_from_file_location("template_localservers", LOCAL_SERVERS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def pytest_configure(config: pytest.Config) -> None:
    """Start throwaway servers for what TEST_DATABASE_URL and TEST_REDIS_URL do not name."""
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller started them and set the variables
    wanted = [name for name in (TEST_DATABASE_URL, TEST_REDIS_URL) if not os.environ.get(name)]
    if not wanted:
        return
    local = _local_servers()
    root = Path(tempfile.mkdtemp(prefix="template-tests-"))
    servers: list[Any] = []
    config.stash[THROWAWAY] = (root, servers)
    if TEST_DATABASE_URL in wanted:
        postgres = local.start_postgres(root / "postgres")
        servers.append(postgres)
        postgres.tune_for_tests()
        os.environ[TEST_DATABASE_URL] = postgres.url()
    if TEST_REDIS_URL in wanted:
        valkey = local.start_valkey(root / "valkey", persist=False)
        servers.append(valkey)
        os.environ[TEST_REDIS_URL] = valkey.url(0)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the throwaway servers and remove their data."""
    root, servers = config.stash.get(THROWAWAY, (None, []))
    for server in reversed(servers):
        server.stop()
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


def database_url(name: str) -> str:
    """The URL of database `name` on the tests' PostgreSQL server."""
    return urlunsplit(urlsplit(os.environ[TEST_DATABASE_URL])._replace(path=f"/{name}"))


def redis_url(database: int) -> str:
    """The URL of logical database `database` on the tests' Redis-compatible server."""
    base, _, _ = os.environ[TEST_REDIS_URL].rpartition("/")
    return f"{base}/{database}"


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
        "test_readme_commands_run_and_test_the_service_where_no_server_is_reachable",
        "test_the_extending_recipe_adds_a_field_and_a_feature_that_pass_every_check",
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

    xdist's own `--dist loadgroup` does this with `xdist_group` marks, but under pytest 9.2 and
    xdist 3.8 it loses them (it renames node ids in a way pytest 9 ignores: four tests of one
    group ran on both workers, checked again with those versions), so the group is ours.
    """
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415  # only under xdist

    class HeavyTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            name = nodeid.rsplit("::", 1)[-1].split("[", 1)[0]
            return "heavy" if name in HEAVY_TESTS else nodeid

    return HeavyTogether(config, log)


def admin_connection() -> psycopg.Connection[Any]:
    """An autocommit connection for CREATE and DROP DATABASE."""
    return psycopg.connect(database_url("postgres"), autocommit=True)


@contextmanager
def scratch_database(label: str) -> Iterator[str]:
    """A database of a test's own on the tests' server, dropped (connections closed) after."""
    name = f"tmpl_{label}_{os.getpid()}_{int(time.time() * 1000)}"
    with admin_connection() as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(name)
    finally:
        with admin_connection() as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def bake(output_dir: Path, **answers: Any) -> Path:
    """Render the template without prompts into output_dir and return the project directory.

    This calls cookiecutter's API itself rather than through pytest-cookies: that plugin wraps
    the same call in a function-scoped fixture that bakes into a directory of its own and turns
    a failing hook into a result object, while the bakes here are shared by modules and
    sessions, and the hook tests want the failure itself.
    """
    context = {key: str(value) for key, value in answers.items()}
    project = cookiecutter(
        str(TEMPLATE_DIR),
        no_input=True,
        extra_context=context,
        output_dir=str(output_dir),
    )
    return Path(project)


def lint_workflows(*workflows: Path) -> None:
    """Fail with their report unless actionlint and zizmor (offline, pedantic) find nothing.

    actionlint knows where each expression context is available, which the workflow schema
    does not; zizmor's pedantic persona also reports images pinned by tag. An exception to a
    zizmor rule is written next to it, as a `# zizmor: ignore[rule]` comment with its reason.
    """
    assert workflows, "no workflow to lint"
    tools = Path(sys.executable).parent  # both come with the test venv
    for command in (
        [tools / "actionlint", "-no-color", *workflows],
        [tools / "zizmor", "--offline", "--persona", "pedantic", "--no-progress", *workflows],
    ):
        result = subprocess.run(
            [str(part) for part in command],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert result.returncode == 0, f"{command[0].name}:\n{result.stdout}\n{result.stderr}"


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
