"""The recipe of the generated docs/extending.md, applied to a fresh bake as a newcomer would:
add a field, add a feature, generate both migrations, and the project's checks all pass."""

from __future__ import annotations

import ast
import re
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import admin_connection, bake, database_url, redis_url

DOC = "docs/extending.md"
# A line naming a file, then its fenced block: how the recipe gives each new file.
NAMED_BLOCK = re.compile(r"^ *`([\w/]+\.py)`[^\n]*:\n\n *```python\n(.*?)^ *```", re.M | re.S)


# Step 4 of "Add a field", for the three fields: the edges of each column's bounds, and past them.
NOTE_FIELDS_TEST = """\
\"\"\"Notes have a priority, a pin and a label, each within its column's bounds.\"\"\"

from __future__ import annotations

from httpx import AsyncClient

NOTES = "/api/v1/notes"
LOWEST = -(2**31)


async def test_a_note_keeps_its_priority_pin_and_label(client: AsyncClient) -> None:
    body = {"title": "p", "priority": 2**31 - 1, "pinned": True, "label": "x" * 40}
    created = await client.post(NOTES, json=body)
    assert created.status_code == 201
    note = f"{NOTES}/{created.json()['id']}"
    patched = (await client.patch(note, json={"priority": LOWEST, "pinned": False})).json()
    assert (patched["priority"], patched["pinned"]) == (LOWEST, False)
    read = (await client.get(note)).json()
    assert (read["priority"], read["pinned"], read["label"]) == (LOWEST, False, "x" * 40)
    listed = (await client.get(NOTES)).json()["items"]
    assert {"priority", "pinned", "label"} <= listed[0].keys()


async def test_a_priority_or_label_beyond_its_column_is_422(client: AsyncClient) -> None:
    for body in ({"priority": 2**31}, {"priority": LOWEST - 1}, {"label": "x" * 41}):
        answer = await client.post(NOTES, json={"title": "p", **body})
        assert answer.status_code == 422, body
"""


def _run(command: list[str], project: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} failed ({result.returncode}):\n"
        f"{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    )
    return result.stdout + result.stderr


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path.name}: expected one {old!r}"
    path.write_text(text.replace(old, new))


def _dedent(block: str) -> str:
    lines = block.splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines) + "\n"


def _changed_files(project: Path) -> list[str]:
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=project, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sorted(line[3:] for line in status.splitlines())


def _commit(project: Path, message: str) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", message], cwd=project, check=True)


def add_the_field(project: Path, package: str, recipe: str) -> None:
    """Steps 1, 3 and 4 of "Add a field" (step 2 is the migration): its `priority`, and by its
    table of bounds a `pinned` and a `label` beside it."""
    section = recipe[recipe.index("## Add a field") : recipe.index("## Add a feature")]
    priority = {
        "model": '    priority: Mapped[int] = mapped_column(Integer, server_default="0")\n',
        "import": "from ...core.db.integers import Int32\n",
        "in": "    priority: Int32 = 0\n",
        "patch": "    priority: Int32 | None = None\n",
        "out": "    priority: int\n",
    }
    for line in priority.values():
        assert line.strip() in section, line
    assert "| `String(n)` | `StoredText = Field(max_length=n)`" in section
    notes = project / "src" / package / "features" / "notes"
    _replace(
        notes / "models.py",
        "from sqlalchemy.orm import Mapped, mapped_column\n",
        "from sqlalchemy.orm import Mapped, mapped_column\nfrom sqlalchemy.sql import false\n",
    )
    _replace(
        notes / "models.py",
        '    body: Mapped[str] = mapped_column(Text, default="")\n',
        '    body: Mapped[str] = mapped_column(Text, default="")\n'
        + priority["model"]
        + "    pinned: Mapped[bool] = mapped_column(server_default=false())\n"
        + '    label: Mapped[str] = mapped_column(String(40), server_default="")\n',
    )
    schemas = notes / "schemas.py"
    _replace(
        schemas,
        "from ...core.db.text import StoredText\n",
        priority["import"] + "from ...core.db.text import StoredText\n",
    )
    _replace(
        schemas,
        '    body: StoredText = Field(default="", max_length=BODY_MAX)\n',
        '    body: StoredText = Field(default="", max_length=BODY_MAX)\n'
        + priority["in"]
        + "    pinned: bool = False\n"
        + '    label: StoredText = Field(default="", max_length=40)\n',
    )
    _replace(
        schemas,
        "    body: StoredText | None = Field(default=None, max_length=BODY_MAX)\n",
        "    body: StoredText | None = Field(default=None, max_length=BODY_MAX)\n"
        + priority["patch"]
        + "    pinned: bool | None = None\n"
        + "    label: StoredText | None = Field(default=None, max_length=40)\n",
    )
    _replace(
        schemas,
        "    body: str\n    created_at",
        "    body: str\n" + priority["out"] + "    pinned: bool\n    label: str\n    created_at",
    )
    (project / "tests" / "test_note_fields.py").write_text(NOTE_FIELDS_TEST)


