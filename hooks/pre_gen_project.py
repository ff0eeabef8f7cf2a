"""Pre-generation hook: check every answer; on bad ones print one line each and exit 1.

Cookiecutter renders this file with Jinja before running it. Jinja appears only in ANSWERS_JSON,
where ``tojson`` writes each answer as JSON (quotes, backslashes and non-ASCII escaped) inside a raw
string, which keeps the file valid Python for ruff both before and after rendering. Everything else
is plain Python using only the standard library, because the hook runs under whatever interpreter
runs cookiecutter. Tests render the constant and import the module.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
import unicodedata
from collections.abc import Callable, Mapping

# Jinja writes the answers here as JSON; a raw string keeps its escapes for json.loads.
ANSWERS_JSON = r"""{
    "project_name": {{ cookiecutter.project_name | tojson }},
    "project_slug": {{ cookiecutter.project_slug | tojson }},
    "package_name": {{ cookiecutter.package_name | tojson }},
    "description": {{ cookiecutter.description | tojson }},
    "author_name": {{ cookiecutter.author_name | tojson }},
    "author_email": {{ cookiecutter.author_email | tojson }},
    "version": {{ cookiecutter.version | tojson }},
    "python_version": {{ cookiecutter.python_version | tojson }},
    "ci_provider": {{ cookiecutter.ci_provider | tojson }},
    "license": {{ cookiecutter.license | tojson }},
    "observability": {{ cookiecutter.observability | tojson }},
    "kubernetes": {{ cookiecutter.kubernetes | tojson }},
    "heroku": {{ cookiecutter.heroku | tojson }},
    "init_git": {{ cookiecutter.init_git | tojson }}
}"""

PYTHON_VERSIONS = ("3.12", "3.13", "3.14")
CI_PROVIDERS = ("github", "gitlab", "none")
LICENSES = ("MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary")
# A boolean answer reaches the hook as Python's spelling of it.
BOOLEANS = ("True", "False")

# A DNS label (Kubernetes object names, image and host names accept it), and short enough that
# every generated line holding the slug or package name fits the project's line length.
SLUG_MAX_LENGTH = 40
SLUG_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
PACKAGE_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
EMAIL_PATTERN = re.compile(
    r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"  # local part: dot-separated atoms
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"  # domain labels
    r"[A-Za-z]{2,63}",  # top-level domain
)
# Every version PEP 440 accepts, including the spellings it normalises (1.0-alpha1, v2, 1.0.post).
PEP440_PATTERN = re.compile(
    r"""
    v?
    (?:[0-9]+!)?                                          # epoch
    [0-9]+(?:\.[0-9]+)*                                   # release
    (?:[-_.]?(?:alpha|beta|preview|pre|a|b|c|rc)[-_.]?[0-9]*)?   # pre-release
    (?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?         # post-release
    (?:[-_.]?dev[-_.]?[0-9]*)?                            # development release
    (?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?                   # local version label
    """,
    re.VERBOSE | re.IGNORECASE | re.ASCII,
)

SOFT_KEYWORDS = frozenset({"_", "case", "match", "type"})
# Standard-library modules that a Python the project may run on ships while the one running
# cookiecutter may not (removed in 3.12 and 3.13, added in 3.14 and 3.15), so the rule does not
# depend on which Python runs cookiecutter.
OTHER_PYTHONS_STDLIB_MODULES = frozenset(
    {
        "aifc", "asynchat", "asyncore", "audioop", "cgi", "cgitb", "chunk", "crypt", "distutils",
        "imghdr", "imp", "lib2to3", "mailcap", "msilib", "nis", "nntplib", "ossaudiodev", "pipes",
        "smtpd", "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib",
        "annotationlib", "compression", "profiling",
    }
)  # fmt: skip
# Import names of the generated project's dependencies, tools and conventional folders: a package
# named like one of them shadows it, or is shadowed by it.
RESERVED_IMPORT_NAMES = frozenset(
    {
        # runtime dependencies and what they import
        "fastapi", "starlette", "granian", "uvicorn", "pydantic", "pydantic_core",
        "pydantic_settings",
        "annotated_types", "typing_extensions", "typing_inspection", "sqlalchemy", "greenlet",
        "psycopg", "psycopg_binary", "psycopg_c", "psycopg_pool", "alembic", "mako", "markupsafe",
        "redis", "dramatiq", "prometheus_client", "structlog", "orjson", "httpx", "httpcore", "h11",
        "anyio", "sniffio", "idna", "certifi", "uvloop", "httptools", "click", "dotenv", "yaml",
        "watchfiles", "websockets",
        # development tools
        "pytest", "_pytest", "pluggy", "mypy", "ruff", "coverage", "uv", "pip", "setuptools",
        "wheel", "hatchling",
        # names with a meaning of their own in a project tree
        "test", "tests", "app", "src", "conftest",
    }
)  # fmt: skip

TextCheck = Callable[[str], str | None]
AnswerCheck = Callable[[object], str | None]


def has_control_characters(value: str) -> bool:
    """Tell whether value holds a newline, tab or other control or line-separator character."""
    return any(unicodedata.category(char) in {"Cc", "Zl", "Zp"} for char in value)


def check_project_name(value: str) -> str | None:
    """Return why value is not a usable project name, or None when it is."""
    if not value.strip() or has_control_characters(value):
        return "use a non-empty name on one line"
    if not any(character.isalnum() for character in value):
        return "use a name with at least one letter or digit"
    return None


def check_description(value: str) -> str | None:
    """Return why value is not a usable one-line description, or None when it is."""
    if has_control_characters(value):
        return "use one line of text without control characters"
    return None


def check_author_name(value: str) -> str | None:
    """Return why value is not a usable author name, or None when it is."""
    if not value.strip() or has_control_characters(value):
        return "use a non-empty name on one line"
    if not any(character.isalnum() for character in value):
        return "use a name with at least one letter or digit"
    return None


def check_project_slug(value: str) -> str | None:
    """Return why value is not a usable directory and distribution name, or None when it is."""
    if not SLUG_PATTERN.fullmatch(value):
        return (
            "use lowercase letters, digits and hyphens, starting with a letter"
            " (no trailing or double hyphen)"
        )
    if len(value) > SLUG_MAX_LENGTH:
        return f"use at most {SLUG_MAX_LENGTH} characters (it names containers and deployments)"
    return None


def check_package_name(value: str) -> str | None:
    """Return why value is not a usable import name, or None when it is."""
    if not PACKAGE_PATTERN.fullmatch(value):
        return "use lowercase letters, digits and underscores, starting with a letter"
    if len(value) > SLUG_MAX_LENGTH:
        return f"use at most {SLUG_MAX_LENGTH} characters (it is part of command names)"
    if keyword.iskeyword(value) or value in SOFT_KEYWORDS or keyword.issoftkeyword(value):
        return "it is a Python keyword; choose another valid identifier"
    if value in sys.stdlib_module_names or value in OTHER_PYTHONS_STDLIB_MODULES:
        return "it is a standard-library module; choose a name that shadows nothing"
    if value in RESERVED_IMPORT_NAMES:
        return "it is the import name of a dependency or tool; choose a name that shadows nothing"
    return None


def check_author_email(value: str) -> str | None:
    """Return why value is not shaped like an e-mail address, or None when it is."""
    if not EMAIL_PATTERN.fullmatch(value):
        return "use an address shaped like name@example.com"
    return None


def check_version(value: str) -> str | None:
    """Return why value is not a PEP 440 version, or None when it is."""
    if not PEP440_PATTERN.fullmatch(value):
        return "use a PEP 440 version such as 0.1.0, 1.0.0rc1 or 2024.1.post1"
    return None


def one_of(allowed: tuple[str, ...]) -> TextCheck:
    """Make a check that accepts exactly the given values."""

    def check(value: str) -> str | None:
        if value not in allowed:
            return "use one of " + ", ".join(allowed)
        return None

    return check


def check_yes_no(value: object) -> str | None:
    """Return why value is not a yes/no answer, or None when it is."""
    if not isinstance(value, bool):
        return "use yes or no (true or false in a replay file)"
    return None


def as_rendered(check: TextCheck) -> AnswerCheck:
    """Apply a text check to an answer as Jinja writes it into files (a number as its digits)."""

    def check_answer(value: object) -> str | None:
        return check(value if isinstance(value, str) else str(value))

    return check_answer


CHECKS: dict[str, AnswerCheck] = {
    "project_name": as_rendered(check_project_name),
    "project_slug": as_rendered(check_project_slug),
    "package_name": as_rendered(check_package_name),
    "description": as_rendered(check_description),
    "author_name": as_rendered(check_author_name),
    "author_email": as_rendered(check_author_email),
    "version": as_rendered(check_version),
    "python_version": as_rendered(one_of(PYTHON_VERSIONS)),
    "ci_provider": as_rendered(one_of(CI_PROVIDERS)),
    "license": as_rendered(one_of(LICENSES)),
    "observability": check_yes_no,
    "kubernetes": check_yes_no,
    "heroku": check_yes_no,
    "init_git": check_yes_no,
}


def parse_answers(answers_json: str) -> dict[str, object]:
    """Read the answers Jinja wrote into ANSWERS_JSON."""
    answers: dict[str, object] = json.loads(answers_json)
    return answers


def find_problems(answers: Mapping[str, object]) -> list[str]:
    """Check every answer and return one line per bad one: field, value and what is allowed."""
    problems = []
    for field, check in CHECKS.items():
        value = answers[field]
        reason = check(value)
        if reason is not None:
            problems.append(f"{field}: {value!r} is not allowed: {reason}")
    return problems


def main(answers: Mapping[str, object]) -> int:
    """Report every bad answer on stderr, one line each; return the exit status."""
    problems = find_problems(answers)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(parse_answers(ANSWERS_JSON)))
