"""Generation tests: pairwise bakes render clean files; chosen bakes pass their own toolchain."""

from __future__ import annotations

import itertools
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from conftest import DEFAULTS, TEMPLATE_DIR, admin_connection, bake, lint_workflows, redis_url
from test_deploy_files import KUBERNETES_VERSIONS, env_example_names, rendered_overlay, run_tool

OPTIONS = {
    "python_version": ["3.14", "3.13", "3.12"],
    "ci_provider": ["github", "gitlab", "none"],
    "license": ["MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary"],
    "init_git": ["yes", "no"],
    "kubernetes": ["yes", "no"],
    "heroku": ["yes", "no"],
    "observability": ["yes", "no"],
}
# Every pair of option values appears in at least one row (checked below); names vary too.
ROWS = [
    ("3.12", "github", "MIT", "yes", "yes", "yes", "yes"),
    ("3.12", "gitlab", "Apache-2.0", "no", "yes", "no", "no"),
    ("3.14", "github", "BSD-3-Clause", "no", "yes", "no", "yes"),
    ("3.14", "gitlab", "Proprietary", "yes", "no", "yes", "yes"),
    ("3.13", "none", "MIT", "no", "no", "yes", "no"),
    ("3.12", "none", "BSD-3-Clause", "yes", "no", "no", "no"),
    ("3.13", "github", "Apache-2.0", "yes", "no", "yes", "yes"),
    ("3.12", "github", "Proprietary", "no", "yes", "yes", "no"),
    ("3.14", "none", "Apache-2.0", "yes", "yes", "yes", "yes"),
    ("3.13", "gitlab", "BSD-3-Clause", "yes", "yes", "yes", "no"),
    ("3.14", "gitlab", "MIT", "yes", "yes", "no", "no"),
    ("3.13", "none", "Proprietary", "yes", "no", "no", "yes"),
]
# What a bake without a part must not mention (the recorded answers aside): a reader of the
# project would look for a file, a command or a CI setting that is not there.
PRUNED_MENTIONS = {
    "kubernetes": re.compile(
        r"kubernetes|kubectl|kustomiz|kubelet|deploy\.sh|KUBE_|\bpods?\b", re.I
    ),
    "heroku": re.compile(r"heroku|app\.json|\bdynos?\b", re.I),
    "observability": re.compile(
        r"opentelemetry|\botel|prometheus|sentry|METRICS_PORT|observability|jaeger|grafana"
        r"|podmonitor|trac(e|es|ing)\b|\bspans?\b|trace_id",
        re.I,
    ),
}
ANSWER_FILES = {".cookiecutter.json", ".cruft.json"}
# The one section that names the answers, to say how to change one (and so what it adds).
ANSWERS_SECTION = ("docs/updating.md", "## Changing an answer later")
DEFAULT_PYTHON = OPTIONS["python_version"][0]
MATRIX: list[dict[str, str]] = [dict(zip(OPTIONS, row, strict=True)) for row in ROWS]
NAMES = [
    "Twelve Factor Service",
    "Café Ünïcode API",
    "Bob's Service",
    'Quote "Heavy" \\ Name',
    "billing",
    "A Forty Character Long Service Name Here",
]
# Full toolchain runs (uv sync, ruff, mypy, pytest) of the Pythons other bakes do not cover,
# with the awkward names among them. The default Python runs its full toolchain in the
# extending-recipe bake and its suite in the day-one and update bakes (README: which bake proves
# what), so no run here repeats it.
FULL_RUNS = {
    "py312-unicode-gitlab": {
        "project_name": "Café Ünïcode API",
        "python_version": "3.12",
        "ci_provider": "gitlab",
        "license": "Proprietary",
    },
    "py313-long-name-no-ci-no-observability": {
        "project_name": "A Forty Character Long Service Name Here",
        "python_version": "3.13",
        "ci_provider": "none",
        "observability": "no",
        "kubernetes": "no",
        "heroku": "no",
        "description": 'Says "hi" \\ with <tags> & quotes',
    },
}
# Jinja openers in any spacing, and any reference to the template's variables.
LEFTOVER = re.compile(r"\{\s*\{|\{\s*%|\{\s*#|(?<![\w.])cookiecutter\s*(?:\.(?!json\b)|\[)")
GITHUB_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
RAW_BLOCK = re.compile(r"\{%-?\s*raw\s*-?%\}(.*?)\{%-?\s*endraw\s*-?%\}", re.DOTALL)
SKIP_DIRS = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"}


