"""The whole API, fuzzed from its own OpenAPI schema against a real web process: every integer
and text a client sends has bounds, and whatever it sends with a valid key, the answer is never a
server error."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import BIN_DIR, Service, auth, free_port, module_redis_url, service_env

pytestmark = [pytest.mark.fuzz, pytest.mark.process]
EXAMPLES = 25  # random requests per operation, after the edge values: bounded in time


@dataclass
class Api:
    url: str
    auth: dict[str, str]
    schema: dict[str, Any] = field(repr=False)


@pytest.fixture(scope="module")
def api(database_url: str) -> Iterator[Api]:
    """A production web process with its schema served, limits off so the fuzzing reaches the
    database on every write."""
    port = free_port()
    env = service_env(
        DATABASE_URL=database_url,
        REDIS_URL=module_redis_url(),
        PORT=str(port),
        APP_ENV="production",
        DOCS_ENABLED="true",
        RATE_LIMIT_PER_MINUTE="0",
        AUTH_FAILURES_PER_MINUTE="0",
    )
    web = Service("web", env)
    try:
        url = f"http://127.0.0.1:{port}"
        web.wait_http(f"{url}/healthz")
        yield Api(url, auth(database_url), httpx.get(f"{url}/openapi.json").json())
    finally:
        web.stop()


def _unbounded(node: Any, where: str, components: dict[str, Any]) -> Iterator[str]:
    """Where, in this part of a request, an integer has no range or a free text no length."""
    if "$ref" in node:
        yield from _unbounded(components[node["$ref"].rsplit("/", 1)[-1]], where, components)
        return
    lowest, highest = {"minimum", "exclusiveMinimum"}, {"maximum", "exclusiveMaximum"}
    if node.get("type") == "integer" and not (lowest & node.keys() and highest & node.keys()):
        yield where
    if node.get("type") == "string" and not {"maxLength", "format", "enum", "const"} & node.keys():
        yield where
    for name, child in node.get("properties", {}).items():
        yield from _unbounded(child, f"{where}.{name}", components)
    for child in [*node.get("anyOf", []), *node.get("allOf", []), *node.get("oneOf", [])]:
        yield from _unbounded(child, where, components)
    if "items" in node:
        yield from _unbounded(node["items"], f"{where}[]", components)


def test_every_integer_and_text_a_client_sends_has_its_bounds(api: Api) -> None:
    # A field bounded by its column (core/db/integers.py, core/db/text.py) states it in the schema,
    # and the fuzzing below sends its edge values: random text seldom reaches a String(n)'s n, so a
    # field without its bounds could pass the fuzzing and fail in production.
    components = api.schema["components"]["schemas"]
    unbounded: list[str] = []
    for path, item in api.schema["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                found = _unbounded(parameter["schema"], f"{where} {parameter['name']}", components)
                unbounded.extend(found)
            for content in operation.get("requestBody", {}).get("content", {}).values():
                unbounded.extend(_unbounded(content["schema"], f"{where} body", components))
    assert not unbounded, f"bound them by their columns (docs/extending.md): {unbounded}"


def test_no_request_makes_a_server_error(api: Api, tmp_path: Path) -> None:
    operations = [method for item in api.schema["paths"].values() for method in item]
    assert len(operations) >= 7, "the schema lost operations"
    # Schemathesis' own runner (its pytest plugin predates pytest 9): the coverage phase sends
    # each bound's edges (2**31 - 1 and 2**31, n and n + 1 characters, the largest id), then
    # EXAMPLES random requests per operation, valid and invalid ones. It keeps a replay cache
    # in its working directory, hence tmp_path.
    [header] = [f"{name}: {value}" for name, value in api.auth.items()]
    command = [
        str(BIN_DIR / "schemathesis"), "run", f"{api.url}/openapi.json",
        "--phases", "coverage,fuzzing", "--max-examples", str(EXAMPLES),
        "--checks", "not_a_server_error", "--header", header,
        "--suppress-health-check", "too_slow,filter_too_much",
        "--generation-database", "none", "--no-color",
    ]  # fmt: skip
    run = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert run.returncode == 0, f"{run.stdout[-8000:]}\n{run.stderr[-2000:]}"
