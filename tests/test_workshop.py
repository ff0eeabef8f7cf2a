"""The workshop guide (docs/workshop.md) as a teacher would follow it on one laptop: the install
without any network, then two exercises run with the guide's command and reset with its reset,
the two that used to leave something behind (factor II re-locked uv.lock, factor VI left a file).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest
from conftest import bake, redis_url
from test_exercises import DOC, apply, parse_exercises

GUIDE = "docs/workshop.md"


def guide_block(project: Path, heading: str) -> list[str]:
    """The commands of the first shell block under a heading of the guide (comments cut)."""
    text = (project / GUIDE).read_text()
    block = re.search(rf"## {re.escape(heading)}\n.*?```sh\n(.*?)```", text, re.DOTALL)
    assert block, f"no commands under {heading!r}"
    return [line.split("   #", 1)[0].strip() for line in block[1].splitlines() if line.strip()]


def git_state(project: Path) -> tuple[str, str]:
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return status, hashlib.sha256((project / "uv.lock").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def laptop(tmp_path_factory: pytest.TempPathFactory, clean_env: dict[str, str]) -> Path:
    return bake(tmp_path_factory.mktemp("workshop"), init_git="yes")


def test_the_laptop_install_needs_no_network_and_two_exercises_reset_cleanly(
    laptop: Path, clean_env: dict[str, str]
) -> None:
    # uv's cache here holds the locked packages, as the room's copied cache does on a laptop.
    install = guide_block(laptop, "On each laptop: install without the network")
    assert install[1] == "uv sync --locked"
    # A laptop caches bytecode (PYTHONDONTWRITEBYTECODE would compile every module every run).
    laptop_env = {k: v for k, v in clean_env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env = {**laptop_env, "UV_OFFLINE": "1", "UV_PYTHON_DOWNLOADS": "never"}
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", f"ip link set lo up && {install[1]}"],
        cwd=laptop,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (laptop / ".venv" / "bin" / "twelve_factor_service-dev").exists()

    one_test = guide_block(laptop, "The exercises, in order")[0]
    assert one_test.startswith("uv run --frozen pytest -n 0 tests/test_twelve_factor.py -k ")
    [reset] = guide_block(laptop, "Reset after each exercise")
    clean = git_state(laptop)
    assert clean[0] == "", "the bake is committed"
    env |= {"TEST_REDIS_URL": redis_url(12)}
    exercises = {e.fails.split("_")[2]: e for e in parse_exercises((laptop / DOC).read_text())}
    for number in ("02", "06"):
        exercise = exercises[number]
        apply(laptop, exercise)
        command = one_test.rsplit("-k ", 1)[0] + f"-k {exercise.fails} -p no:cacheprovider"
        run = subprocess.run(
            ["sh", "-c", command],
            cwd=laptop,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
        assert "1 failed" in run.stdout, run.stdout[-3000:]
        assert git_state(laptop)[0] != "", "the exercise changed something"
        subprocess.run(["sh", "-c", reset], cwd=laptop, check=True, capture_output=True)
        assert git_state(laptop) == clean, f"exercise {number} left something after the reset"
