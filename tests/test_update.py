"""Template tests of the update path: a project generated at one revision takes a later one.

Each test makes its own git repository of the template (this working tree, committed as revision
A), generates a project from it the way a user would (the cookiecutter command line, or
``cruft create``), edits the project, commits revision B to the template (a new, a changed and a
removed file) and runs ``cruft update -y`` in the project. The template-drift job's commands are
taken from the generated CI file and run as CI would, with the template's own cruft in place of
``uvx cruft``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TEMPLATE_DIR
from cookiecutter.environment import StrictEnvironment
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config

SLUG_DIR = "{{cookiecutter.project_slug}}"
# Not copied into the template repository: version control, environments, caches, baked output.
NOT_COPIED = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
NOT_COPIED_AT_TOP = {"out", "uv.lock"}
# Revision B of the template, relative to the project directory.
ADDED_FILE = "docs/release-checklist.md"
ADDED_TEMPLATE = "# Release checklist of {{ cookiecutter.project_name }}\n"
CHANGED_FILE = ".gitignore"
TEMPLATE_LINE = "coverage.xml"
REMOVED_FILE = ".github/dependabot.yml"
# What a project answered `kubernetes=no heroku=no` lacks.
PRUNED_DIR = "deploy/kubernetes"
PRUNED_FILE = "app.json"
# What the user changes in the project.
LOCAL_README_SECTION = "\n## Team notes\n\nOn call: the payments team.\n"
LOCAL_TOP_LINE = "# Kept from the project: local editor files below the template's entries"
LOCAL_LAST_LINE = "local-scratch/"
IDENTITY = ("-c", "user.name=Template Tests", "-c", "user.email=tests@example.com")
UVX_CRUFT = re.compile(r"uvx cruft==[0-9.]+")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of every command: this one, less virtualenv settings, with a private
    cookiecutter config so clones and replay files stay out of the home directory."""
    home = tmp_path_factory.mktemp("cookiecutter-home")
    config = home / "config.yaml"
    config.write_text(
        f'cookiecutters_dir: "{home / "cookiecutters"}"\nreplay_dir: "{home / "replay"}"\n',
        encoding="utf-8",
    )
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("VIRTUAL_ENV", "PYTHONPATH", "PYTEST_", "COOKIECUTTER_"))
    }
    return {**clean, "COOKIECUTTER_CONFIG": str(config), "PYTHONUTF8": "1"}


def run(
    command: list[str], cwd: Path, env: dict[str, str], *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command without a terminal; on failure with check, show everything it printed."""
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        stdin=subprocess.DEVNULL,
        timeout=600,
        check=False,
    )
    if check:
        assert result.returncode == 0, f"{shlex.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result


def git(repo: Path, env: dict[str, str], *args: str) -> str:
    """Run git in repo and return its standard output, stripped."""
    return run(["git", *args], repo, env).stdout.strip()


def commit_all(repo: Path, env: dict[str, str], message: str) -> str:
    """Commit every change in repo as a test identity; return the new commit."""
    git(repo, env, "add", "-A")
    git(repo, env, *IDENTITY, "commit", "-q", "-m", message)
    return git(repo, env, "rev-parse", "HEAD")


def make_template_repository(destination: Path, env: dict[str, str]) -> tuple[Path, str]:
    """Copy this template's working tree into a new git repository; return it and revision A."""

    def ignored(directory: str, names: list[str]) -> set[str]:
        top = Path(directory) == TEMPLATE_DIR
        return {name for name in names if name in NOT_COPIED or (top and name in NOT_COPIED_AT_TOP)}

    shutil.copytree(TEMPLATE_DIR, destination, ignore=ignored)
    git(destination, env, "init", "-q", "-b", "main")
    return destination, commit_all(destination, env, "Revision A")


def commit_revision_b(template: Path, env: dict[str, str]) -> str:
    """Add, change and remove one file of the generated project; return revision B."""
    project = template / SLUG_DIR
    assert (project / REMOVED_FILE).is_file(), f"revision B removes {REMOVED_FILE}"
    (project / ADDED_FILE).parent.mkdir(parents=True, exist_ok=True)
    (project / ADDED_FILE).write_text(ADDED_TEMPLATE, encoding="utf-8")
    with (project / CHANGED_FILE).open("a", encoding="utf-8") as changed:
        changed.write(f"{TEMPLATE_LINE}\n")
    (project / REMOVED_FILE).unlink()
    return commit_all(template, env, "Revision B")


def answer_pairs(answers: dict[str, str]) -> list[str]:
    """Answers as cookiecutter's command line takes them."""
    return [f"{key}={value}" for key, value in answers.items()]


def generate_with_cookiecutter(
    template: Path, out: Path, env: dict[str, str], **answers: str
) -> Path:
    """Generate a project with the cookiecutter command, as the root README shows."""
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(template)]
    run([*command, *answer_pairs(answers), "--output-dir", str(out)], template.parent, env)
    [project] = out.iterdir()
    return project


