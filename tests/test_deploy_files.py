"""Deploy and CI files of baked projects, checked by their own validators and against the contract.

The Dockerfile goes through hadolint, compose and CI files through check-jsonschema's vendored
schemas, the Kubernetes manifests through kubernetes-validate, and every file is read to check
that it agrees with the Procfile, with the other files and with the promises in design.md.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from conftest import DEFAULTS, TEMPLATE_DIR, bake, lint_workflows
from cookiecutter.environment import StrictEnvironment

TOOLS = Path(sys.executable).parent  # hadolint and check-jsonschema come with the test venv
KUBERNETES_VERSION = "1.33"
CONTAINER_TMP = "/tmp"  # noqa: S108  # a mount path inside the pod, not a file of ours
PROCESS_TYPES = ("release", "web", "worker", "clock")
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)
GITHUB_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
PINNED_TAG = re.compile(r"^\S+:v?\d+\.\d+\.\d+(?:[-.][\w.-]+)?$")
# PostgreSQL numbers its releases major.minor (17.6 is a patch release of 17).
PINNED_SERVICE_IMAGE = re.compile(
    r"^\S+:v?\d+\.\d+(?:\.\d+)?(?:-[\w.-]+)?@sha256:[0-9a-f]{64}$"  # tag and digest
)
SHA_PIN = re.compile(r"^\s*-?\s*uses:\s*(?P<action>[^@\s]+)@(?P<ref>\S+)(?P<comment>\s+#\s*\S+)?")
DEVELOPER_COMMANDS = (
    "uv sync --locked",
    "uv run ruff check .",
    "uv run ruff format --check .",
    "uv run mypy",
    "uv run pytest",
)
DEPLOY_FILES = (
    "Dockerfile",
    ".dockerignore",
    "compose.yaml",
    "app.json",
    "renovate.json",
    ".github/workflows/ci.yml",
    ".github/workflows/relock.yml",
    ".github/dependabot.yml",
    ".gitlab-ci.yml",
)
# The oldest Kubernetes the manifests support (the preStop `sleep` action is on by default from
# 1.30) and the newest the validator knows; the rendered overlay must be valid for both.
KUBERNETES_VERSIONS = ("1.30", "1.37")
BACKING_IMAGES = {"postgres", "valkey/valkey", "redis"}
# Where CI may point DATABASE_URL: its own service containers, never a secret or variable.
SERVICE_DATABASE_URL = re.compile(r"^postgres(?:ql)?://postgres@(?:127\.0\.0\.1|postgres):5432/")
ZERO_DIGEST = "sha256:" + "0" * 64
OPERATOR_API = "monitoring.coreos.com/"  # the Prometheus Operator's custom resources


# --- bakes: one per CI option, each with another Python version -------------------------------


@pytest.fixture(scope="module")
def github_project(default_project: Path) -> Path:
    """The default answers: GitHub Actions, Python 3.14."""
    return default_project


@pytest.fixture(scope="module")
def gitlab_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bake(
        tmp_path_factory.mktemp("gitlab"),
        ci_provider="gitlab",
        python_version="3.13",
        init_git="no",
    )


@pytest.fixture(scope="module")
def none_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bake(
        tmp_path_factory.mktemp("noci"), ci_provider="none", python_version="3.12", init_git="no"
    )


@pytest.fixture(scope="module", params=["github", "gitlab", "none"])
def any_project(request: pytest.FixtureRequest) -> Path:
    """Each of the three bakes in turn."""
    project: Path = request.getfixturevalue(f"{request.param}_project")
    return project


# --- helpers -----------------------------------------------------------------------------------


def run_tool(name: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a validator from the test environment; fail the test with its output if it objects."""
    result = subprocess.run(
        [str(TOOLS / name), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def package_name(project: Path) -> str:
    return json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]["package_name"]


def procfile(project: Path) -> dict[str, list[str]]:
    """Process type -> argv, as a platform would start it."""
    commands = {}
    for line in (project / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = shlex.split(command)
    return commands


def env_example_names(project: Path) -> set[str]:
    names = set()
    for line in (project / ".env.example").read_text().splitlines():
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            names.add(line.split("=", 1)[0])
    return names


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, f"{path} ends inside a continued line"
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    return instructions[starts[-1] :]


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction; fails on shell form."""
    argv = json.loads(args)
    assert isinstance(argv, list), f"not exec form: {args}"
    assert all(isinstance(item, str) for item in argv)
    return argv


def env_names(args: str) -> list[str]:
    """Variable names set by one ENV or ARG instruction (key=value pairs, or legacy key value)."""
    if "=" not in args.split(" ", 1)[0]:
        return [args.split(" ", 1)[0]]
    return [token.split("=", 1)[0] for token in shlex.split(args)]


def kubernetes_documents(project: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted((project / "deploy" / "kubernetes").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                yield path, document


def kubernetes_objects(project: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The base's objects by (kind, name)."""
    base = project / "deploy" / "kubernetes" / "base"
    return {
        (document["kind"], document["metadata"]["name"]): document
        for path, document in kubernetes_documents(project)
        if path.parent == base and document["kind"] != "Kustomization"
    }


def pod_templates(project: Path) -> dict[str, dict[str, Any]]:
    """Pod spec of every Deployment and Job, by object name."""
    return {
        name: document["spec"]["template"]["spec"]
        for (kind, name), document in kubernetes_objects(project).items()
        if kind in {"Deployment", "Job"}
    }


def seconds(value: object) -> float:
    return float(str(value).rstrip("s"))


def without_github_expressions(text: str) -> str:
    return GITHUB_EXPRESSION.sub("", text)


def ci_backing_images(project: Path) -> set[str]:
    """The Postgres and Redis service container images of the project's CI file."""
    images: set[str] = set()
    workflows = project / ".github" / "workflows"
    if workflows.is_dir():
        for path in workflows.glob("*.y*ml"):
            for job in load_yaml(path)["jobs"].values():
                images.update(service["image"] for service in job.get("services", {}).values())
    gitlab = project / ".gitlab-ci.yml"
    if gitlab.is_file():
        for job in load_yaml(gitlab).values():
            if isinstance(job, dict):
                for service in job.get("services", []):
                    images.add(service["name"] if isinstance(service, dict) else service)
    return {image for image in images if image.split(":")[0] in BACKING_IMAGES}


def dockerfile_user_id(project: Path) -> int:
    users = [
        args
        for keyword, args in dockerfile_instructions(project / "Dockerfile")
        if keyword == "USER"
    ]
    return int(users[-1].split(":")[0])


# --- Dockerfile ----------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint(any_project: Path) -> None:
    run_tool("hadolint", any_project / "Dockerfile")


def test_every_base_image_is_pinned_to_a_patch_version(any_project: Path) -> None:
    stages: set[str] = set()
    for keyword, args in dockerfile_instructions(any_project / "Dockerfile"):
        if keyword != "FROM":
            continue
        words = [word for word in args.split() if not word.startswith("--")]
        image = words[0]
        if len(words) == 3 and words[1].upper() == "AS":
            stages.add(words[2].lower())
        if image.lower() in stages:
            continue
        assert PINNED_TAG.match(image), f"base image {image} is not pinned to a patch version"
        assert not image.endswith(":latest")


def test_python_base_image_follows_the_chosen_python_version(any_project: Path) -> None:
    version = (any_project / ".python-version").read_text().strip()
    froms = [
        args.split()[0]
        for keyword, args in dockerfile_instructions(any_project / "Dockerfile")
        if keyword == "FROM"
    ]
    pythons = {image for image in froms if image.startswith("python:")}
    assert len(pythons) == 1, f"build and runtime stages use different Python images: {pythons}"
    (image,) = pythons
    assert re.fullmatch(rf"python:{re.escape(version)}\.\d+-slim-bookworm", image), image
    assert froms[-1] == image, "the runtime stage is not the slim Python image"


def test_image_runs_as_a_fixed_non_root_user(any_project: Path) -> None:
    users = [
        args
        for keyword, args in dockerfile_instructions(any_project / "Dockerfile")
        if keyword == "USER"
    ]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "a numeric uid lets Kubernetes verify runAsNonRoot"


def test_runtime_stage_has_no_build_tools(any_project: Path) -> None:
    runtime = final_stage(dockerfile_instructions(any_project / "Dockerfile"))
    for keyword, args in runtime:
        if keyword == "RUN":
            assert not re.search(r"apt-get|apk |pip install|uv (sync|pip)", args), args
        if keyword == "COPY":
            assert "--from=uv" not in args, "uv itself is copied into the runtime image"


def test_cmd_is_the_procfile_web_command_in_exec_form(any_project: Path) -> None:
    instructions = dockerfile_instructions(any_project / "Dockerfile")
    cmds = [args for keyword, args in instructions if keyword == "CMD"]
    assert cmds, "no CMD"
    assert exec_form(cmds[-1]) == procfile(any_project)["web"]
    for keyword, args in instructions:
        if keyword == "ENTRYPOINT":
            exec_form(args)


def test_healthcheck_probes_healthz_without_curl(any_project: Path) -> None:
    checks = [
        args
        for keyword, args in dockerfile_instructions(any_project / "Dockerfile")
        if keyword == "HEALTHCHECK"
    ]
    assert checks, "no HEALTHCHECK"
    command = exec_form(checks[-1].split(" CMD ", 1)[1])
    assert command[0] == "python"
    assert "urllib" in command[-1]
    assert "/healthz" in command[-1]


def test_image_bakes_in_no_secret_and_stamps_the_release(any_project: Path) -> None:
    runtime = final_stage(dockerfile_instructions(any_project / "Dockerfile"))
    names = []
    for keyword, args in dockerfile_instructions(any_project / "Dockerfile"):
        if keyword in {"ENV", "ARG"}:
            names += env_names(args)
    assert not [name for name in names if SECRET_NAME.search(name)]
    runtime_args = {
        name for keyword, args in runtime if keyword == "ARG" for name in env_names(args)
    }
    runtime_env = " ".join(args for keyword, args in runtime if keyword == "ENV")
    assert {"RELEASE_VERSION", "RELEASE_COMMIT"} <= runtime_args
    assert "RELEASE_VERSION=${RELEASE_VERSION}" in runtime_env
    assert "RELEASE_COMMIT=${RELEASE_COMMIT}" in runtime_env
    assert "PYTHONUNBUFFERED=1" in runtime_env
    assert re.search(r'PATH="?/app/\.venv/bin:\$PATH', runtime_env)
    assert ("EXPOSE", "8000") in runtime


def test_dependency_layer_is_built_from_the_lock_alone(github_project: Path) -> None:
    runs = [
        args
        for keyword, args in dockerfile_instructions(github_project / "Dockerfile")
        if keyword == "RUN"
    ]
    deps = next(args for args in runs if "--no-install-project" in args)
    assert "--mount=type=cache" in deps
    assert "source=uv.lock" in deps
    assert "source=pyproject.toml" in deps
    assert "uv sync --locked --no-dev --no-install-project" in deps
    assert any(
        "uv sync --locked --no-dev" in args and "--no-install-project" not in args for args in runs
    )


def test_dockerignore_keeps_secrets_tests_and_local_state_out(any_project: Path) -> None:
    patterns = [
        line.strip()
        for line in (any_project / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def excluded(name: str) -> bool:
        verdict = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            if fnmatch(name, pattern.removeprefix("!").strip("/")):
                verdict = not negated
        return verdict

    for name in (".git", ".env", ".env.production", "tests", ".venv"):
        assert excluded(name), f"{name} reaches the build context"
    for name in ("pyproject.toml", "uv.lock", "src", "README.md"):
        assert not excluded(name), f"{name} is needed to build the image"


# --- compose.yaml -------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec(github_project: Path) -> None:
    run_tool(
        "check-jsonschema",
        "--builtin-schema",
        "vendor.compose-spec",
        github_project / "compose.yaml",
    )


def test_compose_runs_every_process_type_from_one_image(github_project: Path) -> None:
    services = load_yaml(github_project / "compose.yaml")["services"]
    commands = procfile(github_project)
    assert set(commands) == set(PROCESS_TYPES)
    assert {services[name]["image"] for name in PROCESS_TYPES} == {services["web"]["image"]}
    for name in PROCESS_TYPES:
        assert services[name]["build"]["context"] == "."
    for name in ("release", "worker", "clock"):
        assert services[name]["command"] == commands[name]
    assert "command" not in services["web"], "web must run the image's CMD (the Procfile web)"


def test_compose_starts_the_app_after_release_and_healthy_backing_services(
    github_project: Path,
) -> None:
    compose = load_yaml(github_project / "compose.yaml")
    services = compose["services"]
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"]
    assert services["release"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker", "clock"):
        depends = services[name]["depends_on"]
        assert depends["release"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
    volume = services["postgres"]["volumes"][0].split(":")[0]
    assert volume in compose["volumes"], "postgres data is not on a named volume"


def test_compose_configures_the_app_only_through_the_environment(github_project: Path) -> None:
    text = (github_project / "compose.yaml").read_text()
    services = load_yaml(github_project / "compose.yaml")["services"]
    # compose checks every ${VAR:?} of the file before it starts anything, so one would stop
    # `docker compose up -d postgres redis`; the app itself refuses an empty SECRET_KEY.
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert ":?" not in code, "a ${VAR:?} guard makes the backing services need app settings"
    assert "SECRET_KEY: ${SECRET_KEY:-}" in text
    for name in PROCESS_TYPES:
        environment = services[name]["environment"]
        assert re.match(r"postgres(ql)?://[^@]+@postgres:5432/", environment["DATABASE_URL"])
        assert environment["REDIS_URL"].startswith("redis://redis:6379/")
    assert "${PORT:-8000}:8000" in services["web"]["ports"]


def test_compose_backing_services_match_env_example_and_listen_on_loopback_only(
    github_project: Path,
) -> None:
    services = load_yaml(github_project / "compose.yaml")["services"]
    example = dict(
        line.split("=", 1)
        for line in (github_project / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    database = urlsplit(example["DATABASE_URL"])
    postgres = services["postgres"]
    assert postgres["ports"] == ["127.0.0.1:${POSTGRES_PORT:-5432}:5432"]
    assert database.hostname == "127.0.0.1"
    assert database.port == 5432
    assert database.username == postgres["environment"]["POSTGRES_USER"]
    assert database.password == "postgres"  # noqa: S105  # compose's documented default
    default = "${POSTGRES_PASSWORD:-postgres}"  # the same documented default
    assert postgres["environment"]["POSTGRES_PASSWORD"] == default
    assert database.path.lstrip("/") == postgres["environment"]["POSTGRES_DB"]
    redis = urlsplit(example["REDIS_URL"])
    assert services["redis"]["ports"] == ["127.0.0.1:${REDIS_PORT:-6379}:6379"]
    assert (redis.hostname, redis.port) == ("127.0.0.1", 6379)


def test_backing_service_versions_agree_between_compose_and_ci(
    github_project: Path, gitlab_project: Path
) -> None:
    services = load_yaml(github_project / "compose.yaml")["services"]
    compose = {services["postgres"]["image"], services["redis"]["image"]}
    for image in compose:
        assert PINNED_SERVICE_IMAGE.match(image), f"{image} is not pinned to a patch and digest"
    assert ci_backing_images(github_project) == compose
    assert ci_backing_images(gitlab_project) == compose


# --- GitHub Actions ----------------------------------------------------------------------------


def test_github_files_match_their_schemas(github_project: Path) -> None:
    workflows = sorted((github_project / ".github" / "workflows").glob("*.y*ml"))
    assert workflows
    run_tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    run_tool(
        "check-jsonschema",
        "--builtin-schema",
        "custom.github-workflows-require-timeout",
        *workflows,
    )
    dependabot = github_project / ".github" / "dependabot.yml"
    run_tool("check-jsonschema", "--builtin-schema", "vendor.dependabot", dependabot)


def test_every_action_is_pinned_to_a_commit_sha(github_project: Path) -> None:
    uses = []
    for path in (github_project / ".github" / "workflows").glob("*.y*ml"):
        uses += [match for line in path.read_text().splitlines() if (match := SHA_PIN.match(line))]
    assert uses
    for match in uses:
        if match["action"].startswith("./"):
            continue
        assert re.fullmatch(r"[0-9a-f]{40}", match["ref"]), f"{match['action']} is not SHA-pinned"
        assert match["comment"], f"{match['action']} has no version comment"


def test_workflow_permissions_are_least_privilege(github_project: Path) -> None:
    workflow = load_yaml(github_project / ".github" / "workflows" / "ci.yml")
    assert workflow["permissions"] == {"contents": "read"}
    writers = {
        name: job["permissions"]
        for name, job in workflow["jobs"].items()
        if "write" in json.dumps(job.get("permissions", {}))
    }
    # Only the jobs that run no code of the pull request's dependencies can write: publish
    # pushes and signs the archive the read-only image job built; deploy signs in to the cluster.
    assert writers == {
        "publish": {"contents": "read", "packages": "write", "id-token": "write"},
        "deploy": {"contents": "read", "id-token": "write"},
    }
    assert "concurrency" in workflow
    relock = load_yaml(github_project / ".github" / "workflows" / "relock.yml")
    assert relock["permissions"] == {}
    assert relock["jobs"]["lock"]["permissions"] == {"contents": "read"}
    assert not any(
        re.search(r"\buv (lock|sync|run|pip)\b", step.get("run", ""))
        or "setup-uv" in step.get("uses", "")
        for step in relock["jobs"]["commit"]["steps"]
    ), "the job that can push must not run the resolver"


def test_checkout_never_persists_credentials(github_project: Path) -> None:
    checkouts = [
        step
        for path in (github_project / ".github" / "workflows").glob("*.y*ml")
        for job in load_yaml(path)["jobs"].values()
        for step in job["steps"]
        if step.get("uses", "").startswith("actions/checkout@")
    ]
    assert checkouts
    for step in checkouts:
        assert step["with"]["persist-credentials"] is False


def test_github_ci_runs_the_developer_commands(github_project: Path) -> None:
    workflow = load_yaml(github_project / ".github" / "workflows" / "ci.yml")
    runs = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    package = package_name(github_project)
    for command in (
        *DEVELOPER_COMMANDS,
        f"uv run {package}-admin migrate",
        f"uv run {package}-admin check",
        "uv export --frozen --no-dev",
        "uvx pip-audit",
        "gitleaks",
    ):
        assert any(command in run for run in runs), f"CI never runs `{command}`"
    test_job = workflow["jobs"]["test"]
    assert {service["image"].split(":")[0] for service in test_job["services"].values()} == {
        "postgres",
        "valkey/valkey",
    }
    assert set(test_job["env"]) == {"TEST_DATABASE_URL", "TEST_REDIS_URL"}, (
        "the generated suite reads TEST_DATABASE_URL and TEST_REDIS_URL only"
    )


def test_github_builds_one_image_tests_scans_pushes_signs_and_deploys_it(
    github_project: Path,
) -> None:
    workflow = load_yaml(github_project / ".github" / "workflows" / "ci.yml")
    jobs = workflow["jobs"]
    image = jobs["image"]
    builds = [step for step in image["steps"] if "build-push-action" in step.get("uses", "")]
    (build,) = builds
    assert not any(
        "build-push-action" in step.get("uses", "")
        for name, job in jobs.items()
        if name != "image"
        for step in job["steps"]
    ), "the image is built once"
    assert build["with"]["push"] is False
    assert build["with"]["outputs"].startswith("type=oci,dest=")
    assert build["with"]["sbom"] is True
    assert build["with"]["provenance"] == "mode=max"
    runs = "\n".join(step.get("run", "") for step in image["steps"])
    package = package_name(github_project)
    assert f'"$CANDIDATE" {package}-admin migrate' in runs, "the image's release is not run"
    assert "/readyz" in runs, "the image's web is not probed"
    scan = next(step for step in image["steps"] if "trivy-action" in step.get("uses", ""))
    assert scan["with"]["severity"] == "CRITICAL"
    assert scan["with"]["ignore-unfixed"] is True
    assert scan["with"]["exit-code"] == "1"
    assert {service["image"].split(":")[0] for service in image["services"].values()} == {
        "postgres",
        "valkey/valkey",
    }

    publish = jobs["publish"]
    assert "default_branch" in publish["if"]
    assert set(publish["needs"]) >= {"test", "migrations", "audit", "secret-scan", "image"}
    runs = "\n".join(step.get("run", "") for step in publish["steps"])
    assert "--preserve-digests" in runs, "the tested archive must be pushed unchanged"
    assert '[ "$actual" = "$DIGEST" ]' in runs, "the archive is not checked against the tested one"
    assert 'cosign sign --yes "$IMAGE@$DIGEST"' in runs, "the pushed digest is not signed"
    assert any("cosign-installer" in step.get("uses", "") for step in publish["steps"])
    assert publish["env"]["DIGEST"] == "${{ needs.image.outputs.digest }}"

    deploy = jobs["deploy"]
    assert deploy["needs"] == "publish"
    assert deploy["environment"] == "production"
    assert deploy["concurrency"]["cancel-in-progress"] is False
    assert deploy["env"]["IMAGE"] == "${{ needs.publish.outputs.image }}"
    assert publish["outputs"]["image"].endswith("@${{ needs.image.outputs.digest }}")
    step = next(step for step in deploy["steps"] if "deploy.sh" in step.get("run", ""))
    assert step["run"].startswith("deploy/kubernetes/deploy.sh ")
    drift = jobs["template-drift"]
    assert drift["continue-on-error"] is True
    assert "TEMPLATE_DRIFT_CHECK" in drift["if"]
    assert any("cruft" in step.get("run", "") and "check" in step["run"] for step in drift["steps"])


def test_github_expressions_survive_rendering(github_project: Path) -> None:
    text = (github_project / ".github" / "workflows" / "ci.yml").read_text()
    for expected in (
        "group: ${{ github.workflow }}-${{ github.event_name == 'pull_request' && github.ref",
        "version: ${{ env.UV_VERSION }}",
        "password: ${{ secrets.GITHUB_TOKEN }}",
        "RELEASE_COMMIT=${{ github.sha }}",
        "KUBECONFIG: ${{ runner.temp }}/kubeconfig",
    ):
        assert expected in text
    for path in (github_project / ".github" / "workflows").glob("*.y*ml"):
        text = path.read_text()
        assert text.count("${{") == text.count("}}") == len(GITHUB_EXPRESSION.findall(text))


# --- GitLab CI ---------------------------------------------------------------------------------


def test_gitlab_ci_matches_its_schema(gitlab_project: Path) -> None:
    run_tool(
        "check-jsonschema",
        "--builtin-schema",
        "vendor.gitlab-ci",
        gitlab_project / ".gitlab-ci.yml",
    )


def test_gitlab_ci_runs_the_developer_commands_and_releases_the_pushed_image(
    gitlab_project: Path,
) -> None:
    pipeline = load_yaml(gitlab_project / ".gitlab-ci.yml")
    jobs = {name: job for name, job in pipeline.items() if isinstance(job, dict)}
    lines = [
        line
        for job in jobs.values()
        for key in ("before_script", "script")
        for line in job.get(key, [])
    ]
    package = package_name(gitlab_project)
    for command in (
        *DEVELOPER_COMMANDS,
        f"uv run {package}-admin migrate",
        f"uv run {package}-admin check",
        "uv export --frozen --no-dev",
        "uvx pip-audit",
        "gitleaks",
    ):
        assert any(command in line for line in lines), f"CI never runs `{command}`"
    image = "\n".join(jobs["container-image"]["script"])
    assert image.count("docker buildx build") == 1, "the image is built once"
    assert "docker build " not in "\n".join(lines)
    assert "--sbom=true --provenance=mode=max" in image
    assert f'"$CANDIDATE" {package}-admin migrate' in image, "the image's release is not run"
    assert "/readyz" in image, "the image's web is not probed"
    assert "--severity CRITICAL --ignore-unfixed --exit-code 1" in image
    assert "--preserve-digests" in image, "the tested archive must be pushed unchanged"
    assert 'cosign sign --yes "$CI_REGISTRY_IMAGE@$DIGEST"' in image
    assert jobs["container-image"]["id_tokens"]["SIGSTORE_ID_TOKEN"]["aud"] == "sigstore"
    assert 'echo "IMAGE=$CI_REGISTRY_IMAGE@$DIGEST" > image.env' in image
    deploy = jobs["deploy"]
    assert deploy["needs"] == ["container-image"]
    assert deploy["environment"]["name"] == "production"
    assert "KUBE_ID_TOKEN" in deploy["id_tokens"]
    assert any(line.startswith("deploy/kubernetes/deploy.sh ") for line in deploy["script"])
    assert set(jobs["test"]["variables"]) == {"TEST_DATABASE_URL", "TEST_REDIS_URL"}
    drift = jobs["template-drift"]
    assert drift["allow_failure"] is True
    assert "TEMPLATE_DRIFT_CHECK" in json.dumps(drift["rules"])
    for job in jobs.values():
        named = job.get("image")
        if named:
            image_name = named["name"] if isinstance(named, dict) else named
            assert re.search(r":v?\d+\.\d+\.\d+", image_name), f"{image_name} is not pinned"


# --- which CI files each option keeps ------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "kept", "removed"),
    [
        ("github", ".github/workflows/relock.yml", ".gitlab-ci.yml"),
        ("gitlab", ".gitlab-ci.yml", ".github"),
        ("none", None, ".github"),
    ],
)
def test_only_the_chosen_ci_files_are_generated(
    request: pytest.FixtureRequest, option: str, kept: str | None, removed: str
) -> None:
    project: Path = request.getfixturevalue(f"{option}_project")
    if kept:
        assert (project / kept).is_file()
    assert not (project / removed).exists()
    # Renovate runs on GitHub, GitLab and other hosts alike: its configuration is always there.
    assert (project / "renovate.json").is_file()
    if option == "none":
        assert not (project / ".gitlab-ci.yml").exists()


def test_deploy_files_hold_no_leftover_template_syntax(any_project: Path) -> None:
    paths = [any_project / name for name in DEPLOY_FILES if (any_project / name).is_file()]
    paths += sorted((any_project / "deploy").rglob("*"))
    for path in paths:
        if not path.is_file():
            continue
        text = without_github_expressions(path.read_text())
        for marker in ("{{", "}}", "{%", "%}", "{#", "#}", "cookiecutter"):
            assert marker not in text, f"{path.relative_to(any_project)} holds {marker!r}"


# --- Kubernetes ----------------------------------------------------------------------------------


def test_every_kubernetes_manifest_is_valid(github_project: Path) -> None:
    checked = 0
    for path, document in kubernetes_documents(github_project):
        if document["kind"] == "Kustomization" or document["apiVersion"].startswith(OPERATOR_API):
            continue  # the Prometheus Operator's kinds are CRDs: checked below
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.name}: {error.message}")
        checked += 1
    assert checked >= 9


def test_kustomizations_list_every_manifest_and_set_the_image(github_project: Path) -> None:
    root = github_project / "deploy" / "kubernetes"
    base = load_yaml(root / "base" / "kustomization.yaml")
    manifests = {path.name for path in (root / "base").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(base["resources"]) == manifests
    overlay = load_yaml(root / "overlays" / "example" / "kustomization.yaml")
    for entry in [*overlay["resources"], *(patch["path"] for patch in overlay["patches"])]:
        assert (root / "overlays" / "example" / entry).exists(), entry
    placeholders = {
        container["image"]
        for pod in pod_templates(github_project).values()
        for container in pod["containers"]
    }
    assert len(placeholders) == 1, "every process type must run the same image"
    assert [image["name"] for image in overlay["images"]] == list(placeholders)


def test_web_shutdown_fits_in_the_grace_period(github_project: Path) -> None:
    objects = kubernetes_objects(github_project)
    (config,) = [document for (kind, _), document in objects.items() if kind == "ConfigMap"]
    pod = pod_templates(github_project)[
        next(name for name in pod_templates(github_project) if name.endswith("-web"))
    ]
    (container,) = pod["containers"]
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        delay = seconds(pre_stop["sleep"]["seconds"])
    else:
        command = pre_stop["exec"]["command"]
        delay = seconds(command[command.index("sleep") + 1])
    graceful = seconds(config["data"]["GRACEFUL_TIMEOUT"])
    # The pod leaves the Service's endpoints during the preStop sleep, before SIGTERM.
    assert delay > 0
    assert "SHUTDOWN_DELAY" not in config["data"]
    assert pod["terminationGracePeriodSeconds"] > delay + graceful


def test_worker_shutdown_fits_in_the_grace_period(github_project: Path) -> None:
    objects = kubernetes_objects(github_project)
    (config,) = [document for (kind, _), document in objects.items() if kind == "ConfigMap"]
    pods = pod_templates(github_project)
    pod = pods[next(name for name in pods if name.endswith("-worker"))]
    # The worker hands back unfinished jobs and exits well within a second of the timeout.
    timeout = seconds(config["data"]["WORKER_SHUTDOWN_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > timeout + 1


def test_heroku_shutdown_budgets_fit_in_its_30_seconds(github_project: Path) -> None:
    env = json.loads((github_project / "app.json").read_text())["env"]
    web = seconds(env["GRACEFUL_TIMEOUT"]["value"])
    assert web + 1 < 30, "Heroku SIGKILLs a dyno 30 s after SIGTERM"
    assert seconds(env["WORKER_SHUTDOWN_TIMEOUT"]["value"]) + 1 < 30


def test_web_probes_use_the_health_endpoints(github_project: Path) -> None:
    pods = pod_templates(github_project)
    (container,) = pods[next(name for name in pods if name.endswith("-web"))]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    for probe, path in (
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == 8000
    assert "command" not in container, "web must run the image's CMD (the Procfile web)"
    services = [
        document
        for (kind, _), document in kubernetes_objects(github_project).items()
        if kind == "Service"
    ]
    (service,) = services
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    assert ports.get(port["targetPort"], port["targetPort"]) == 8000


def test_pods_run_locked_down_as_the_image_user(github_project: Path) -> None:
    uid = dockerfile_user_id(github_project)
    for name, pod in pod_templates(github_project).items():
        pod_context = pod.get("securityContext", {})
        assert pod_context["seccompProfile"]["type"] == "RuntimeDefault", name
        tmp_volumes = {volume["name"] for volume in pod.get("volumes", []) if "emptyDir" in volume}
        for container in pod["containers"]:
            context = {**pod_context, **container.get("securityContext", {})}
            assert context["runAsNonRoot"] is True, name
            assert context["runAsUser"] == uid, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert mounts.get(CONTAINER_TMP) in tmp_volumes, f"{name} has no writable /tmp"
            assert container["resources"]["requests"], name
            assert container["resources"]["limits"], name


def test_every_process_type_runs_its_procfile_command(github_project: Path) -> None:
    commands = procfile(github_project)
    objects = kubernetes_objects(github_project)
    pods = pod_templates(github_project)
    slug = github_project.name
    for process, name in (
        ("worker", f"{slug}-worker"),
        ("clock", f"{slug}-clock"),
        ("release", f"{slug}-migrate"),
    ):
        (container,) = pods[name]["containers"]
        assert container["command"] == commands[process], process
    assert objects[("Deployment", f"{slug}-worker")]["spec"]["replicas"] == 1
    clock = objects[("Deployment", f"{slug}-clock")]["spec"]
    assert clock["replicas"] == 1
    assert clock["strategy"]["type"] == "Recreate"
    hpa = objects[("HorizontalPodAutoscaler", f"{slug}-web")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{slug}-web"


def test_secrets_are_referenced_never_committed(github_project: Path) -> None:
    slug = github_project.name
    config_maps = {
        name for (kind, name) in kubernetes_objects(github_project) if kind == "ConfigMap"
    }
    for name, pod in pod_templates(github_project).items():
        for container in pod["containers"]:
            refs = {
                item["valueFrom"]["secretKeyRef"]["name"]
                for item in container.get("env", [])
                if "secretKeyRef" in item.get("valueFrom", {})
            }
            keys = {item["name"] for item in container.get("env", [])}
            assert refs == {f"{slug}-secrets"}, name
            assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} <= keys, name
            for source in container["envFrom"]:
                assert source["configMapRef"]["name"] in config_maps, name
    for path in github_project.rglob("*.y*ml"):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(document, dict) and document.get("kind") == "Secret":
                assert not document.get("data"), f"{path} commits a Secret"
                assert not document.get("stringData"), f"{path} commits a Secret"


def test_deploy_files_set_only_known_settings(github_project: Path) -> None:
    known = env_example_names(github_project)
    services = load_yaml(github_project / "compose.yaml")["services"]
    compose = set(services["web"]["environment"])
    objects = kubernetes_objects(github_project)
    (config,) = [document for (kind, _), document in objects.items() if kind == "ConfigMap"]
    kubernetes = set(config["data"]) | {
        item["name"]
        for pod in pod_templates(github_project).values()
        for container in pod["containers"]
        for item in container.get("env", [])
    }
    heroku = set(json.loads((github_project / "app.json").read_text())["env"])
    for where, names in (("compose", compose), ("kubernetes", kubernetes), ("app.json", heroku)):
        assert names <= known, f"{where} sets unknown settings {sorted(names - known)}"
        # production (the default APP_ENV) refuses to start without these
        assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS"} <= names, where


# --- Heroku app.json -----------------------------------------------------------------------------


def test_app_json_provisions_backing_services_and_describes_every_setting(
    github_project: Path,
) -> None:
    app = json.loads((github_project / "app.json").read_text())
    plans = [addon["plan"] if isinstance(addon, dict) else addon for addon in app["addons"]]
    assert any(plan.startswith("heroku-postgresql") for plan in plans)
    assert any(plan.startswith("heroku-redis") for plan in plans)
    env = app["env"]
    assert env["SECRET_KEY"]["generator"] == "secret"
    assert env["ALLOWED_HOSTS"].get("value"), "production refuses to start without ALLOWED_HOSTS"
    for name, spec in env.items():
        assert spec.get("description"), f"{name} is not described"
    missing = env_example_names(github_project) - set(env)
    assert not missing, f"app.json does not describe {sorted(missing)}"
    processes = set(procfile(github_project)) - {"release"}
    assert set(app["formation"]) == processes


@pytest.mark.parametrize("observability", [True, False])
def test_app_json_renders_to_valid_json_for_awkward_answers(observability: bool) -> None:
    template = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / "app.json"
    environment = StrictEnvironment(context={"cookiecutter": DEFAULTS})
    answers = {
        "project_name": 'Quote "Service"',
        "description": 'Says "hi" \\ and {braces}',
        "observability": observability,
    }
    app = json.loads(environment.from_string(template.read_text()).render(cookiecutter=answers))
    assert app["name"] == answers["project_name"]
    assert app["description"] == answers["description"]
    assert ("SENTRY_DSN" in app["env"]) is observability


# --- delivery: no production credentials in CI, images by digest, the cluster's own release ----


def environment_blocks(node: object) -> Iterator[dict[str, Any]]:
    """Every `env:` / `variables:` mapping of a CI file, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"env", "variables"} and isinstance(value, dict):
                yield value
            yield from environment_blocks(value)
    elif isinstance(node, list):
        for item in node:
            yield from environment_blocks(item)


def ci_files(project: Path) -> list[Path]:
    files = sorted((project / ".github" / "workflows").glob("*.y*ml"))
    return [*files, *[project / ".gitlab-ci.yml"][: (project / ".gitlab-ci.yml").is_file()]]


@pytest.mark.parametrize("option", ["github", "gitlab"])
def test_no_ci_job_receives_the_production_database_url(
    request: pytest.FixtureRequest, option: str
) -> None:
    project: Path = request.getfixturevalue(f"{option}_project")
    paths = ci_files(project)
    assert paths
    for path in paths:
        text = path.read_text()
        for block in environment_blocks(load_yaml(path)):
            for name in ("DATABASE_URL", "TEST_DATABASE_URL"):
                if name in block:
                    assert SERVICE_DATABASE_URL.match(str(block[name])), (
                        f"{path.name}: {name} is not the CI's own service container"
                    )
            for name in ("REDIS_URL", "SECRET_KEY"):
                assert "${{" not in str(block.get(name, "")), f"{path.name} hands out {name}"
        # No secret or variable of the repository, and no CI/CD variable, is passed on as one.
        assert not re.search(r"(secrets|vars)\.(DATABASE_URL|REDIS_URL|SECRET_KEY)", text)
        assert not re.search(r"\$\{?(DATABASE_URL|REDIS_URL)\b", text), (
            f"{path.name} reads a DATABASE_URL or REDIS_URL it did not set"
        )
        for passed in re.findall(r"--env\s+(DATABASE_URL\S*)", text):
            assert SERVICE_DATABASE_URL.match(passed.removeprefix("DATABASE_URL=")), passed
        secrets = set(re.findall(r"secrets\.([A-Z_]+)", text))
        assert secrets <= {"GITHUB_TOKEN", "KUBE_TOKEN"}, f"{path.name} uses secrets {secrets}"


def test_workflows_pass_actionlint_and_zizmor_pedantic(github_project: Path) -> None:
    lint_workflows(*sorted((github_project / ".github" / "workflows").glob("*.y*ml")))
    # zizmor also reads the Dependabot file.
    run_tool(
        "zizmor", "--offline", "--persona", "pedantic", "--no-progress", github_project / ".github"
    )


def test_deploy_job_reads_runner_context_only_in_its_steps(github_project: Path) -> None:
    """`runner` is not available in a job's `env`: GitHub would refuse the whole file."""
    for name, job in load_yaml(github_project / ".github" / "workflows" / "ci.yml")["jobs"].items():
        assert "runner." not in json.dumps(job.get("env", {})), name
    deploy = load_yaml(github_project / ".github" / "workflows" / "ci.yml")["jobs"]["deploy"]
    kube_steps = [step for step in deploy["steps"] if "kubectl" in step.get("run", "")
                  or "deploy.sh" in step.get("run", "")]  # fmt: skip
    assert len(kube_steps) == 2
    for step in kube_steps:
        assert step["env"]["KUBECONFIG"] == "${{ runner.temp }}/kubeconfig", step["name"]


def test_bots_configs_match_their_schemas_and_wait_out_a_cooldown(
    github_project: Path, gitlab_project: Path
) -> None:
    for project in (github_project, gitlab_project):
        renovate_file = project / "renovate.json"
        run_tool("check-jsonschema", "--builtin-schema", "vendor.renovate", renovate_file)
    renovate = json.loads((github_project / "renovate.json").read_text())
    assert renovate["pinDigests"] is True
    assert renovate["lockFileMaintenance"]["enabled"] is True
    days = re.fullmatch(r"(\d+) days?", renovate["minimumReleaseAge"])
    assert days, renovate["minimumReleaseAge"]
    assert int(days[1]) >= 7
    assert renovate["kustomize"]["enabled"] is False, "the service's own image is CI's to promote"
    groups = {
        rule["groupName"]: rule
        for rule in renovate["packageRules"]
        if "groupName" in rule and "enabled" not in rule
    }
    backing = next(
        rule for rule in groups.values() if "postgres" in rule.get("matchPackageNames", [])
    )
    assert {"postgres", "valkey/valkey"} <= set(backing["matchPackageNames"]), (
        "compose and CI must get the same backing-service versions in one pull request"
    )
    dependabot = load_yaml(github_project / ".github" / "dependabot.yml")
    ecosystems = set()
    for update in dependabot["updates"]:
        ecosystems.add(update["package-ecosystem"])
        assert update["cooldown"]["default-days"] >= 7, update["package-ecosystem"]
        assert update.get("groups"), f"{update['package-ecosystem']} updates are not grouped"
    assert {"github-actions", "uv", "docker", "docker-compose"} <= ecosystems


@pytest.mark.parametrize("option", ["github", "gitlab"])
def test_every_renovate_custom_manager_finds_its_versions(
    request: pytest.FixtureRequest, option: str
) -> None:
    """A regex that matches nothing updates nothing, silently: each must match a baked file."""
    project: Path = request.getfixturevalue(f"{option}_project")
    renovate = json.loads((project / "renovate.json").read_text())
    files = [path.relative_to(project).as_posix() for path in project.rglob("*") if path.is_file()]
    found_any = False
    for manager in renovate["customManagers"]:
        patterns = [re.compile(pattern.strip("/")) for pattern in manager["managerFilePatterns"]]
        matched = [name for name in files if any(p.search(name) for p in patterns)]
        # JavaScript's named groups are (?<name>...); Python's are (?P<name>...).
        strings = [re.compile(s.replace("(?<", "(?P<")) for s in manager["matchStrings"]]
        hits = [
            match.groupdict()
            for name in matched
            for expression in strings
            for match in expression.finditer((project / name).read_text())
        ]
        if option == "github":
            assert hits, f"{manager['description']} matches nothing"
        found_any = found_any or bool(hits)
        for hit in hits:
            assert re.match(r"v?\d+\.\d+", hit["currentValue"]), hit
    assert found_any


def test_relock_workflow_acts_only_on_dependabot_pull_requests(github_project: Path) -> None:
    relock = load_yaml(github_project / ".github" / "workflows" / "relock.yml")
    trigger = relock.get("on", relock.get(True))
    assert set(trigger) == {"pull_request"}, "pull_request_target would run with write access"
    assert set(trigger["pull_request"]["paths"]) == {"pyproject.toml", "uv.lock"}
    lock = relock["jobs"]["lock"]
    assert "github.event.pull_request.user.login == 'dependabot[bot]'" in lock["if"]
    assert "head.repo.full_name == github.repository" in lock["if"]
    assert any(step.get("run", "").startswith("uv lock") for step in lock["steps"])
    commit = relock["jobs"]["commit"]
    assert commit["needs"] == "lock"
    assert commit["permissions"] == {"contents": "write", "actions": "write"}
    assert "gh workflow run ci.yml" in json.dumps(commit["steps"])
    ci = load_yaml(github_project / ".github" / "workflows" / "ci.yml")
    assert "workflow_dispatch" in ci.get("on", ci.get(True))


def test_every_deployment_container_has_a_liveness_probe(github_project: Path) -> None:
    objects = kubernetes_objects(github_project)
    deployments = {name: obj for (kind, name), obj in objects.items() if kind == "Deployment"}
    assert len(deployments) == 3
    for name, deployment in deployments.items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert "livenessProbe" in container, f"{name}: a hung process is never restarted"
            assert "readinessProbe" in container, name


def test_worker_and_clock_liveness_is_a_fresh_file_in_tmp(github_project: Path) -> None:
    pods = pod_templates(github_project)
    for name in (f"{github_project.name}-worker", f"{github_project.name}-clock"):
        (container,) = pods[name]["containers"]
        env = {item["name"]: item.get("value") for item in container["env"]}
        path = env["LIVENESS_FILE"]
        assert path.startswith(CONTAINER_TMP + "/"), "the root filesystem is read-only"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            command = container[probe]["exec"]["command"]
            assert command[:2] == ["python", "-c"], probe
            assert "os.environ['LIVENESS_FILE']" in command[2]
            assert "st_mtime" in command[2]
            max_age = float(re.search(r"st_mtime > (\d+)", command[2])[1])
            # The process beats at least every 10 s: several beats may be missed, not one.
            assert max_age >= 3 * 10, probe
        liveness = container["livenessProbe"]
        assert liveness["periodSeconds"] * liveness["failureThreshold"] <= 120


def test_the_probe_command_tells_fresh_stale_and_missing_files_apart(
    github_project: Path, tmp_path: Path
) -> None:
    """Run the liveness command itself, as the kubelet would inside the container."""
    pods = pod_templates(github_project)
    (container,) = pods[f"{github_project.name}-worker"]["containers"]
    command = [sys.executable, *container["livenessProbe"]["exec"]["command"][1:]]
    beat = tmp_path / "alive"

    def probe() -> int:
        env = {"LIVENESS_FILE": str(beat)}
        return subprocess.run(command, env=env, check=False, capture_output=True).returncode

    assert probe() != 0, "no file yet must mean not alive"
    beat.touch()
    assert probe() == 0
    old = beat.stat().st_mtime - 120
    os.utime(beat, (old, old))
    assert probe() != 0, "a stale file must mean hung"


def test_every_process_type_is_scraped_on_its_metrics_port_only(github_project: Path) -> None:
    objects = kubernetes_objects(github_project)
    (config,) = [document for (kind, _), document in objects.items() if kind == "ConfigMap"]
    metrics_port = int(config["data"]["METRICS_PORT"])
    assert metrics_port != int(config["data"]["PORT"])
    deployments = {name: obj for (kind, name), obj in objects.items() if kind == "Deployment"}
    assert len(deployments) == 3
    for name, deployment in deployments.items():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/port"] == str(metrics_port), name
        assert annotations["prometheus.io/path"] == "/metrics", name
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert ports["metrics"] == metrics_port, name
    # The Prometheus Operator example scrapes the same port and is not in the default resources.
    root = github_project / "deploy" / "kubernetes"
    monitor = load_yaml(root / "observability" / "podmonitor.yaml")
    assert monitor["apiVersion"].startswith(OPERATOR_API)
    assert monitor["kind"] == "PodMonitor"
    assert [(e["port"], e["path"]) for e in monitor["spec"]["podMetricsEndpoints"]] == [
        ("metrics", "/metrics")
    ]
    base = load_yaml(root / "base" / "kustomization.yaml")
    assert not any("podmonitor" in entry for entry in base["resources"])


def test_hpa_target_sets_no_replicas(github_project: Path) -> None:
    objects = kubernetes_objects(github_project)
    targets = [
        hpa["spec"]["scaleTargetRef"]
        for (kind, _), hpa in objects.items()
        if kind == "HorizontalPodAutoscaler"
    ]
    assert targets
    for target in targets:
        deployment = objects[(target["kind"], target["name"])]
        assert "replicas" not in deployment["spec"], (
            f"{target['name']} sets replicas: every apply would reset the HPA's count"
        )


def test_network_policy_denies_by_default_and_allows_the_needed_flows(github_project: Path) -> None:
    objects = kubernetes_objects(github_project)
    policies = [obj["spec"] for (kind, _), obj in objects.items() if kind == "NetworkPolicy"]
    deny = [
        spec
        for spec in policies
        if spec["podSelector"] == {}
        and set(spec["policyTypes"]) == {"Ingress", "Egress"}
        and not spec.get("ingress")
        and not spec.get("egress")
    ]
    assert deny, "no default-deny NetworkPolicy"

    def selects(spec: dict[str, Any], labels: dict[str, str]) -> bool:
        wanted = spec["podSelector"].get("matchLabels", {})
        expressions = spec["podSelector"].get("matchExpressions", [])
        assert all(item["operator"] == "In" for item in expressions)
        return all(labels.get(key) == value for key, value in wanted.items()) and all(
            labels.get(item["key"]) in item["values"] for item in expressions
        )

    pods = {
        name: obj["spec"]["template"]["metadata"]["labels"]
        for (kind, name), obj in objects.items()
        if kind in {"Deployment", "Job"}
    }
    web_labels = pods[f"{github_project.name}-web"]
    ingress_ports = {
        port["port"]
        for spec in policies
        if selects(spec, web_labels) and spec.get("ingress")
        for rule in spec["ingress"]
        for port in rule["ports"]
    }
    (web,) = pod_templates(github_project)[f"{github_project.name}-web"]["containers"]
    named = {port["name"]: port["containerPort"] for port in web["ports"]}
    assert {named.get(port, port) for port in ingress_ports} == {8000, 9100}
    # /metrics only from the scraper's namespace, never from anywhere.
    for spec in policies:
        for rule in spec.get("ingress", []):
            if any(port["port"] == "metrics" for port in rule["ports"]):
                assert [peer.keys() for peer in rule["from"]] == [{"namespaceSelector"}]
    for name, labels in pods.items():
        allowed = {
            (port["port"], port.get("protocol", "TCP"))
            for spec in policies
            if selects(spec, labels) and "Egress" in spec["policyTypes"]
            for rule in spec.get("egress", [])
            for port in rule.get("ports", [])
        }
        assert {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (6379, "TCP")} <= allowed, name
        assert not any(
            selects(spec, labels) and rule.get("ports") is None
            for spec in policies
            for rule in spec.get("egress", [])
        ), f"{name} may reach any port"


def test_every_pod_runs_as_the_dedicated_service_account_without_a_token(
    github_project: Path,
) -> None:
    objects = kubernetes_objects(github_project)
    accounts = {name for (kind, name), obj in objects.items() if kind == "ServiceAccount"}
    assert accounts == {github_project.name}
    (account,) = [obj for (kind, _), obj in objects.items() if kind == "ServiceAccount"]
    assert account["automountServiceAccountToken"] is False
    for name, pod in pod_templates(github_project).items():
        assert pod["serviceAccountName"] in accounts, name
        assert pod["automountServiceAccountToken"] is False, name


def test_web_spreads_over_zones_and_nodes(github_project: Path) -> None:
    pod = pod_templates(github_project)[f"{github_project.name}-web"]
    web_labels = kubernetes_objects(github_project)[("Deployment", f"{github_project.name}-web")][
        "spec"
    ]["selector"]["matchLabels"]
    keys = set()
    for constraint in pod["topologySpreadConstraints"]:
        keys.add(constraint["topologyKey"])
        assert constraint["labelSelector"]["matchLabels"] == web_labels
        assert "pod-template-hash" in constraint.get("matchLabelKeys", [])
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


def test_migrate_job_is_a_gitops_pre_sync_hook(github_project: Path) -> None:
    job = kubernetes_objects(github_project)[("Job", f"{github_project.name}-migrate")]
    annotations = job["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "PreSync"
    assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    assert annotations["kustomize.toolkit.fluxcd.io/force"] == "enabled"


def rendered_overlay(project: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to render the overlay"
    result = subprocess.run(
        [kubectl, "kustomize", str(project / "deploy" / "kubernetes" / "overlays" / "example")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_overlay_is_valid_and_runs_images_by_digest(
    github_project: Path, version: str
) -> None:
    documents = rendered_overlay(github_project)
    kinds = {document["kind"] for document in documents}
    needed = {"Deployment", "Job", "NetworkPolicy", "ServiceAccount", "HorizontalPodAutoscaler"}
    assert needed <= kinds
    for document in documents:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{document['kind']} {document['metadata']['name']}: {error.message}")
        assert document["metadata"]["namespace"] == github_project.name
        if document["kind"] in {"Deployment", "Job"}:
            for container in document["spec"]["template"]["spec"]["containers"]:
                assert container["image"].endswith("@" + ZERO_DIGEST), container["image"]
    overlay = load_yaml(
        github_project / "deploy" / "kubernetes" / "overlays" / "example" / "kustomization.yaml"
    )
    (image,) = overlay["images"]
    assert image["digest"] == ZERO_DIGEST
    assert "newTag" not in image, "a tag can be moved; deploy by digest"


def test_deploy_script_migrates_before_it_rolls_out(github_project: Path) -> None:
    script = github_project / "deploy" / "kubernetes" / "deploy.sh"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    steps = [
        f'kustomize edit set image "{github_project.name}=$image"',
        'kubectl delete --filename "$rendered" --selector "$release"',
        'kubectl apply --filename "$rendered" --selector "$first"',
        '*" Complete "*) break',
        'kubectl apply --filename "$rendered"\n',
        "kubectl rollout status",
    ]
    positions = [text.index(step) for step in steps]
    assert positions == sorted(positions), "deploy.sh must migrate, then roll out"
    # The first apply holds what the Job needs (identity, network, settings) and the Job.
    kinds_first = {
        document["kind"]
        for document in rendered_overlay(github_project)
        if document["metadata"]["labels"]["app.kubernetes.io/component"]
        in {"access", "config", "release"}
    }
    assert kinds_first == {"ServiceAccount", "NetworkPolicy", "ConfigMap", "Job"}


@pytest.mark.parametrize("image", ["registry.example.com/app:1.2.3", "registry.example.com/app"])
def test_deploy_script_refuses_an_image_by_tag(github_project: Path, image: str) -> None:
    overlay = github_project / "deploy" / "kubernetes" / "overlays" / "example"
    result = subprocess.run(
        ["sh", str(github_project / "deploy" / "kubernetes" / "deploy.sh"), str(overlay), image],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 64
    assert "by digest" in result.stderr


# --- the template repository's own CI ------------------------------------------------------------


def test_template_ci_runs_the_readme_test_command_pinned_and_read_only() -> None:
    workflows = sorted((TEMPLATE_DIR / ".github" / "workflows").glob("*.y*ml"))
    assert workflows, "the template repository has no CI workflow"
    run_tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    timeouts = "custom.github-workflows-require-timeout"
    run_tool("check-jsonschema", "--builtin-schema", timeouts, *workflows)
    lint_workflows(*workflows)
    ci_run = (TEMPLATE_DIR / ".ci" / "run").read_text()
    test_command = ci_run.strip().splitlines()[-1]
    workflow = load_yaml(TEMPLATE_DIR / ".github" / "workflows" / "ci.yml")
    trigger = workflow.get("on", workflow.get(True))
    assert {"push", "pull_request"} <= set(trigger)
    assert workflow["permissions"] == {"contents": "read"}
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    assert any(step.get("run") == test_command for step in steps), test_command
    for step in steps:
        if "uses" in step:
            assert re.fullmatch(r"[^@]+@[0-9a-f]{40}", step["uses"]), step["uses"]
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False
    # The template's own CI has every Python a bake may be generated for.
    [setup_python] = [step for step in steps if "setup-python" in step.get("uses", "")]
    assert setup_python["with"]["python-version"].split() == sorted(DEFAULTS["python_version"])
    for job in workflow["jobs"].values():
        assert "permissions" not in job or "write" not in json.dumps(job["permissions"])
        images = {service["image"] for service in job.get("services", {}).values()}
        assert images <= ci_backing_images_of_template_project(), images


def ci_backing_images_of_template_project() -> set[str]:
    """The backing-service images the generated GitHub workflow uses, read from the template."""
    text = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / ".github" / "workflows" / "ci.yml"
    return set(re.findall(r"image: ((?:postgres|valkey/valkey):\S+)", text.read_text()))
