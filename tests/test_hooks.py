"""Tests of the template's hooks: answer checks, option removal, answers file, lock and git.

The hooks are Jinja templates of Python files. To unit-test them, ``load_hook`` renders a hook
the way cookiecutter does (its Jinja environment, over the whole file, with a context of
answers) and imports the result from a temporary file. The end-to-end tests run the real
``cookiecutter`` command or the shared ``bake`` helper.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import DEFAULTS, TEMPLATE_DIR, bake
from cookiecutter.environment import StrictEnvironment
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from cruft._commands.utils.cookiecutter import generate_cookiecutter_context
from cruft._commands.utils.cruft import json_dumps as cruft_json_dumps
from packaging.version import InvalidVersion, Version

HOOKS_DIR = TEMPLATE_DIR / "hooks"
PROJECT_TEMPLATE = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
QUESTIONS = [key for key in DEFAULTS if not key.startswith("_")]


def derive_answers(**overrides: str) -> dict[str, Any]:
    """Answers as ``cookiecutter --no-input`` computes them: defaults, overrides, derived values."""
    context = generate_context(
        context_file=str(TEMPLATE_DIR / "cookiecutter.json"), extra_context=overrides
    )
    return dict(prompt_for_config(context, no_input=True))


def load_hook(name: str, directory: Path, answers: dict[str, Any]) -> ModuleType:
    """Render hooks/<name>.py with cookiecutter's Jinja environment and import it."""
    context = {"cookiecutter": answers}
    environment = StrictEnvironment(context=context, keep_trailing_newline=True)
    source = (HOOKS_DIR / f"{name}.py").read_text(encoding="utf-8")
    rendered = directory / f"{name}.py"
    rendered.write_text(environment.from_string(source).render(**context), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"rendered_{name}", rendered)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pre_gen(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The pre-generation hook rendered with the default answers."""
    return load_hook("pre_gen_project", tmp_path_factory.mktemp("hook"), derive_answers())


@pytest.fixture(scope="module")
def post_gen(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The post-generation hook rendered with the default answers."""
    return load_hook("post_gen_project", tmp_path_factory.mktemp("hook"), derive_answers())


@pytest.fixture(scope="module")
def cli_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cookiecutter config that keeps replay files and clones out of the user's home."""
    home = tmp_path_factory.mktemp("cookiecutter-home")
    config = home / "config.yaml"
    config.write_text(
        f'cookiecutters_dir: "{home / "cookiecutters"}"\nreplay_dir: "{home / "replay"}"\n',
        encoding="utf-8",
    )
    return config


def run_cookiecutter(
    config: Path, *args: str, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real cookiecutter command line, without a terminal, and capture its output."""
    env = {**os.environ, "PYTHONUTF8": "1"}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--config-file", str(config), *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=600,
        check=False,
    )


def write_replay_file(path: Path, answers: dict[str, Any]) -> Path:
    """Write answers in cookiecutter's replay-file format."""
    path.write_text(json.dumps({"cookiecutter": answers}), encoding="utf-8")
    return path


def tree(root: Path) -> dict[str, bytes]:
    """Map every file under root, except uv.lock and .git/, to its bytes."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and path.relative_to(root).parts[0] != ".git"
        and path.relative_to(root).as_posix() != "uv.lock"
    }


def strings_in(value: object) -> Iterator[str]:
    """Yield every string held anywhere in a parsed JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def git(project: Path, *args: str) -> str:
    """Run git in project and return its standard output, stripped."""
    result = subprocess.run(
        ["git", *args], cwd=project, capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.strip()


def executable(path: Path, script: str) -> Path:
    """Write an executable shell script."""
    path.write_text(script, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# --- pre-generation hook: every rule, as a unit --------------------------------------------

# Import names of the generated project's main dependencies and tools, and reserved folder names.
DEPENDENCY_IMPORT_NAMES = (
    "fastapi", "starlette", "uvicorn", "pydantic", "pydantic_settings", "sqlalchemy", "psycopg",
    "psycopg_pool", "alembic", "redis", "dramatiq", "structlog", "orjson", "httpx", "anyio",
    "pytest", "mypy", "ruff", "uvloop", "httptools", "click", "typing_extensions", "test",
    "tests", "app", "src",
)  # fmt: skip

INVALID_ANSWERS: list[tuple[str, object]] = [
    ("project_name", ""),
    ("project_name", "   "),
    ("project_name", "Two\nlines"),
    ("project_name", "Tab\there"),
    ("project_slug", "3d-printer"),
    ("project_slug", "My-Service"),
    ("project_slug", "my_service"),
    ("project_slug", "my--service"),
    ("project_slug", "my-service-"),
    ("project_slug", "-my-service"),
    ("project_slug", "my.service"),
    ("project_slug", "my service"),
    ("project_slug", "café"),
    ("project_slug", "a/b"),
    ("project_slug", ""),
    ("project_slug", "a" * 41),
    ("package_name", "a" * 41),
    ("package_name", ""),
    ("package_name", "3d"),
    ("package_name", "_private"),
    ("package_name", "MyPackage"),
    ("package_name", "my-package"),
    ("package_name", "my package"),
    ("package_name", "café"),
    ("package_name", "class"),
    ("package_name", "import"),
    ("package_name", "match"),
    ("package_name", "case"),
    ("package_name", "type"),
    ("package_name", "json"),
    ("package_name", "asyncio"),
    ("package_name", "logging"),
    ("package_name", "distutils"),
    ("package_name", "telnetlib"),
    ("package_name", "annotationlib"),  # new in 3.14: the hook may run on an older Python
    ("package_name", "profiling"),  # new in 3.15
    *[("package_name", name) for name in DEPENDENCY_IMPORT_NAMES],
    ("description", "Two\nlines"),
    ("author_name", ""),
    ("author_name", "Ada\nLovelace"),
    ("author_email", "nope"),
    ("author_email", "you@example"),
    ("author_email", "@example.com"),
    ("author_email", "you@@example.com"),
    ("author_email", "you@.example.com"),
    ("author_email", "you@example..com"),
    ("author_email", "you@example.c"),
    ("author_email", "you@-example.com"),
    ("author_email", "you@exa_mple.com"),
    ("author_email", ".you@example.com"),
    ("author_email", "you..me@example.com"),
    ("author_email", "you me@example.com"),
    ("author_email", "you@example.com\n"),
    ("author_email", "you@exämple.com"),
    ("version", ""),
    ("version", "one"),
    ("version", "1.0-foo"),
    ("version", "1..0"),
    ("version", "1.0."),
    ("version", "1.0+"),
    ("version", "v"),
    ("version", " 1.0.0"),  # packaging strips blanks; the answer lands in TOML as written
    ("python_version", "3.11"),  # offered until 3.14 became the default
    ("python_version", "3.15"),  # not offered until its dependencies have wheels (README)
    ("python_version", "3"),
    ("python_version", "3.12 "),
    ("ci_provider", "travis"),
    ("ci_provider", "GitHub"),
    ("ci_provider", ""),
    ("license", "GPL-3.0"),
    ("license", "mit"),
    ("license", ""),
    ("init_git", "yes"),
    ("init_git", "True"),
    ("init_git", 1),
    ("init_git", None),
]

VALID_ANSWERS: list[tuple[str, object]] = [
    ("project_name", "X"),
    ("project_name", "Café Ünïcode API"),
    ("project_name", 'Bob\'s "quoted" \\ Service'),
    ("description", ""),
    ("description", "Serves <b>notes</b> & more; 100% 'typed'."),
    ("author_name", "Zoë O'Brien"),
    ("project_slug", "a"),
    ("project_slug", "api2"),
    ("project_slug", "my-service-2"),
    ("project_slug", "a" * 40),
    ("package_name", "a" * 40),
    ("package_name", "a"),
    ("package_name", "my_package"),
    ("package_name", "my__package_"),
    ("package_name", "class_"),
    ("package_name", "fastapi_app"),
    ("package_name", "service2"),
    ("author_email", "you@example.com"),
    ("author_email", "first.last+tag@mail.example.co.uk"),
    ("author_email", "x_y-z%1@a-b.io"),
    ("author_email", "ops@example.technology"),
    ("version", "0.1.0"),
    ("version", "1.0.0rc1"),
    ("version", "2024.1.post1"),
    ("version", "1!2.0.dev3+local.7"),
    ("python_version", "3.12"),
    ("python_version", "3.13"),
    ("python_version", "3.14"),
    ("ci_provider", "github"),
    ("ci_provider", "gitlab"),
    ("ci_provider", "none"),
    ("license", "MIT"),
    ("license", "Apache-2.0"),
    ("license", "BSD-3-Clause"),
    ("license", "Proprietary"),
    ("init_git", True),
    ("init_git", False),
]

# Versions on both sides of PEP 440, compared with what the packaging library accepts.
VERSION_SAMPLES = [
    "1", "1.0", "0.1.0", "2024.10.1", "01.02", "1!2.0", "1.0a1", "1.0.a.1", "1.0-alpha-1",
    "1.0alpha", "1.0b2", "1.0beta2", "1.0c1", "1.0rc", "1.0RC1", "1.0pre", "1.0preview2",
    "1.0_rc_1", "1.0.post1", "1.0post", "1.0-1", "1.0-post-1", "1.0r", "1.0rev3", "1.0.dev",
    "1.0.dev3", "1.0-dev", "1.0dev1", "1.0a1.post2.dev3", "1.0+abc.7", "1.0+ABC-def_1",
    "1.0a1.post2.dev3+local", "v1.0", "V1.0", "1.0-", "1.0+", "1.0+.a", "1.0.", ".1", "1!",
    "a1.0", "1.0b1b2", "1.0.dev1.dev2", "1.0++a", "1.0-+a", "1.0.post1.post2", "1.0-1-1",
    "1.0a-", "1..0", "1.0 ", "",
]  # fmt: skip


@pytest.mark.parametrize(("field", "value"), INVALID_ANSWERS)
def test_pre_gen_rejects_bad_answer_with_one_line_naming_field_value_and_rule(
    pre_gen: ModuleType, field: str, value: object
) -> None:
    answers = {**derive_answers(), field: value}

    problems = pre_gen.find_problems(answers)

    assert len(problems) == 1
    assert problems[0].startswith(f"{field}: {value!r} is not allowed: ")
    assert len(problems[0].splitlines()) == 1


@pytest.mark.parametrize(("field", "value"), VALID_ANSWERS)
def test_pre_gen_accepts_good_answer(pre_gen: ModuleType, field: str, value: object) -> None:
    assert pre_gen.find_problems({**derive_answers(), field: value}) == []


@pytest.mark.parametrize(
    ("project_name", "slug", "package"),
    [
        ("Twelve Factor Service", "twelve-factor-service", "twelve_factor_service"),
        ("Café Ünïcode API", "cafe-unicode-api", "cafe_unicode_api"),
        ("Bob's Service", "bob-s-service", "bob_s_service"),
    ],
)
def test_project_name_derives_slug_and_package_that_pass(
    pre_gen: ModuleType, project_name: str, slug: str, package: str
) -> None:
    answers = derive_answers(project_name=project_name)

    assert (answers["project_slug"], answers["package_name"]) == (slug, package)
    assert pre_gen.find_problems(answers) == []


def test_pre_gen_reports_every_bad_field_in_question_order(pre_gen: ModuleType) -> None:
    bad = dict.fromkeys(QUESTIONS, "\n")

    problems = pre_gen.find_problems(bad)

    assert [line.split(":")[0] for line in problems] == QUESTIONS


def test_pre_gen_slug_message_says_what_is_allowed(pre_gen: ModuleType) -> None:
    [line] = pre_gen.find_problems({**derive_answers(), "project_slug": "3d-printer"})

    assert line.startswith(
        "project_slug: '3d-printer' is not allowed: use lowercase letters, digits and hyphens,"
        " starting with a letter"
    )


@pytest.mark.parametrize("version", VERSION_SAMPLES)
def test_pre_gen_version_rule_agrees_with_packaging(pre_gen: ModuleType, version: str) -> None:
    try:
        Version(version)
    except InvalidVersion:
        valid = False
    else:
        valid = version == version.strip()

    assert (pre_gen.check_version(version) is None) == valid


def test_pre_gen_main_prints_problems_to_stderr_and_fails(
    pre_gen: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    status = pre_gen.main({**derive_answers(), "version": "one", "license": "GPL"})

    captured = capsys.readouterr()
    assert status == 1
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "version: 'one' is not allowed: use a PEP 440 version such as 0.1.0, 1.0.0rc1 or"
        " 2024.1.post1",
        "license: 'GPL' is not allowed: use one of MIT, Apache-2.0, BSD-3-Clause, Proprietary",
    ]


def test_pre_gen_main_is_silent_and_succeeds_on_good_answers(
    pre_gen: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pre_gen.main(derive_answers()) == 0
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(
    "name",
    ['Bob\'s "quoted" Service', "back\\slash\\", 'three """ quotes', "Café Ünïcode <API> & co"],
)
def test_rendered_hooks_hold_answers_exactly(tmp_path: Path, name: str) -> None:
    answers = derive_answers(project_name=name, author_name=name, init_git="no")

    pre = load_hook("pre_gen_project", tmp_path, answers)
    post = load_hook("post_gen_project", tmp_path, answers)

    read = pre.parse_answers(pre.ANSWERS_JSON)
    assert read["project_name"] == name
    assert read["init_git"] is False
    context = post.parse_context(post.CONTEXT_JSON)
    assert context == answers
    assert list(context) == list(answers)


# --- post-generation hook: units -----------------------------------------------------------


def test_options_table_names_relative_paths_of_known_choices(post_gen: ModuleType) -> None:
    for (question, value), paths in post_gen.OPTIONAL_PATHS.items():
        default = DEFAULTS[question]
        assert value in default if isinstance(default, list) else value is True
        for path in paths:
            assert not Path(path).is_absolute()
            assert ".." not in Path(path).parts


@pytest.mark.parametrize(
    ("ci_provider", "kept"),
    [
        ("github", {".github"}),
        ("gitlab", {".gitlab-ci.yml"}),
        ("none", set()),
    ],
)
def test_remove_unselected_keeps_only_the_chosen_ci_files(
    post_gen: ModuleType, tmp_path: Path, ci_provider: str, kept: set[str]
) -> None:
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    (tmp_path / ".github" / "dependabot.yml").write_text("version: 2\n")
    (tmp_path / ".gitlab-ci.yml").write_text("stages: [test]\n")
    answers = {**derive_answers(), "ci_provider": ci_provider}

    post_gen.remove_unselected(tmp_path, answers)

    assert {path.name for path in tmp_path.iterdir()} == kept


@pytest.mark.parametrize(
    ("kubernetes", "heroku", "kept"),
    [
        (True, True, {"deploy/kubernetes", "app.json"}),
        (False, True, {"app.json"}),
        (True, False, {"deploy/kubernetes"}),
        (False, False, set()),
    ],
)
def test_remove_unselected_keeps_only_the_chosen_deploy_files(
    post_gen: ModuleType, tmp_path: Path, kubernetes: bool, heroku: bool, kept: set[str]
) -> None:
    (tmp_path / "deploy" / "kubernetes" / "base").mkdir(parents=True)
    (tmp_path / "deploy" / "kubernetes" / "base" / "kustomization.yaml").write_text("{}\n")
    (tmp_path / "deploy" / "observability").mkdir()
    (tmp_path / "app.json").write_text("{}\n")
    answers = {**derive_answers(), "kubernetes": kubernetes, "heroku": heroku}

    post_gen.remove_unselected(tmp_path, answers)

    candidates = {"deploy/kubernetes", "app.json"}
    assert {path for path in candidates if (tmp_path / path).exists()} == kept
    assert (tmp_path / "deploy" / "observability").is_dir(), "only the named paths go"


def test_remove_unselected_leaves_no_empty_folder(post_gen: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "deploy" / "kubernetes" / "base").mkdir(parents=True)
    (tmp_path / "deploy" / "observability").mkdir()
    (tmp_path / "deploy" / "observability" / "prometheus.yml").write_text("{}\n")
    (tmp_path / "docs").mkdir()
    answers = {**derive_answers(), "kubernetes": False, "observability": False}

    post_gen.remove_unselected(tmp_path, answers)

    assert not (tmp_path / "deploy").exists()
    assert (tmp_path / "docs").is_dir(), "a folder that was empty before stays"


def test_remove_unselected_tolerates_missing_paths(post_gen: ModuleType, tmp_path: Path) -> None:
    answers = {**derive_answers(), "ci_provider": "none"}

    assert post_gen.remove_unselected(tmp_path, answers) == []


def test_replay_answers_keep_every_answer_and_no_private_key(post_gen: ModuleType) -> None:
    context = {
        "project_name": "Svc",
        "init_git": False,
        "__derived": "svc-x",
        "__prompts__": {"project_name": "Name?"},
        "_extensions": ["local_extensions.Thing"],
        "_copy_without_render": ["*.png"],
        "_template": "gh:acme/twelve-factor",
        "_commit": "0123abc",
        "_output_dir": "/home/me/code",
        "_repo_dir": "/home/me/.cookiecutters/twelve-factor",
        "_checkout": "v1",
    }

    answers = post_gen.replay_answers(context)

    assert answers == {
        "cookiecutter": {"__derived": "svc-x", "init_git": False, "project_name": "Svc"}
    }
    assert list(answers["cookiecutter"]) == sorted(answers["cookiecutter"])


@pytest.mark.parametrize(
    ("reference", "cloned"),
    [
        ("gh:acme/twelve-factor", True),
        ("git@github.com:acme/twelve-factor.git", True),
        ("https://github.com/acme/twelve-factor", True),
        ("ssh://git@git.example.com/acme/t.git", True),
        ("git+https://git.example.com/t.git", True),
        ("file:///home/me/twelve-factor", True),
        ("https://github.com/acme/t/archive/refs/tags/v1.zip", True),
        ("/home/me/twelve-factor", False),
        ("../twelve-factor", False),
        (".", False),
        ("twelve-factor.zip", False),
        ("C:\\templates\\twelve-factor", False),
    ],
)
def test_cloned_references_are_told_from_local_paths(
    post_gen: ModuleType, reference: str, cloned: bool
) -> None:
    assert post_gen.is_cloned_reference(reference) is cloned


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://github.com/acme/twelve-factor", "https://github.com/acme/twelve-factor"),
        ("git@github.com:acme/twelve-factor.git", "git@github.com:acme/twelve-factor.git"),
        ("https://user:s3cret@git.example.com/t.git", "https://git.example.com/t.git"),
        ("https://TOKEN@git.example.com/t.git", "https://git.example.com/t.git"),
        ("ssh://git@git.example.com/acme/t.git", "ssh://git@git.example.com/acme/t.git"),
        ("ssh://git:pw@git.example.com/acme/t.git", "ssh://git.example.com/acme/t.git"),
        ("/home/me/twelve-factor", "/home/me/twelve-factor"),
    ],
)
def test_template_urls_lose_credentials_but_keep_ssh_account(
    post_gen: ModuleType, url: str, kept: str
) -> None:
    assert post_gen.without_credentials(url) == kept


def template_checkout(root: Path, subdirectory: str = "") -> tuple[Path, str]:
    """Make a git repository holding a minimal template in subdirectory; return it and HEAD."""
    template = root / subdirectory
    template.mkdir(parents=True)
    (template / "cookiecutter.json").write_text('{"project_name": "Svc"}\n', encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-q", "-m", "A")
    return template, git(root, "rev-parse", "HEAD")


def cookiecutter_run_keys(
    template: str, repo_dir: str, checkout: str | None = None
) -> dict[str, str | None]:
    """The private keys cookiecutter adds to the context of one run."""
    return {
        "_template": template,
        "_output_dir": "/elsewhere/out",
        "_repo_dir": repo_dir,
        "_checkout": checkout,
    }


def test_origin_under_cruft_is_the_source_and_commit_cruft_passes(
    post_gen: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    context = {"_template": "https://TOKEN@git.example.com/t.git", "_commit": "0123abc"}

    origin = post_gen.find_origin(context, None)

    assert origin == post_gen.Origin("https://git.example.com/t.git", "0123abc", None, None)
    assert capsys.readouterr().err == ""


def test_origin_of_a_local_checkout_is_its_path_and_head_with_a_warning(
    post_gen: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template, head = template_checkout(tmp_path / "tpl")
    context = cookiecutter_run_keys(str(template), str(template))

    origin = post_gen.find_origin(context, post_gen.locate_template(context))

    assert origin == post_gen.Origin(str(template), head, None, None)
    err = capsys.readouterr().err
    assert f"WARNING: the template is the local directory {template}: " in err
    assert "uncommitted" not in err


def test_origin_of_a_template_in_a_subdirectory_names_repository_and_directory(
    post_gen: ModuleType, tmp_path: Path
) -> None:
    template, head = template_checkout(tmp_path / "repo", "templates/service")
    context = cookiecutter_run_keys(str(template), str(template))

    origin = post_gen.find_origin(context, post_gen.locate_template(context))

    assert origin == post_gen.Origin(str(tmp_path / "repo"), head, None, "templates/service")


def test_origin_of_a_dirty_checkout_warns_that_the_commit_lacks_the_changes(
    post_gen: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template, head = template_checkout(tmp_path / "tpl")
    (template / "hooks.py").write_text("# work in progress\n", encoding="utf-8")
    context = cookiecutter_run_keys(str(template), str(template))

    origin = post_gen.find_origin(context, post_gen.locate_template(context))

    assert origin.commit == head
    err = capsys.readouterr().err
    assert "WARNING: the template checkout has uncommitted changes" in err
    assert f".cruft.json records commit {head[:12]}," in err


def test_origin_of_a_clone_is_its_remote_without_credentials(
    post_gen: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template, head = template_checkout(tmp_path / "tpl")
    clone = tmp_path / "cookiecutters" / "twelve-factor"
    git(tmp_path, "clone", "-q", str(template), str(clone))
    git(clone, "remote", "set-url", "origin", "https://me:TOKEN@git.example.com/acme/t.git")
    context = cookiecutter_run_keys("gh:acme/t", str(clone), checkout="v1")

    origin = post_gen.find_origin(context, post_gen.locate_template(context))

    assert origin == post_gen.Origin("https://git.example.com/acme/t.git", head, "v1", None)
    assert capsys.readouterr().err == ""


def test_origin_without_git_checkout_records_no_commit_and_says_why(
    post_gen: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tmp_path / "unpacked"
    template.mkdir()
    (template / "cookiecutter.json").write_text("{}\n", encoding="utf-8")
    context = cookiecutter_run_keys(str(template), str(template))

    origin = post_gen.find_origin(context, post_gen.locate_template(context))

    assert origin == post_gen.Origin(str(template), None, None, None)
    err = capsys.readouterr().err
    assert f"WARNING: the template ({template}) is not a git checkout" in err
    assert "records no template commit" in err
    assert "docs/updating.md" in err


@pytest.mark.parametrize(
    ("pwd", "output_dir", "found"),
    [("work", "elsewhere", True), ("elsewhere", "work", True), ("elsewhere", "elsewhere", False)],
)
def test_relative_template_path_is_found_from_where_cookiecutter_started(
    *,
    post_gen: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pwd: str,
    output_dir: str,
    found: bool,
) -> None:
    template, _ = template_checkout(tmp_path / "work" / "tpl")
    monkeypatch.setenv("PWD", str(tmp_path / pwd))
    context = {"_repo_dir": "tpl", "_output_dir": str(tmp_path / output_dir)}

    assert post_gen.locate_template(context) == (template if found else None)


# A template with every kind of key cookiecutter orders: plain, derived, choice, dictionary,
# private and double-underscore.
ORDERING_TEMPLATE = {
    "project_name": "Svc",
    "project_slug": "{{ cookiecutter.project_name | slugify }}",
    "options": {"a": "{{ cookiecutter.project_slug }}", "b": [2, 3]},
    "init_git": True,
    "license": ["MIT", "Proprietary"],
    "_copy_without_render": ["*.png"],
    "__derived": "{{ cookiecutter.project_slug }}-x",
    "__prompts__": {"project_name": "Name?"},
}


def test_recorded_context_is_what_cruft_records_however_cookiecutter_ran(
    post_gen: ModuleType, tmp_path: Path
) -> None:
    (tmp_path / "{{cookiecutter.project_slug}}").mkdir()
    context_file = tmp_path / "cookiecutter.json"
    context_file.write_text(json.dumps(ORDERING_TEMPLATE), encoding="utf-8")
    overrides = {"project_name": "My Svc", "license": "Proprietary"}
    cruft_context = generate_cookiecutter_context(
        "https://git.example.com/t.git",
        "0123abc",
        tmp_path,
        default_config=True,
        extra_context=overrides,
        no_input=True,
    )["cookiecutter"]
    cookiecutter_context = generate_context(context_file=str(context_file), extra_context=overrides)
    prompted = dict(prompt_for_config(cookiecutter_context, no_input=True))
    run_keys = cookiecutter_run_keys("gh:acme/t", str(tmp_path))
    replayed = post_gen.replay_answers(prompted)["cookiecutter"]
    origin = post_gen.Origin("https://git.example.com/t.git", "0123abc")
    settings = post_gen.read_template_settings(tmp_path)

    for context, known in [
        ({**prompted, **run_keys}, settings),  # cookiecutter from the template's answers
        ({**replayed, **run_keys}, settings),  # cookiecutter --replay-file .cookiecutter.json
        (cruft_context, None),  # cruft create, update and diff
    ]:
        recorded = post_gen.recorded_context(context, known, origin)
        assert recorded == cruft_context
        assert list(recorded) == list(cruft_context)


def test_cruft_file_is_written_as_cruft_writes_it(post_gen: ModuleType, tmp_path: Path) -> None:
    state = {
        "template": "https://git.example.com/café.git",
        "commit": "0123abc",
        "checkout": None,
        "context": {"cookiecutter": {"project_name": "Café <API>", "list": ["a", "b"]}},
        "directory": None,
    }

    post_gen.write_cruft_file(tmp_path / ".cruft.json", state)

    assert (tmp_path / ".cruft.json").read_text(encoding="utf-8") == cruft_json_dumps(state)


def test_lock_says_why_when_uv_is_missing(
    post_gen: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')

    problem = post_gen.lock_dependencies(tmp_path, "3.12")

    assert "Locking dependencies with uv ..." in capsys.readouterr().err
    assert problem is not None
    assert "uv is not on PATH" in problem
    assert not (tmp_path / "uv.lock").exists()


@pytest.mark.parametrize(
    ("script", "timeout", "reported"),
    [
        ("echo half > uv.lock\necho 'no index reachable' >&2\nexit 2\n", 60, "exit status 2"),
        ("echo half > uv.lock\nexec sleep 30\n", 0.5, "did not finish within 0.5 s"),
    ],
)
def test_lock_failure_says_why_and_removes_half_written_lock(
    *,
    post_gen: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    script: str,
    timeout: float,
    reported: str,
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable(bin_dir / "uv", "#!/bin/sh\n" + script)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')

    problem = post_gen.lock_dependencies(project, "3.12", timeout=timeout)

    assert problem is not None
    assert reported in problem
    assert "Locking dependencies with uv ..." in capsys.readouterr().err
    assert not (project / "uv.lock").exists()


def without_git_identity(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Make git see no user name or e-mail anywhere."""
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("EMAIL", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name, raising=False)


def test_git_commit_uses_answers_when_user_has_no_identity(
    post_gen: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_git_identity(monkeypatch, tmp_path / "home")
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("# Svc\n")

    assert post_gen.init_git_repository(project, "Zoë O'Brien", "zoe@example.com") is True

    assert git(project, "log", "-1", "--format=%an <%ae>|%s") == (
        "Zoë O'Brien <zoe@example.com>|Initial commit from the twelve-factor template"
    )
    # The identity was lent to the commit only, not written into the repository's config.
    assert (
        subprocess.run(
            ["git", "config", "user.email"], cwd=project, capture_output=True, check=False
        ).stdout.strip()
        == b""
    )


def test_git_missing_gives_warning_not_failure(
    post_gen: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))

    assert post_gen.init_git_repository(tmp_path, "A", "a@example.com") is False

    assert "WARNING: git is not on PATH" in capsys.readouterr().err
    assert not (tmp_path / ".git").exists()


# --- the real cookiecutter command: bad answers leave nothing behind -----------------------

# Valid answers for the fields a case does not break, so each run reports exactly one line.
CLI_BAD_ANSWERS: list[tuple[dict[str, str], str, str]] = [
    ({"project_name": " ", "project_slug": "svc", "package_name": "svc"}, "project_name", " "),
    ({"project_slug": "3d-printer", "package_name": "printer"}, "project_slug", "3d-printer"),
    ({"project_slug": "Bob's Service", "package_name": "bob"}, "project_slug", "Bob's Service"),
    ({"project_name": "Bob's Service", "package_name": "json"}, "package_name", "json"),
    ({"project_name": "Café Ünïcode API", "version": "1.0-foo"}, "version", "1.0-foo"),
    ({"description": "two\nlines"}, "description", "two\nlines"),
    ({"author_name": ""}, "author_name", ""),
    ({"author_email": "you@localhost"}, "author_email", "you@localhost"),
]
# cookiecutter itself refuses a bad choice or yes/no on its command line, before any hook
# runs; a replay file reaches the hook unchecked, so these are tried through one.
REPLAY_BAD_ANSWERS: list[tuple[str, object]] = [
    ("python_version", "3.10"),
    ("ci_provider", "travis"),
    ("license", "GPL-3.0"),
    ("init_git", "maybe"),
]


@pytest.mark.parametrize(("answers", "field", "value"), CLI_BAD_ANSWERS)
def test_cli_bad_answer_exits_1_with_one_line_and_leaves_no_directory(
    cli_config: Path, tmp_path: Path, answers: dict[str, str], field: str, value: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    pairs = [f"{key}={item}" for key, item in answers.items()]

    result = run_cookiecutter(cli_config, "--no-input", str(TEMPLATE_DIR), *pairs, "-o", str(out))

    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if " is not allowed: " in line]
    assert len(lines) == 1
    assert lines[0].startswith(f"{field}: {value!r} is not allowed: ")
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(("field", "value"), REPLAY_BAD_ANSWERS)
def test_replayed_bad_choice_exits_1_with_one_line_and_leaves_no_directory(
    cli_config: Path, tmp_path: Path, field: str, value: object
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    replay = write_replay_file(tmp_path / "answers.json", {**derive_answers(), field: value})

    result = run_cookiecutter(
        cli_config, "--replay-file", str(replay), str(TEMPLATE_DIR), "-o", str(out)
    )

    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if " is not allowed: " in line]
    assert lines == [line for line in lines if line.startswith(f"{field}: {value!r} ")]
    assert len(lines) == 1
    assert list(out.iterdir()) == []


def test_cli_reports_all_bad_answers_at_once(cli_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    bad = {
        "project_name": "\t",
        "project_slug": "Bad Slug",
        "package_name": "class",
        "description": "a\nb",
        "author_name": " ",
        "author_email": "nobody",
        "version": "latest",
        "python_version": "2.7",
        "ci_provider": "jenkins",
        "license": "WTFPL",
        "observability": "on",
        "kubernetes": "maybe",
        "heroku": 1,
        "init_git": "sure",
    }
    replay = write_replay_file(tmp_path / "answers.json", bad)

    result = run_cookiecutter(
        cli_config, "--replay-file", str(replay), str(TEMPLATE_DIR), "-o", str(out)
    )

    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if " is not allowed: " in line]
    assert [line.split(":")[0] for line in lines] == QUESTIONS
    assert list(out.iterdir()) == []


def test_no_input_choice_outside_its_list_fails_as_the_readme_says(
    cli_config: Path, tmp_path: Path
) -> None:
    # cookiecutter refuses it before our hooks run; the README quotes its last line.
    out = tmp_path / "out"
    out.mkdir()

    result = run_cookiecutter(
        cli_config, "--no-input", str(TEMPLATE_DIR), "ci_provider=jenkins", "-o", str(out)
    )

    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last in (TEMPLATE_DIR / "README.md").read_text().replace("\n", " ")
    assert list(out.iterdir()) == []


# --- post-generation hook on real bakes ----------------------------------------------------

VARIANTS: dict[str, dict[str, str]] = {
    "gitlab-apache": {"ci_provider": "gitlab", "license": "Apache-2.0", "init_git": "no"},
    "none-bsd": {"ci_provider": "none", "license": "BSD-3-Clause", "init_git": "no"},
    "github-proprietary-git": {
        "ci_provider": "github",
        "license": "Proprietary",
        "init_git": "yes",
        "author_name": "ACME Inc.",
        "python_version": "3.12",
    },
}


@pytest.fixture(scope="module")
def baked(
    tmp_path_factory: pytest.TempPathFactory, default_project: Path
) -> Callable[[str], tuple[Path, dict[str, Any]]]:
    """Bake a named variant once per module; "default" is the shared default project."""
    projects: dict[str, tuple[Path, dict[str, Any]]] = {
        "default": (default_project, derive_answers(init_git="no"))
    }

    def get(name: str) -> tuple[Path, dict[str, Any]]:
        if name not in projects:
            answers = VARIANTS[name]
            projects[name] = (
                bake(tmp_path_factory.mktemp(name), **answers),
                derive_answers(**answers),
            )
        return projects[name]

    return get


@pytest.mark.parametrize("variant", ["default", *VARIANTS])
def test_bake_keeps_only_the_selected_options_files(
    post_gen: ModuleType, baked: Callable[[str], tuple[Path, dict[str, Any]]], variant: str
) -> None:
    project, answers = baked(variant)

    for (question, needed), paths in post_gen.OPTIONAL_PATHS.items():
        for path in paths:
            in_template = (PROJECT_TEMPLATE / path).exists()
            assert (project / path).exists() == (in_template and answers[question] == needed)


@pytest.mark.parametrize("variant", ["default", *VARIANTS])
def test_bake_writes_the_chosen_license(
    baked: Callable[[str], tuple[Path, dict[str, Any]]], variant: str
) -> None:
    project, answers = baked(variant)
    year = datetime.now(UTC).year
    author = answers["author_name"]

    text = (project / "LICENSE").read_text(encoding="utf-8")

    expected = {
        "MIT": ["MIT License\n\n", f"Copyright (c) {year} {author}\n", "AS IS"],
        "Apache-2.0": ["Apache License", "Version 2.0, January 2004", f"Copyright {year} {author}"],
        "BSD-3-Clause": ["BSD 3-Clause License\n\n", f"Copyright (c) {year}, {author}\n"],
        "Proprietary": [f"Copyright (c) {year} ACME Inc. All rights reserved.\n"],
    }[answers["license"]]
    assert all(part in text for part in expected)
    assert text.endswith(".\n")
    assert not text.endswith("\n\n")
    assert "{" not in text


def test_answers_file_holds_every_answer_and_no_machine_path(default_project: Path) -> None:
    text = (default_project / ".cookiecutter.json").read_text(encoding="utf-8")
    data = json.loads(text)
    expected = derive_answers(init_git="no")

    assert list(data) == ["cookiecutter"]
    assert {key: data["cookiecutter"][key] for key in QUESTIONS} == {
        key: expected[key] for key in QUESTIONS
    }
    assert [key for key in data["cookiecutter"] if key.startswith("_")] == []
    assert not [item for item in strings_in(data) if Path(item).is_absolute()]
    assert str(TEMPLATE_DIR) not in text
    assert text == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def template_head() -> str | None:
    """The commit of the template checkout under test, or None when it is not one."""
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "HEAD"],
        cwd=TEMPLATE_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def test_cruft_file_records_template_commit_and_the_same_answers(default_project: Path) -> None:
    text = (default_project / ".cruft.json").read_text(encoding="utf-8")
    state = json.loads(text)
    recorded = state["context"]["cookiecutter"]
    answers = json.loads((default_project / ".cookiecutter.json").read_text(encoding="utf-8"))

    assert text == cruft_json_dumps(state)
    assert list(state) == ["template", "commit", "checkout", "context", "directory"]
    assert list(state["context"]) == ["cookiecutter"]
    assert (state["template"], state["commit"]) == (str(TEMPLATE_DIR), template_head())
    assert (state["checkout"], state["directory"]) == (None, None)
    assert [key for key in recorded if key.startswith("_")] == ["_template", "_commit"]
    assert (recorded["_template"], recorded["_commit"]) == (state["template"], state["commit"])
    assert list(recorded)[:-2] == QUESTIONS
    assert {key: recorded[key] for key in QUESTIONS} == answers["cookiecutter"]


def test_replaying_the_answers_file_reproduces_the_project(
    cli_config: Path, default_project: Path, tmp_path: Path
) -> None:
    result = run_cookiecutter(
        cli_config,
        "--replay-file",
        str(default_project / ".cookiecutter.json"),
        str(TEMPLATE_DIR),
        "-o",
        str(tmp_path),
    )

    assert result.returncode == 0, result.stderr
    replayed = tmp_path / default_project.name
    assert tree(replayed) == tree(default_project)


def test_bake_locks_dependencies(default_project: Path) -> None:
    lock = default_project / "uv.lock"

    assert lock.is_file()
    assert "[[package]]" in lock.read_text(encoding="utf-8")


def test_init_git_makes_one_clean_commit_on_main(
    baked: Callable[[str], tuple[Path, dict[str, Any]]],
) -> None:
    project, _ = baked("github-proprietary-git")

    assert git(project, "rev-list", "--count", "HEAD") == "1"
    assert git(project, "symbolic-ref", "--short", "HEAD") == "main"
    assert git(project, "log", "-1", "--format=%s") == (
        "Initial commit from the twelve-factor template"
    )
    assert git(project, "status", "--porcelain") == ""
    assert {"uv.lock", ".cruft.json", ".cookiecutter.json"} <= set(
        git(project, "ls-files").splitlines()
    )


def test_bake_without_git_succeeds_with_a_warning(
    post_gen: ModuleType, cli_config: Path, tmp_path: Path
) -> None:
    # uv and the Python it locks for stay reachable, git does not.
    only_uv = tmp_path / "only-uv"
    only_uv.mkdir()
    uv = post_gen.find_uv(TEMPLATE_DIR)
    assert uv is not None
    (only_uv / "uv").symlink_to(uv)
    found = subprocess.run(
        [uv, "python", "find", DEFAULTS["python_version"][0]],
        capture_output=True,
        text=True,
        check=True,
    )
    python_dir = Path(found.stdout.strip()).parent
    out = tmp_path / "out"

    result = run_cookiecutter(
        cli_config,
        "--no-input",
        str(TEMPLATE_DIR),
        "init_git=yes",
        "-o",
        str(out),
        path=f"{only_uv}{os.pathsep}{python_dir}",
    )

    assert result.returncode == 0, result.stderr
    [project] = out.iterdir()
    assert "WARNING: git is not on PATH" in result.stderr
    assert (project / "uv.lock").is_file()
    assert not (project / ".git").exists()
    assert (project / ".cookiecutter.json").is_file()
    assert "so .cruft.json records no template commit" in result.stderr
    assert json.loads((project / ".cruft.json").read_text(encoding="utf-8"))["commit"] is None


@pytest.mark.parametrize(
    ("uv_script", "expected"),
    [
        (None, "uv is not on PATH"),
        (
            "#!/bin/sh\necho 'error: No interpreter found for Python >=3.14' >&2\nexit 2\n",
            f"install it with `uv python install {DEFAULTS['python_version'][0]}`",
        ),
    ],
)
def test_bake_that_cannot_lock_fails_with_one_line_and_leaves_nothing(
    cli_config: Path, tmp_path: Path, uv_script: str | None, expected: str
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if uv_script is not None:
        executable(bin_dir / "uv", uv_script)
    out = tmp_path / "out"
    out.mkdir()

    result = run_cookiecutter(
        cli_config,
        "--no-input",
        str(TEMPLATE_DIR),
        "init_git=no",
        "-o",
        str(out),
        path=f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
    )

    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if "nothing was generated" in line]
    assert len(ours) == 1, result.stderr
    assert ours[0].startswith("error: ")
    assert expected in ours[0]
    assert list(out.iterdir()) == []
