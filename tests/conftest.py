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
