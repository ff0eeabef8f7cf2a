"""Post-generation hook: drop unselected options, write the answers file, lock deps, init git.

Cookiecutter runs this file from the new project's directory after rendering it with Jinja. Jinja
appears only in ANSWERS_JSON (see the pre-generation hook for why it is JSON in a raw string);
the rest is plain Python on the standard library, importable by the tests.

The answers file ``.cookiecutter.json`` is in the format of cookiecutter's replay files, so the
same project can be generated again, without a single prompt, from the same answers::

    cookiecutter --replay-file .cookiecutter.json <template>

Locking and the first commit need tools from outside (uv, git, a package index): when one is
missing or fails, the hook prints a warning with the command to run later and still succeeds.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# Jinja writes the answers here as JSON; a raw string keeps its escapes for json.loads.
ANSWERS_JSON = r"""{
    "ci_provider": {{ cookiecutter.ci_provider | tojson }},
    "license": {{ cookiecutter.license | tojson }},
    "author_name": {{ cookiecutter.author_name | tojson }},
    "author_email": {{ cookiecutter.author_email | tojson }},
    "init_git": {{ cookiecutter.init_git | tojson }}
}"""

# (question, answer) -> paths that are kept only when the question got that answer; relative
# to the project directory. A path listed here but absent from the template is simply skipped.
OPTIONAL_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("ci_provider", "github"): (".github",),
    ("ci_provider", "gitlab"): (".gitlab-ci.yml",),
}

ANSWERS_FILE = ".cookiecutter.json"
# Private context keys worth keeping in the answers file; the rest describe this machine
# (_output_dir, _repo_dir) or the template's own settings, which it supplies again on replay.
KEPT_PRIVATE_KEYS = ("_template", "_commit", "_checkout")
# A git URL, an scp-like git address or a cookiecutter abbreviation such as gh:owner/repo;
# anything else is a path on this machine, meaningless elsewhere.
REMOTE_TEMPLATE = re.compile(
    r"(?:(?:git|hg)\+)?(?:git|ssh|https?)://"
    r"|[\w.-]+@[\w.-]+:"
    r"|[A-Za-z][\w-]+:(?!//)",
)

LOCK_TIMEOUT_SECONDS = 300
TOOL_TIMEOUT_SECONDS = 60
FIRST_COMMIT_MESSAGE = "Initial commit from the twelve-factor template"
# Set when cookiecutter runs inside a git hook or another repository's command; left in place
# they would make git write to that repository instead of the new one.
GIT_LOCATION_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
)


def warn(message: str) -> None:
    """Print a warning on stderr."""
    print(f"WARNING: {message}", file=sys.stderr, flush=True)


def say(message: str) -> None:
    """Print a progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def parse_answers(answers_json: str) -> dict[str, object]:
    """Read the answers Jinja wrote into ANSWERS_JSON."""
    answers: dict[str, object] = json.loads(answers_json)
    return answers


def unselected_paths(
    answers: Mapping[str, object],
    optional_paths: Mapping[tuple[str, str], Sequence[str]] = OPTIONAL_PATHS,
) -> list[str]:
    """List the optional paths whose question got another answer than the one they need."""
    return [
        path
        for (question, needed), paths in optional_paths.items()
        if answers[question] != needed
        for path in paths
    ]


