"""A migration added while `-dev` runs: applied once before the restart, however many times its
file is rewritten in a moment (alembic writes it, ruff fixes and formats it); a failing one is
one line while the running processes go on serving. On a bake of its own: it writes migrations.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import bake
from test_day_one import DevRun, _free_port

HEADER = '''"""{title}"""

from alembic import op

revision: str = "{revision}"
down_revision: str | None = "{down}"


def upgrade() -> None:
    op.execute("{sql}")


def downgrade() -> None:
    pass
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, clean_env: dict[str, str]) -> Path:
    baked = bake(tmp_path_factory.mktemp("dev-migrations"), init_git="no")
    subprocess.run(
        ["uv", "sync", "--locked"], cwd=baked, env=clean_env, check=True, capture_output=True
    )
    return baked


@pytest.fixture
def dev(project: Path, clean_env: dict[str, str]) -> Iterator[DevRun]:
    env = {
        name: value
        for name, value in clean_env.items()
        if not name.startswith(("TEST_", "DATABASE_", "REDIS_", "PYTHONDONTWRITEBYTECODE"))
    }
    run = DevRun(project, project, {**env, "PORT": str(_free_port())})
    yield run
    if run.process.returncode is None:
        run.end("ctrl-c")


def _count(run: DevRun, text: str) -> int:
    return sum(text in line for line in run.lines)


def _wait_quiet(run: DevRun, seconds: float) -> None:
    """Until the dev command has written nothing for `seconds`."""
    seen = -1
    while seen != len(run.lines):
        seen = len(run.lines)
        time.sleep(seconds)


def test_a_new_migration_is_applied_once_before_the_restart_and_a_failed_one_is_one_line(
    project: Path, dev: DevRun
) -> None:
    dev.wait_for("| ready: ")
    versions = project / "src" / "twelve_factor_service" / "migrations" / "versions"
    added = versions / "0004_add_a_probe_table.py"
    text = HEADER.format(
        title="Add a probe table.", revision="0004", down="0003", sql="CREATE TABLE probe (id int)"
    )
    added.write_text(text)
    time.sleep(0.3)  # ruff's two rewrites of a new revision follow within a moment
    added.write_text(text.replace("    pass\n", '    op.execute("DROP TABLE probe")\n'))
    time.sleep(0.3)
    added.write_text(text.replace("    pass\n", '    op.execute("DROP TABLE probe")  # fixed\n'))
    dev.wait_for("| web ready again")
    _wait_quiet(dev, 2.0)
    assert _count(dev, "Running upgrade 0003 -> 0004") == 1, dev.text()
    assert _count(dev, "applying the migration first") == 1, dev.text()
    assert _count(dev, "restarting web, worker, clock") == 1, dev.text()

    broken = versions / "0005_a_broken_one.py"
    broken.write_text(
        HEADER.format(title="Broken.", revision="0005", down="0004", sql="SELECT no_such_column")
    )
    dev.wait_for("the migration failed")
    _wait_quiet(dev, 2.0)
    [line] = [line for line in dev.lines if "the migration failed" in line]
    assert 'column "no_such_column" does not exist' in line
    assert not any(line.startswith("release") and "Traceback" in line for line in dev.lines)
    assert _count(dev, "restarting web, worker, clock") == 1, "the running processes were kept"
    ready = f"http://127.0.0.1:{dev.port}/readyz"
    with urllib.request.urlopen(ready, timeout=10) as answer:
        assert answer.status == 200
    assert dev.end("ctrl-c") == 0
