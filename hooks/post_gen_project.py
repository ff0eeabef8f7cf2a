"""Post-generation hook: drop unselected options, record answers and origin, lock deps, init git.

Cookiecutter runs this file from the new project's directory after rendering it with Jinja. Jinja
appears only in CONTEXT_JSON (see the pre-generation hook for why it is JSON in a raw string);
the rest is plain Python on the standard library, importable by the tests.

Two files record the project's origin:

- ``.cookiecutter.json`` holds every answer, in the format of cookiecutter's replay files, so the
  same project can be generated again without a single prompt::

      cookiecutter --replay-file .cookiecutter.json <template>

- ``.cruft.json`` holds the same answers plus the template's source and git commit, exactly as
  ``cruft create`` writes it, so ``cruft check`` and ``cruft update`` work on the project (see the
  project's docs/updating.md). ``cruft create`` rewrites this file after the hook; the content
  is the same (unless its --checkout, --directory or --skip, which the hook cannot see, were
  given), so the first commit stays clean.

cruft also runs this hook when it renders the template during ``cruft update`` and ``cruft diff``;
``[tool.cruft] skip`` in the project's pyproject.toml keeps what the hook adds there (.git, uv.lock,
.cruft.json) out of the changes cruft applies.

Locking needs uv, a Python it finds for the chosen version and a package index: a project
without its lock is not ready to run, so when locking fails the hook prints one line saying why
and what to do, and exits 1 (cookiecutter then removes the half-made project). The first commit
needs git: without it the hook prints a warning with the commands to run later and succeeds.
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
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

# Jinja writes the whole context here, key by key in cookiecutter's order (tojson on the whole
# mapping would sort it); a raw string keeps the JSON escapes for json.loads.
CONTEXT_JSON = r"""{
{%- for key, value in cookiecutter.items() %}
    {{ key | tojson }}: {{ value | tojson }}{% if not loop.last %},{% endif %}
{%- endfor %}
}"""

# (question, answer) -> paths that are kept only when the question got that answer; relative
# to the project directory, `{answer}` replaced by that answer. A path listed here but absent from
# the template is simply skipped.
# What mentions a pruned part in the files that stay is written under the same answer in the
# files themselves (Jinja conditions), so the project never refers to what it lacks.
OPTIONAL_PATHS: dict[tuple[str, object], tuple[str, ...]] = {
    ("ci_provider", "github"): (".github",),
    ("ci_provider", "gitlab"): (".gitlab-ci.yml",),
    ("observability", True): (
        "src/{package_name}/core/observability",
        "tests/test_observability.py",
        "docs/observability.md",
        "deploy/observability",
        "deploy/kubernetes/observability",
        "deploy/kubernetes/base/networkpolicy-metrics-ingress.yaml",
    ),
    ("kubernetes", True): ("deploy/kubernetes",),
    ("heroku", True): ("app.json",),
}

ANSWERS_FILE = ".cookiecutter.json"
CRUFT_FILE = ".cruft.json"
PROMPTS_KEY = "__prompts__"
# Keys cookiecutter adds to the context for this run only (machine paths, the --checkout option);
# the context cruft records has none of them.
RUN_KEYS = ("_output_dir", "_repo_dir", "_checkout")
# cruft appends these two to the context it records: the template source and its commit.
ORIGIN_KEYS = ("_template", "_commit")
# A reference cookiecutter clones or downloads: a URL, an scp-like git address or an abbreviation
# such as gh:owner/repo. Anything else is a directory (or zip file) on this machine.
CLONED_TEMPLATE = re.compile(
    r"(?:(?:git|hg)\+)?(?:git|ssh|https?|file)://"
    r"|[\w.-]+@[\w.-]+:"
    r"|[A-Za-z][\w-]+:(?!//)",
)
UPDATING_DOC = "docs/updating.md"

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


class Origin(NamedTuple):
    """Where a project came from, in the terms of a .cruft.json file."""

    template: str | None
    commit: str | None
    checkout: str | None = None
    directory: str | None = None


class Checkout(NamedTuple):
    """The git checkout a template directory is tracked in."""

    root: Path
    directory: str | None
    commit: str
    remote: str | None
    dirty: bool


def warn(message: str) -> None:
    """Print a warning on stderr."""
    print(f"WARNING: {message}", file=sys.stderr, flush=True)


def error(message: str) -> None:
    """Print the one line that says why generation failed, on stderr."""
    print(f"error: {message}", file=sys.stderr, flush=True)


def say(message: str) -> None:
    """Print a progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def parse_context(context_json: str) -> dict[str, object]:
    """Read the context Jinja wrote into CONTEXT_JSON, in cookiecutter's order."""
    context: dict[str, object] = json.loads(context_json)
    return context


