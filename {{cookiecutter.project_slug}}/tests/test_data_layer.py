"""One data layer: every table declared once, and no SQL string in the code names a table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from {{ cookiecutter.package_name }}.core.db.base import Base
from {{ cookiecutter.package_name }}.features import MODELS

from support import PROJECT_DIR

SOURCE_DIR = PROJECT_DIR / "src" / "{{ cookiecutter.package_name }}"
MIGRATIONS_DIR = SOURCE_DIR / "migrations"


def _strings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_no_sql_string_outside_the_migrations_names_a_table() -> None:
    tables = sorted(Base.metadata.tables)
    assert "notes" in tables, tables
    naming = re.compile(
        rf"\b(FROM|INTO|UPDATE|JOIN|TABLE|TRUNCATE)\s+\"?({'|'.join(tables)})\b", re.IGNORECASE
    )
    found = [
        f"{path.relative_to(SOURCE_DIR)}:{line}: {text.strip()[:60]}"
        for path in SOURCE_DIR.rglob("*.py")
        if MIGRATIONS_DIR not in path.parents
        for line, text in _strings(path)
        if naming.search(text)
    ]
    assert found == [], "build the statement from the table's declaration instead"


def test_every_table_is_declared_by_one_feature() -> None:
    owners: dict[str, list[str]] = {}
    for mapper in Base.registry.mappers:
        for mapped in mapper.tables:
            owners.setdefault(mapped.name, []).append(mapper.class_.__module__)
    assert set(owners) == set(Base.metadata.tables), "a table declared outside a model class"
    listed = {module.__name__ for module in MODELS}
    for table, modules in owners.items():
        assert len(modules) == 1, f"{table} is declared {len(modules)} times"
        assert modules[0] in listed, f"{table} is declared outside the models in features"