def project_files(project: Path) -> list[Path]:
    """Every file of a bake, less version control, environments, caches and the lock."""
    return [
        path
        for path in sorted(project.rglob("*"))
        if path.is_file()
        and not SKIP_DIRS.intersection(path.relative_to(project).parts)
        and path.name != "uv.lock"
    ]


def answers_of(project: Path) -> dict[str, Any]:
    """The answers a bake recorded in its replay file."""
    answers: dict[str, Any] = json.loads((project / ".cookiecutter.json").read_text())[
        "cookiecutter"
    ]
    return answers


def expected_github_expressions() -> list[str]:
    """The ${{ }} expressions the workflow templates write through raw blocks."""
    found: list[str] = []
    for source in sorted((TEMPLATE_DIR / "{{cookiecutter.project_slug}}/.github").rglob("*.yml")):
        for block in RAW_BLOCK.findall(source.read_text()):
            found.extend(GITHUB_EXPRESSION.findall(block))
    return sorted(found)


def test_matrix_covers_every_pair_of_option_values() -> None:
    wanted = {
        ((a, x), (b, y))
        for a, b in itertools.combinations(OPTIONS, 2)
        for x in OPTIONS[a]
        for y in OPTIONS[b]
    }
    covered = {
        ((a, row[a]), (b, row[b])) for row in MATRIX for a, b in itertools.combinations(OPTIONS, 2)
    }
    assert wanted - covered == set()


@pytest.fixture(scope="module", params=range(len(ROWS)), ids=lambda i: "-".join(ROWS[i]))
def matrix_bake(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    answers: dict[str, Any] = {**MATRIX[request.param], "project_name": NAMES[request.param % 6]}
    return bake(tmp_path_factory.mktemp("matrix"), **answers)


def test_no_template_syntax_is_left_anywhere(matrix_bake: Path) -> None:
    leftovers = []
    for path in project_files(matrix_bake):
        text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), start=1):
            if LEFTOVER.search(GITHUB_EXPRESSION.sub("", line)):
                leftovers.append(f"{path.relative_to(matrix_bake)}:{number}: {line.strip()}")
    for name in (path.name for path in matrix_bake.rglob("*")):
        if LEFTOVER.search(name):
            leftovers.append(f"file name {name}")
    assert leftovers == []


def test_github_expressions_are_exactly_the_raw_blocks(matrix_bake: Path) -> None:
    workflows = matrix_bake / ".github"
    answers = answers_of(matrix_bake)
    if not workflows.exists():
        assert answers["ci_provider"] != "github"
        return
    rendered = sorted(
        expression
        for path in workflows.rglob("*.yml")
        for expression in GITHUB_EXPRESSION.findall(path.read_text())
    )
    expected = expected_github_expressions()
    if answers["kubernetes"]:
        assert rendered == expected
    else:  # the deploy job's expressions go with it, and no other is added
        assert set(rendered) <= set(expected)
        assert [expression for expression in rendered if "KUBE" in expression] == []
    assert rendered, "the workflow uses no expressions at all?"