def unselected_paths(
    answers: Mapping[str, object],
    optional_paths: Mapping[tuple[str, object], Sequence[str]] = OPTIONAL_PATHS,
) -> list[str]:
    """List the optional paths whose question got another answer than the one they need."""
    return [
        path.format(**answers)
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
    optional_paths: Mapping[tuple[str, object], Sequence[str]] = OPTIONAL_PATHS,
) -> list[str]:
    """Remove the files of options not chosen, and the folders they leave empty (`deploy/`
    without any deploy files); return the paths that were there and are gone."""
    removed = [
        relative
        for relative in unselected_paths(answers, optional_paths)
        if remove_path(project_dir / relative)
    ]
    for relative in removed:
        for parent in (project_dir / relative).parents:
            if parent == project_dir or not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()
    return removed


def is_cloned_reference(reference: str) -> bool:
    """Tell whether cookiecutter clones or downloads a template reference (not a local path)."""
    return CLONED_TEMPLATE.match(reference) is not None


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


def text_or_none(value: object) -> str | None:
    """Return value when it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def replay_answers(context: Mapping[str, object]) -> dict[str, dict[str, object]]:
    """Turn cookiecutter's context into the content of a replay file.

    Keeps every answer, derived values included (public keys and ``__`` keys other than
    ``__prompts__``), sorted. Private keys stay out: they describe this run (paths, commit) or
    the template's own settings, which the template supplies again on replay. So the file only
    changes when an answer does, whichever tool rendered the project.
    """
    answers = {
        key: value
        for key, value in context.items()
        if key != PROMPTS_KEY and (not key.startswith("_") or key.startswith("__"))
    }
    return {"cookiecutter": dict(sorted(answers.items()))}


def write_answers_file(path: Path, context: Mapping[str, object]) -> None:
    """Write the replay file: sorted, portable, final newline."""
    text = json.dumps(replay_answers(context), indent=2, sort_keys=True, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def locate_template(context: Mapping[str, object]) -> Path | None:
    """Find the template directory cookiecutter rendered, as an absolute path, or None.

    cookiecutter passes it as ``_repo_dir``: a clone or download for a remote template, else the
    path as the user typed it. A relative one is relative to where cookiecutter started, which
    the shell's PWD tells; the hook itself runs in the new project.
    """
    repo_dir = text_or_none(context.get("_repo_dir"))
    if repo_dir is None:
        return None
    path = Path(repo_dir).expanduser()
    if path.is_absolute():
        candidates = [path]
    else:
        bases = [os.environ.get("PWD"), text_or_none(context.get("_output_dir"))]
        candidates = [Path(base) / path for base in bases if base]
    for candidate in candidates:
        if (candidate / "cookiecutter.json").is_file():
            return Path(os.path.abspath(candidate))
    return None


def inspect_checkout(template_dir: Path) -> Checkout | None:
    """Describe the git checkout that tracks template_dir, or None when there is none."""
    git = shutil.which("git")
    if git is None:
        return None
    env = git_environment()
    try:
        tracked = run_git(git, ["ls-files", "--", "cookiecutter.json"], template_dir, env)
        head = run_git(git, ["rev-parse", "--verify", "HEAD"], template_dir, env)
        if tracked.returncode or not tracked.stdout.strip() or head.returncode:
            return None
        prefix = run_git(git, ["rev-parse", "--show-prefix"], template_dir, env).stdout.strip()
        remote = run_git(git, ["remote", "get-url", "origin"], template_dir, env)
        status = run_git(git, ["status", "--porcelain", "--", "."], template_dir, env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    root = template_dir
    for _ in Path(prefix).parts:
        root = root.parent
    return Checkout(
        root=root,
        directory=prefix.rstrip("/") or None,
        commit=head.stdout.strip(),
        remote=(remote.stdout.strip() or None) if remote.returncode == 0 else None,
        dirty=bool(status.stdout.strip()),
    )


def find_origin(context: Mapping[str, object], template_dir: Path | None) -> Origin:
    """Work out what .cruft.json records as the template source, commit and checkout.

    Warns when the result will not serve ``cruft update``: no commit (the template is not a git
    checkout), a local path (out of reach of CI), or uncommitted changes in the template.
    """
    reference = text_or_none(context.get("_template"))
    if "_repo_dir" not in context:
        # cruft renders the template itself and puts its source and commit in the context.
        commit = text_or_none(context.get("_commit"))
        return Origin(reference and without_credentials(reference), commit)
    checkout = text_or_none(context.get("_checkout"))
    cloned = reference is not None and is_cloned_reference(reference)
    found = inspect_checkout(template_dir) if template_dir is not None else None
    if found is None:
        source = str(template_dir) if template_dir is not None and not cloned else reference
        warn(
            f"the template ({source}) is not a git checkout, or git is missing, so {CRUFT_FILE}"
            " records no template commit: `cruft check` and `cruft update` need one. Generate"
            ' from the template\'s git repository, or set "template" and "commit" in'
            f" {CRUFT_FILE} yourself (see {UPDATING_DOC})."
        )
        return Origin(source and without_credentials(source), None, checkout)
    if cloned:
        source = without_credentials(found.remote or str(reference))
    else:
        source = str(found.root)
        share = f" to {without_credentials(found.remote)}" if found.remote else " to its URL"
        warn(
            f"the template is the local directory {source}: `cruft update` can reach it on this"
            f' machine only, and the CI drift check cannot. Set "template" in {CRUFT_FILE}{share}'
            " to share updates."
        )
    if found.dirty:
        warn(
            f"the template checkout has uncommitted changes: the project holds them, but"
            f" {CRUFT_FILE} records commit {found.commit[:12]}, which `cruft update` compares with."
        )
    return Origin(source, found.commit, checkout, found.directory)


def read_template_settings(template_dir: Path | None) -> dict[str, object] | None:
    """Read the template's cookiecutter.json in its own key order, or None when unreadable."""
    if template_dir is None:
        return None
    try:
        settings: dict[str, object] = json.loads(
            (template_dir / "cookiecutter.json").read_text(encoding="utf-8")
        )
    except (OSError, ValueError):
        return None
    return settings