def generate_with_cruft(template: Path, out: Path, env: dict[str, str], **answers: Any) -> Path:
    """Generate a project with ``cruft create``."""
    command = [sys.executable, "-m", "cruft", "create", "--no-input", "--output-dir", str(out)]
    run([*command, "--extra-context", json.dumps(answers), str(template)], template.parent, env)
    [project] = out.iterdir()
    return project


def cruft_update(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Update the project to the template's newest commit without a question."""
    return run([sys.executable, "-m", "cruft", "update", "-y"], project, env)


def drift_job_commands(project: Path) -> list[str]:
    """The template-drift job's shell commands from the project's GitHub or GitLab CI file."""
    workflow = project / ".github" / "workflows" / "ci.yml"
    if workflow.is_file():
        job = yaml.safe_load(workflow.read_text(encoding="utf-8"))["jobs"]["template-drift"]
        commands = [step["run"] for step in job["steps"] if "run" in step]
    else:
        job = yaml.safe_load((project / ".gitlab-ci.yml").read_text(encoding="utf-8"))
        commands = list(job["template-drift"]["script"])
    assert any(UVX_CRUFT.search(command) for command in commands)
    cruft = f"{shlex.quote(sys.executable)} -m cruft"
    return [UVX_CRUFT.sub(cruft, command) for command in commands]


def run_drift_job(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the drift job's commands in the project, stopping at the first that fails, as CI."""
    script = "set -e\n" + "\n".join(drift_job_commands(project))
    return run(["bash", "-c", script], project, env, check=False)


def cruft_state(project: Path) -> dict[str, Any]:
    """The project's .cruft.json."""
    state: dict[str, Any] = json.loads((project / ".cruft.json").read_text(encoding="utf-8"))
    return state


def status(project: Path, env: dict[str, str]) -> list[str]:
    """git status of the project, one short line per path."""
    return run(["git", "status", "--porcelain"], project, env).stdout.splitlines()


def test_cookiecutter_and_cruft_create_record_the_same_origin(
    tmp_path: Path, env: dict[str, str]
) -> None:
    template, revision_a = make_template_repository(tmp_path / "template", env)

    by_cookiecutter = generate_with_cookiecutter(template, tmp_path / "a", env, init_git="yes")
    by_cruft = generate_with_cruft(template, tmp_path / "b", env, init_git=True)

    recorded = (by_cookiecutter / ".cruft.json").read_text(encoding="utf-8")
    assert (by_cruft / ".cruft.json").read_text(encoding="utf-8") == recorded
    state = cruft_state(by_cookiecutter)
    assert (state["template"], state["commit"]) == (str(template), revision_a)
    assert state["context"]["cookiecutter"]["_commit"] == revision_a
    # cruft create rewrites .cruft.json after the hook's first commit: same bytes, clean tree.
    for project in (by_cookiecutter, by_cruft):
        assert status(project, env) == []
        assert ".cruft.json" in git(project, env, "ls-files").splitlines()


@pytest.mark.slow
@pytest.mark.heavy
def test_update_brings_template_changes_keeps_local_edits_and_passes_own_tests(
    tmp_path: Path, env: dict[str, str]
) -> None:
    template, _ = make_template_repository(tmp_path / "template", env)
    project = generate_with_cookiecutter(template, tmp_path / "out", env, init_git="yes")
    with (project / "README.md").open("a", encoding="utf-8") as readme:
        readme.write(LOCAL_README_SECTION)
    ignored = (project / CHANGED_FILE).read_text(encoding="utf-8")
    (project / CHANGED_FILE).write_text(f"{LOCAL_TOP_LINE}\n{ignored}", encoding="utf-8")
    commit_all(project, env, "Local edits")
    answers = (project / ".cookiecutter.json").read_text(encoding="utf-8")
    revision_b = commit_revision_b(template, env)

    behind = run_drift_job(project, env)
    cruft_update(project, env)
    current = run_drift_job(project, env)

    assert behind.returncode != 0
    assert "FAILURE: Project's cruft is out of date!" in behind.stdout
    assert current.returncode == 0, f"{current.stdout}\n{current.stderr}"
    assert "SUCCESS" in current.stdout
    added = (project / ADDED_FILE).read_text(encoding="utf-8")
    assert added == "# Release checklist of Twelve Factor Service\n"
    lines = (project / CHANGED_FILE).read_text(encoding="utf-8").splitlines()
    assert (lines[0], lines[-1]) == (LOCAL_TOP_LINE, TEMPLATE_LINE)
    assert not (project / REMOVED_FILE).exists()
    assert (project / "README.md").read_text(encoding="utf-8").endswith(LOCAL_README_SECTION)
    assert sorted(status(project, env)) == [
        " M .cruft.json",
        f"A  {ADDED_FILE}",
        f"D  {REMOVED_FILE}",
        f"M  {CHANGED_FILE}",
    ]
    state = cruft_state(project)
    assert (state["commit"], state["context"]["cookiecutter"]["_commit"]) == (revision_b,) * 2
    # The answers did not change, so neither did the replay file, and both files agree.
    assert (project / ".cookiecutter.json").read_text(encoding="utf-8") == answers
    recorded = state["context"]["cookiecutter"]
    assert json.loads(answers)["cookiecutter"] == {
        key: value for key, value in recorded.items() if not key.startswith("_")
    }
    # The project still works: its lock still matches, and its own tests pass.
    commit_all(project, env, "Update from the template")
    assert status(project, env) == []
    run(["uv", "sync", "--locked"], project, env)
    run(["uv", "run", "pytest", "-q", "-p", "no:cacheprovider"], project, env)


def test_update_of_a_project_without_deploy_files_brings_none_back(
    tmp_path: Path, env: dict[str, str]
) -> None:
    template, _ = make_template_repository(tmp_path / "template", env)
    answers = {"init_git": "yes", "kubernetes": "no", "heroku": "no"}
    project = generate_with_cookiecutter(template, tmp_path / "out", env, **answers)
    assert not (project / PRUNED_DIR).exists()
    assert not (project / PRUNED_FILE).exists()
    # Revision B changes the pruned parts too: a changed and a new file in each.
    kubernetes = template / SLUG_DIR / PRUNED_DIR
    with (kubernetes / "README.md").open("a", encoding="utf-8") as readme:
        readme.write("\nA line of revision B.\n")
    (kubernetes / "base" / "revision-b.yaml").write_text("kind: List\n", encoding="utf-8")
    heroku = (template / SLUG_DIR / PRUNED_FILE).read_text(encoding="utf-8")
    keywords = '"keywords": ["python", "fastapi", "twelve-factor"]'
    assert keywords in heroku
    (template / SLUG_DIR / PRUNED_FILE).write_text(
        heroku.replace(keywords, '"keywords": ["revision-b"]'), encoding="utf-8"
    )
    commit_revision_b(template, env)

    cruft_update(project, env)

    assert not (project / PRUNED_DIR).exists()
    assert not (project / PRUNED_FILE).exists()
    assert sorted(status(project, env)) == [
        " M .cruft.json",
        f"A  {ADDED_FILE}",
        f"D  {REMOVED_FILE}",
        f"M  {CHANGED_FILE}",
    ]
    # Changing an answer later (docs/updating.md) brings the part, as it is now.
    commit_all(project, env, "Update from the template")
    changed = ["--variables-to-update", json.dumps({"kubernetes": True})]
    run([sys.executable, "-m", "cruft", "update", "-y", *changed], project, env)
    assert (project / PRUNED_DIR / "base" / "revision-b.yaml").is_file()
    assert not (project / PRUNED_FILE).exists()
    assert cruft_state(project)["context"]["cookiecutter"]["kubernetes"] is True
    assert json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]["kubernetes"]


@pytest.mark.parametrize("init_git", [True, False], ids=["git", "no-git"])
def test_conflicting_edit_shows_as_conflict_and_loses_neither_side(
    tmp_path: Path, env: dict[str, str], init_git: bool
) -> None:
    template, _ = make_template_repository(tmp_path / "template", env)
    out = tmp_path / "out"
    project = generate_with_cruft(template, out, env, init_git=init_git, ci_provider="gitlab")
    with (project / CHANGED_FILE).open("a", encoding="utf-8") as changed:
        changed.write(f"{LOCAL_LAST_LINE}\n")
    if init_git:
        commit_all(project, env, "Local edit of the same lines")
    revision_b = commit_revision_b(template, env)

    behind = run_drift_job(project, env)
    update = cruft_update(project, env)

    assert behind.returncode != 0
    text = (project / CHANGED_FILE).read_text(encoding="utf-8")
    if init_git:
        assert "<<<<<<< ours\n" in text
        assert f"{LOCAL_LAST_LINE}\n=======\n{TEMPLATE_LINE}\n>>>>>>> theirs\n" in text
        assert f"UU {CHANGED_FILE}" in status(project, env)
        assert list(project.rglob("*.rej")) == []
    else:
        assert text.endswith(f"\n{LOCAL_LAST_LINE}\n")
        assert TEMPLATE_LINE not in text
        rejected = (project / f"{CHANGED_FILE}.rej").read_text(encoding="utf-8")
        assert f"\n+{TEMPLATE_LINE}\n" in rejected
        assert "Project directory may have *.rej files" in update.stdout + update.stderr
    # The rest of the update applied.
    assert (project / ADDED_FILE).is_file()
    assert not (project / REMOVED_FILE).exists()
    # cruft records the update as done even with conflicts left: the check passes, so the
    # conflict is for git status and the .rej files to show (docs/updating.md says so).
    assert cruft_state(project)["commit"] == revision_b
    assert run_drift_job(project, env).returncode == 0


def render_ci_file(relative: str, destination: Path) -> None:
    """Render one CI file of the template with the default answers, as cookiecutter does."""
    context = generate_context(context_file=str(TEMPLATE_DIR / "cookiecutter.json"))
    answers = {"cookiecutter": dict(prompt_for_config(context, no_input=True))}
    environment = StrictEnvironment(context=answers, keep_trailing_newline=True)
    source = (TEMPLATE_DIR / SLUG_DIR / relative).read_text(encoding="utf-8")
    destination.mkdir(parents=True, exist_ok=True)
    (destination / relative).parent.mkdir(parents=True, exist_ok=True)
    (destination / relative).write_text(
        environment.from_string(source).render(**answers), encoding="utf-8"
    )


@pytest.mark.parametrize("ci_file", [".github/workflows/ci.yml", ".gitlab-ci.yml"])
@pytest.mark.parametrize("cruft_file", ['{"commit": null}', None], ids=["null-commit", "missing"])
def test_drift_job_fails_when_no_template_commit_is_recorded(
    tmp_path: Path, env: dict[str, str], ci_file: str, cruft_file: str | None
) -> None:
    render_ci_file(ci_file, tmp_path)
    if cruft_file is not None:
        (tmp_path / ".cruft.json").write_text(cruft_file, encoding="utf-8")

    result = run_drift_job(tmp_path, env)

    assert result.returncode != 0
    assert ".cruft.json is missing or records no template commit" in result.stdout


def readme_block(heading: str) -> list[str]:
    """The lines of the first shell block under a heading of the template's README."""
    text = (TEMPLATE_DIR / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("\n```", 1)[0]
    return block.splitlines()


def project_tree(project: Path) -> dict[str, bytes]:
    """Every file of a project by relative path, less git's own."""
    return {
        path.relative_to(project).as_posix(): path.read_bytes()
        for path in sorted(project.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(project).parts
    }


def test_readme_steps_finish_a_project_generated_without_hooks(
    tmp_path: Path, env: dict[str, str]
) -> None:
    template, revision_a = make_template_repository(tmp_path / "template", env)
    answers = {
        "project_name": "Billing API",
        "ci_provider": "gitlab",
        "kubernetes": "no",
        "heroku": "no",
        "init_git": "yes",
    }
    hooked = generate_with_cookiecutter(template, tmp_path / "hooked", env, **answers)
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "--accept-hooks", "no"]
    out = tmp_path / "no-hooks"
    run([*command, str(template), *answer_pairs(answers), "-o", str(out)], tmp_path, env)
    [project] = out.iterdir()
    assert (project / "deploy" / "kubernetes").is_dir()
    assert not (project / "uv.lock").exists()

    context = {key: value for key, value in answers.items() if key != "init_git"}
    context |= {"kubernetes": False, "heroku": False}
    ran = []
    for line in readme_block("## Generating without hooks"):
        step, _, comment = line.partition("  #")
        if match := re.fullmatch(r" *(if|unless) (\w+)=(\w+)", comment):
            kind, question, value = match.groups()
            if (answers[question] == value) != (kind == "if"):
                continue
        step = UVX_CRUFT.sub(f"{shlex.quote(sys.executable)} -m cruft", step)
        step = re.sub(
            r"--extra-context '[^']*'", f"--extra-context {shlex.quote(json.dumps(context))}", step
        )
        step = step.replace("TEMPLATE_URL", shlex.quote(str(template)))
        step = step.replace("git commit", f"git {shlex.join(IDENTITY)} commit")
        run(["bash", "-c", f"set -e; {step}"], project, env)
        ran.append(step.split()[0])
    assert ran == ["rm", "rm", "rm", "uv", sys.executable, "git"]

    finished, expected = project_tree(project), project_tree(hooked)
    assert sorted(finished) == sorted(set(expected) - {".cookiecutter.json"})
    # Byte for byte, .cruft.json (cruft's own writing) and uv.lock included.
    assert [path for path in finished if finished[path] != expected[path]] == []
    assert cruft_state(project)["commit"] == revision_a
    assert status(project, env) == []
    run(["uv", "lock", "--check"], project, env)
