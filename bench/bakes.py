"""Baking: the template under test and a one-file template to compare its bake time with."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from procs import Children, MeasurementError

ONE_FILE_CONTEXT = {"project_slug": "one-file"}


def cookiecutter_config(directory: Path) -> Path:
    """A cookiecutter config keeping replay files and clones in the scratch directory."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "cookiecutter.yaml"
    config.write_text(
        f"cookiecutters_dir: {json.dumps(str(directory / 'cookiecutters'))}\n"
        f"replay_dir: {json.dumps(str(directory / 'replay'))}\n"
    )
    return config


def make_one_file_template(directory: Path) -> Path:
    """A template of one prompt and one rendered file, without hooks."""
    directory.mkdir(parents=True)
    (directory / "cookiecutter.json").write_text(json.dumps(ONE_FILE_CONTEXT))
    target = directory / "{{cookiecutter.project_slug}}"
    target.mkdir()
    (target / "README.md").write_text("# {{ cookiecutter.project_slug }}\n")
    return directory


def stub_uv(directory: Path) -> Path:
    """A `uv` that writes an empty uv.lock at once: the hook's lock step without its cost.

    Generation fails when it cannot lock, so the render-and-hooks time is measured with this
    stand-in ahead of the real uv on PATH.
    """
    directory.mkdir(parents=True, exist_ok=True)
    program = directory / "uv"
    program.write_text("#!/bin/sh\n: > uv.lock\n")
    program.chmod(0o755)
    return directory


def bake(
    children: Children,
    cookiecutter: str,
    template: Path,
    out_dir: Path,
    env: Mapping[str, str],
    *extra: str,
) -> tuple[float, Path]:
    """Render template into a fresh out_dir; return (wall seconds, the project directory)."""
    out_dir.mkdir(parents=True)
    seconds, _ = children.run(
        [cookiecutter, "--no-input", str(template), "-o", str(out_dir), *extra],
        env=env,
        what=f"cookiecutter {template.name}",
    )
    made = [p for p in out_dir.iterdir() if p.is_dir()]
    if len(made) != 1:
        raise MeasurementError(f"expected one project in {out_dir}, found {len(made)}")
    return seconds, made[0]


def discard(path: Path) -> None:
    """Remove a bake that was made only to be timed."""
    shutil.rmtree(path, ignore_errors=True)