def add_the_feature(project: Path, package: str, recipe: str) -> None:
    """Steps 1, 2 and 4 of "Add a feature", the files as the recipe gives them."""
    section = recipe[recipe.index("## Add a feature") :]
    blocks = NAMED_BLOCK.findall(section)
    names = [name for name, _ in blocks]
    assert names == [
        "__init__.py", "models.py", "schemas.py", "service.py", "tasks.py", "routes.py",
    ], names  # fmt: skip
    folder = project / "src" / package / "features" / "reminders"
    folder.mkdir()
    for name, block in blocks:
        (folder / name).write_text(_dedent(block))
    # Step 2: the imports and the lists of features/__init__.py, as the recipe gives them.
    step = section[section.index("features/__init__.py`, and add") :]
    given = re.search(r"```python\n(.*?)^ *```", step, re.M | re.S)
    assert given is not None
    features = project / "src" / package / "features/__init__.py"
    text = features.read_text()
    source = _dedent(given.group(1))
    imports = ""
    for statement in ast.parse(source).body:
        code = ast.get_source_segment(source, statement) or ""
        if isinstance(statement, ast.ImportFrom):
            imports += f"{code}\n"
        else:
            name = code.split(":")[0].split("=")[0].strip()
            line = re.search(rf"^{name}\b.*$", text, re.M)
            assert line is not None, f"features/__init__.py has no {name}"
            text = text.replace(line.group(0), code)
    last = "from .notes import tasks as notes_tasks\n"
    features.write_text(text.replace(last, last + imports))
    test = section[section.index("tests/test_reminders.py") :]
    block = re.search(r"```python\n(.*?)^ *```", test, re.M | re.S)
    assert block is not None
    (project / "tests" / "test_reminders.py").write_text(_dedent(block.group(1)))


def autogenerate(project: Path, package: str, env: dict[str, str], message: str) -> Path:
    """Step 2: the migration, generated by the command the recipe gives; its path."""
    versions = project / "src" / package / "migrations" / "versions"
    before = set(versions.glob("*.py"))
    command = f'uv run {package}-dev run alembic revision --autogenerate -m "{message}"'
    assert command in (project / DOC).read_text(), "the test runs the recipe's command"
    _run(["uv", "run", "--no-sync", f"{package}-dev", "run", "alembic", "revision",
          "--autogenerate", "-m", message], project, env)  # fmt: skip
    [new] = set(versions.glob("*.py")) - before
    return new


@pytest.mark.slow
@pytest.mark.heavy
def test_the_extending_recipe_adds_a_field_and_a_feature_that_pass_every_check(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    project = bake(tmp_path, init_git="no")
    package = "twelve_factor_service"
    recipe = (project / DOC).read_text()
    name = f"extending_{uuid.uuid4().hex[:8]}"
    with admin_connection() as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    env = {
        **clean_env,
        "UV_PYTHON_DOWNLOADS": "never",
        "TEST_REDIS_URL": redis_url(2),
        "DATABASE_URL": database_url(name),
        "REDIS_URL": redis_url(1),
        "APP_ENV": "development",
    }
    try:
        _run(["uv", "sync", "--locked"], project, env)
        subprocess.run(["git", "init", "-q"], cwd=project, check=True)
        _commit(project, "generated")

        add_the_field(project, package, recipe)
        field_migration = autogenerate(project, package, env, "add priority to notes")
        assert field_migration.name.startswith("0004_"), field_migration.name
        assert all(name in field_migration.read_text() for name in ("priority", "pinned", "label"))
        changed = [path for path in _changed_files(project) if "/migrations/" not in path]
        assert len(changed) <= 3, changed
        _commit(project, "priority, pinned, label")

        add_the_feature(project, package, recipe)
        feature_migration = autogenerate(project, package, env, "create reminders")
        assert feature_migration.name.startswith("0005_"), feature_migration.name
        assert "reminders" in feature_migration.read_text()
        assert "pinned" not in feature_migration.read_text(), "the field was migrated already"

        _run(["uv", "run", "--no-sync", "ruff", "check", "."], project, env)
        _run(["uv", "run", "--no-sync", "ruff", "format", "--check", "."], project, env)
        _run(["uv", "run", "--no-sync", "mypy"], project, env)
        output = _run(
            ["uv", "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider"], project, env
        )
        assert re.search(r"\d+ passed", output), output[-2000:]
        assert " failed" not in output, output[-3000:]
        # This bake is the default Python's full toolchain run (tests/test_generation.py).
        assert " skipped" not in output, output[-3000:]
        # The recipe's tests, and the fuzzing that sends the new fields their bounds' edges.
        ran = (
            "test_a_priority_or_label_beyond_its_column_is_422",
            "test_due_reminders_are_marked_sent_once",
            "test_reminders_need_an_api_key",
            "test_every_integer_and_text_a_client_sends_has_its_bounds",
            "test_no_request_makes_a_server_error",
        )
        for test in ran:
            assert test in _run(
                ["uv", "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
                 "--co", "tests/test_note_fields.py", "tests/test_reminders.py",
                 "tests/test_fuzz.py"], project, env,
            ), test  # fmt: skip
    finally:
        with admin_connection() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