def recorded_context(
    context: Mapping[str, object], settings: Mapping[str, object] | None, origin: Origin
) -> dict[str, object]:
    """The context ``cruft create`` records for these answers.

    That is cookiecutter's prompt order (cookiecutter.json's, dictionary questions last), private
    settings as the template declares them, then ``_template`` and ``_commit``. Rebuilt from the
    template's settings when known, so a replay (answers only, sorted) records the same.
    """
    if settings is None:
        items = {
            key: value
            for key, value in context.items()
            if key not in RUN_KEYS and key not in ORIGIN_KEYS and key != PROMPTS_KEY
        }
    else:
        keys = [key for key in settings if key != PROMPTS_KEY]
        last = [key for key in keys if not key.startswith("_") and isinstance(settings[key], dict)]
        items = {}
        for key in [*(key for key in keys if key not in last), *last]:
            if key.startswith("_") and not key.startswith("__"):
                items[key] = settings[key]
            elif key in context:
                items[key] = context[key]
    return {**items, "_template": origin.template, "_commit": origin.commit}


def cruft_state(
    context: Mapping[str, object], settings: Mapping[str, object] | None, origin: Origin
) -> dict[str, object]:
    """The content of .cruft.json, keys in the order ``cruft create`` writes them."""
    return {
        "template": origin.template,
        "commit": origin.commit,
        "checkout": origin.checkout,
        "context": {"cookiecutter": recorded_context(context, settings, origin)},
        "directory": origin.directory,
    }