def remove_path(path: Path) -> bool:
    """Remove a file, link or directory tree; return whether there was anything to remove."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
        return True
    if path.exists() or path.is_symlink():
        path.unlink()
        return True
    return False


def remove_unselected(
    project_dir: Path,
    answers: Mapping[str, object],
    optional_paths: Mapping[tuple[str, str], Sequence[str]] = OPTIONAL_PATHS,
) -> list[str]:
    """Remove the files of options not chosen; return the paths that were there and are gone."""
    return [
        relative
        for relative in unselected_paths(answers, optional_paths)
        if remove_path(project_dir / relative)
    ]


def is_remote_template(reference: str) -> bool:
    """Tell whether a template reference works on another machine (a URL, not a local path)."""
    return REMOTE_TEMPLATE.match(reference) is not None


def without_credentials(reference: str) -> str:
    """Drop user and password from a template URL, keeping only an ssh account name."""
    parts = urlsplit(reference)
    if "@" not in parts.netloc:
        return reference
    userinfo, _, host = parts.netloc.rpartition("@")
    # ssh://git@host names an account, not a secret; anything else before @ may be a token.
    keep_user = parts.scheme.endswith("ssh") and ":" not in userinfo
    netloc = f"{userinfo}@{host}" if keep_user else host
    return urlunsplit(parts._replace(netloc=netloc))


def replay_context(context: Mapping[str, object]) -> dict[str, dict[str, object]]:
    """Turn cookiecutter's context into the content of a replay file.

    Keeps every answer, derived values included (public keys and ``__`` keys other than
    ``__prompts__``), plus ``_template`` when it is a remote reference (without credentials),
    ``_commit`` and a non-null ``_checkout``.
    """
    answers: dict[str, object] = {}
    for key, value in context.items():
        if key == "__prompts__":
            continue
        if not key.startswith("_") or key.startswith("__"):
            answers[key] = value
        elif key == "_template":
            if isinstance(value, str) and is_remote_template(value):
                answers[key] = without_credentials(value)
        elif key in KEPT_PRIVATE_KEYS and value is not None:
            answers[key] = value
    return {"cookiecutter": dict(sorted(answers.items()))}


def write_answers_file(path: Path) -> None:
    """Rewrite the rendered context in path as a replay file: sorted, portable, final newline."""
    context = json.loads(path.read_text(encoding="utf-8"))
    text = json.dumps(replay_context(context), indent=2, sort_keys=True, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def find_uv(search_from: Path) -> str | None:
    """Find the uv executable the user would run in search_from, or None when there is none.

    A pyenv shim picks its program by the nearest ``.python-version``. The project has its own,
    which may name a Python that has no uv installed, so a shim is resolved from search_from.
    """
    uv = shutil.which("uv")
    pyenv = shutil.which("pyenv")
    if uv is None or pyenv is None or Path(uv).parent.name != "shims":
        return uv
    try:
        result = subprocess.run(
            [pyenv, "which", "uv"],
            cwd=search_from,
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return uv
    resolved = result.stdout.strip()
    return resolved if result.returncode == 0 and resolved else uv


def lock_dependencies(project_dir: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> bool:
    """Run ``uv lock`` in project_dir; on any failure warn, leave no lock file, return False."""
    later = f"cd {shlex.quote(str(project_dir))} && uv lock"
    lock_file = project_dir / "uv.lock"
    had_lock = lock_file.exists()
    say("Locking dependencies with uv ...")
    uv = find_uv(project_dir.parent)
    if uv is None:
        warn(f"uv is not on PATH, so dependencies are not locked. Install uv, then run: {later}")
        return False
    if not (project_dir / "pyproject.toml").is_file():
        warn(f"no pyproject.toml here, so dependencies are not locked. Later, run: {later}")
        return False
    try:
        # uv prints its own progress and errors on stderr, which reaches the user as is.
        result = subprocess.run([uv, "lock"], cwd=project_dir, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        problem = f"`uv lock` did not finish within {timeout:g} s"
    except OSError as error:
        problem = f"`uv lock` could not start ({error})"
    else:
        if result.returncode == 0 and lock_file.is_file():
            return True
        if result.returncode == 0:
            problem = "`uv lock` wrote no uv.lock here (is the directory inside a uv workspace?)"
        else:
            problem = f"`uv lock` failed with exit status {result.returncode} (see above)"
    if not had_lock:
        # Whatever uv left behind is not a lock of these dependencies.
        lock_file.unlink(missing_ok=True)
    warn(f"{problem}, so dependencies are not locked. Run it again later: {later}")
    return False


def git_environment() -> dict[str, str]:
    """This process's environment without variables that point git at another repository."""
    return {name: value for name, value in os.environ.items() if name not in GIT_LOCATION_VARIABLES}


def run_git(
    git: str, args: Sequence[str], project_dir: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run one git command in project_dir, capturing its output."""
    return subprocess.run(
        [git, *args],
        cwd=project_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_SECONDS,
        check=False,
    )


def identity_options(
    git: str, project_dir: Path, env: Mapping[str, str], author_name: str, author_email: str
) -> list[str]:
    """Return ``-c user.*=`` options from the answers for what the user's git config lacks."""
    configured = {
        key: run_git(git, ["config", "--get", key], project_dir, env).stdout.strip()
        for key in ("user.name", "user.email")
    }
    if not configured["user.email"]:
        return ["-c", f"user.name={author_name}", "-c", f"user.email={author_email}"]
    if not configured["user.name"]:
        return ["-c", f"user.name={author_name}"]
    return []


def init_git_repository(project_dir: Path, author_name: str, author_email: str) -> bool:
    """Create a repository on branch main holding every file in one commit; warn on failure."""
    commit = ["commit", "-q", "-m", FIRST_COMMIT_MESSAGE]
    later = (
        f"cd {shlex.quote(str(project_dir))} && git init -b main && git add -A"
        f" && git commit -m {shlex.quote(FIRST_COMMIT_MESSAGE)}"
    )
    git = shutil.which("git")
    if git is None:
        warn(f"git is not on PATH, so no repository was created. Install git, then run: {later}")
        return False
    say("Creating a git repository with a first commit ...")
    env = git_environment()
    try:
        for args in (["init", "-q", "-b", "main"], ["add", "-A"]):
            result = run_git(git, args, project_dir, env)
            if result.returncode != 0:
                break
        else:
            identity = identity_options(git, project_dir, env, author_name, author_email)
            args = [*identity, *commit]
            result = run_git(git, args, project_dir, env)
    except (OSError, subprocess.TimeoutExpired) as error:
        warn(f"git did not complete ({error}). Run it yourself: {later}")
        return False
    if result.returncode != 0:
        message = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        warn(f"`git {shlex.join(args)}` failed: {message}. Finish it yourself: {later}")
        return False
    return True


def main(answers: Mapping[str, object], project_dir: Path) -> int:
    """Finish the project in project_dir; only a broken template makes this fail."""
    remove_unselected(project_dir, answers)
    write_answers_file(project_dir / ANSWERS_FILE)
    lock_dependencies(project_dir)
    if answers["init_git"] is True:
        init_git_repository(project_dir, str(answers["author_name"]), str(answers["author_email"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_answers(ANSWERS_JSON), Path.cwd()))