def test_nothing_refers_to_a_pruned_part(matrix_bake: Path) -> None:
    answers = answers_of(matrix_bake)
    empty = [
        path
        for path in matrix_bake.rglob("*")
        if path.is_dir() and not any(path.iterdir()) and ".git" not in path.parts
    ]
    assert empty == [], "pruning left empty folders"
    found = []
    for question, mention in PRUNED_MENTIONS.items():
        if answers[question]:
            continue
        for path in project_files(matrix_bake):
            if path.name in ANSWER_FILES:
                continue
            relative = path.relative_to(matrix_bake).as_posix()
            in_section = False
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.startswith("## "):
                    in_section = (relative, line) == ANSWERS_SECTION
                if mention.search(line) and not in_section:
                    found.append(f"{question}: {path.relative_to(matrix_bake)}:{number}: {line}")
    assert found == []


def test_every_bake_passes_ruff(matrix_bake: Path) -> None:
    # The template's ruff, with the bake's own configuration; mypy runs in the full runs below.
    for command in (
        ["ruff", "check", "--no-cache", "."],
        ["ruff", "format", "--check", "--no-cache", "."],
    ):
        result = subprocess.run(
            [str(Path(sys.executable).parent / command[0]), *command[1:]],
            cwd=matrix_bake,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_github_workflows_pass_actionlint_and_zizmor_pedantic(matrix_bake: Path) -> None:
    workflows = sorted((matrix_bake / ".github" / "workflows").glob("*.y*ml"))
    if answers_of(matrix_bake)["ci_provider"] != "github":
        assert workflows == []
        return
    assert len(workflows) == 2
    lint_workflows(*workflows)


def test_every_offered_python_runs_its_full_toolchain_in_some_bake() -> None:
    assert OPTIONS["python_version"] == DEFAULTS["python_version"]
    # The default's full run is the extending-recipe bake's (tests/test_extending.py).
    covered = [run.get("python_version", DEFAULT_PYTHON) for run in FULL_RUNS.values()]
    assert sorted([DEFAULT_PYTHON, *covered]) == sorted(OPTIONS["python_version"])


def test_every_toml_yaml_and_json_file_parses(matrix_bake: Path) -> None:
    parsed = 0
    for path in project_files(matrix_bake):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix in {".yml", ".yaml"}:
            list(yaml.safe_load_all(text))
        elif path.suffix == ".json":
            json.loads(text)
        else:
            continue
        parsed += 1
    assert parsed >= 6  # pyproject, compose, pre-commit, renovate and both answer files at least


def test_python_version_answer_reaches_every_place_it_matters(matrix_bake: Path) -> None:
    version = answers_of(matrix_bake)["python_version"]
    assert (matrix_bake / ".python-version").read_text().strip() == version
    pyproject = tomllib.loads((matrix_bake / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == f">={version}"
    assert pyproject["tool"]["mypy"]["python_version"] == version
    assert f"python:{version}." in (matrix_bake / "Dockerfile").read_text()


def test_pre_commit_runs_the_checks_ci_runs(default_project: Path) -> None:
    config = yaml.safe_load((default_project / ".pre-commit-config.yaml").read_text())
    entries = " ; ".join(hook["entry"] for repo in config["repos"] for hook in repo["hooks"])
    for command in ("ruff check", "ruff format", "mypy", "uv lock --locked"):
        assert command in entries, command
    assert all(repo["repo"] == "local" for repo in config["repos"]), "only the locked tools"


# --- full toolchain on chosen bakes -------------------------------------------------------


def _run(command: list[str], project: Path, env: dict[str, str], timeout: int = 600) -> str:
    result = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} failed in {project.name} ({result.returncode}):\n"
        f"{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    )
    return result.stdout


def _databases_like(prefix: str) -> list[str]:
    with admin_connection() as connection:
        rows = connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)
        ).fetchall()
    return [row[0] for row in rows]


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("label", list(FULL_RUNS))
def test_baked_project_passes_its_own_toolchain(
    label: str, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    answers = {"init_git": "no", **FULL_RUNS[label]}
    project = bake(tmp_path, **answers)
    package = answers_of(project)["package_name"]
    # The bake's suite creates its own databases on the tests' server. Its three workers take
    # Redis databases 2 to 7; the heavy tests run one at a time (conftest.HEAVY_TESTS), so the
    # bakes can share them. DATABASE_URL and REDIS_URL, which its tests must ignore, name
    # servers that do not exist.
    env = {
        **clean_env,
        "UV_PYTHON_DOWNLOADS": "never",
        "TEST_REDIS_URL": redis_url(2),
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/not_for_tests",
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    _run(["uv", "sync", "--locked"], project, env)
    version = _run(
        ["uv", "run", "--no-sync", "python", "-c", "import sys; print(sys.version[:4])"],
        project,
        env,
    )
    assert version.strip() == (answers.get("python_version") or DEFAULT_PYTHON)
    _run(["uv", "run", "--no-sync", "ruff", "check", "."], project, env)
    _run(["uv", "run", "--no-sync", "ruff", "format", "--check", "."], project, env)
    _run(["uv", "run", "--no-sync", "mypy"], project, env)
    output = _run(
        ["uv", "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider"], project, env
    )
    assert re.search(r"\d+ passed", output), output[-2000:]
    assert " skipped" not in output, output[-2000:]
    assert _databases_like(f"test_{package}_") == [], "the project's tests left databases behind"


def test_kubernetes_manifests_render_valid_with_or_without_metrics(matrix_bake: Path) -> None:
    answers = answers_of(matrix_bake)
    if not answers["kubernetes"]:
        assert not (matrix_bake / "deploy" / "kubernetes").exists()
        return
    documents = rendered_overlay(matrix_bake)
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSIONS[-1], strict=True)
    ports = {
        port["name"]
        for document in documents
        if document["kind"] == "Deployment"
        for container in document["spec"]["template"]["spec"]["containers"]
        for port in container.get("ports", [])
    }
    policies = {
        document["metadata"]["name"]
        for document in documents
        if document["kind"] == "NetworkPolicy"
    }
    metrics_policy = f"{matrix_bake.name}-metrics-ingress"
    if answers["observability"]:
        assert "metrics" in ports
        assert metrics_policy in policies
    else:
        assert ports == {"http"}
        assert metrics_policy not in policies


def test_compose_ci_and_settings_agree_in_every_variant(matrix_bake: Path) -> None:
    run_tool(
        "check-jsonschema", "--builtin-schema", "vendor.compose-spec", matrix_bake / "compose.yaml"
    )
    gitlab = matrix_bake / ".gitlab-ci.yml"
    if gitlab.is_file():
        run_tool("check-jsonschema", "--builtin-schema", "vendor.gitlab-ci", gitlab)
    # Every variable the example names is a setting of this variant, and the reverse.
    settings = (
        matrix_bake / "src" / answers_of(matrix_bake)["package_name"] / "core" / "settings.py"
    )
    body = settings.read_text().split("class Settings(", 1)[1].split("    @field_validator", 1)[0]
    fields = {name.upper() for name in re.findall(r"^    ([a-z_]+): ", body, re.M)}
    assert env_example_names(matrix_bake) == fields
    app = matrix_bake / "app.json"
    if app.is_file():
        assert env_example_names(matrix_bake) <= set(json.loads(app.read_text())["env"])


def test_the_readme_workshop_line_is_a_bake_that_runs_its_full_suite() -> None:
    readme = (TEMPLATE_DIR / "README.md").read_text()
    line = readme.split("The lightest service today", 1)[1].split("```sh\n", 1)[1].split("\n")[0]
    answers = dict(pair.split("=", 1) for pair in shlex.split(line) if "=" in pair)
    assert answers.pop("project_name") == "Workshop"
    full_run = FULL_RUNS["py313-long-name-no-ci-no-observability"]
    assert answers == {key: full_run[key] for key in answers}
    assert set(answers) == set(full_run) - {"project_name", "python_version", "description"}