def write_cruft_file(path: Path, state: Mapping[str, object]) -> None:
    """Write .cruft.json byte for byte as cruft does (its utils.cruft.json_dumps)."""
    text = json.dumps(state, ensure_ascii=False, indent=2, separators=(",", ": "))
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


def lock_offline(uv: str, project_dir: Path, timeout: float) -> bool:
    """Lock from uv's cache alone: a room with a flaky network still gets its lock when every
    package was downloaded before."""
    try:
        result = subprocess.run(
            [uv, "lock", "--offline", "--quiet"],
            cwd=project_dir,
            timeout=timeout,
            capture_output=True,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and (project_dir / "uv.lock").is_file()


def lock_dependencies(
    project_dir: Path, python_version: str, timeout: float = LOCK_TIMEOUT_SECONDS
) -> str | None:
    """Run ``uv lock`` in project_dir; None when it locked, else why not (and no lock file)."""
    lock_file = project_dir / "uv.lock"
    had_lock = lock_file.exists()
    say("Locking dependencies with uv ...")
    uv = find_uv(project_dir.parent)
    if uv is None:
        return "uv is not on PATH and the project needs it for its lock: install uv, then again"
    if not (project_dir / "pyproject.toml").is_file():
        return "the template rendered no pyproject.toml to lock"
    try:
        # uv prints its own progress and errors on stderr, which reaches the user as is.
        result = subprocess.run([uv, "lock"], cwd=project_dir, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        problem = f"`uv lock` did not finish within {timeout:g} s (is the package index reachable?)"
    except OSError as failure:
        problem = f"`uv lock` could not start ({failure})"
    else:
        if result.returncode != 0 and lock_offline(uv, project_dir, timeout):
            warn("the package index did not answer: locked from uv's cache (uv lock --offline)")
            return None
        if result.returncode == 0 and lock_file.is_file():
            return None
        if result.returncode == 0:
            problem = "`uv lock` wrote no uv.lock here (is the directory inside a uv workspace?)"
        else:
            problem = (
                f"`uv lock` failed with exit status {result.returncode} (uv says why above; if it "
                f"found no Python {python_version}, install it with `uv python install "
                f"{python_version}` or answer another python_version)"
            )
    if not had_lock:
        # Whatever uv left behind is not a lock of these dependencies.
        lock_file.unlink(missing_ok=True)
    return problem


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


def main(context: Mapping[str, object], project_dir: Path) -> int:
    """Finish the project in project_dir; 1 when it cannot be locked (the line says why)."""
    remove_unselected(project_dir, context)
    write_answers_file(project_dir / ANSWERS_FILE, context)
    template_dir = locate_template(context)
    origin = find_origin(context, template_dir)
    state = cruft_state(context, read_template_settings(template_dir), origin)
    write_cruft_file(project_dir / CRUFT_FILE, state)
    problem = lock_dependencies(project_dir, str(context["python_version"]))
    if problem is not None:
        error(f"{problem}; nothing was generated")
        return 1
    if context["init_git"] is True:
        init_git_repository(project_dir, str(context["author_name"]), str(context["author_email"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_context(CONTEXT_JSON), Path.cwd()))
