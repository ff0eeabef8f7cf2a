"""The whole API, fuzzed from its own OpenAPI schema against a real web process: whatever a
client sends with a valid key, the answer is never a server error."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from support import Service, auth, free_port, module_redis_url, service_env

pytestmark = [pytest.mark.fuzz, pytest.mark.process]
EXAMPLES = 25  # per operation: enough to reach every validation path, bounded in time


@dataclass
class Api:
    url: str
    auth: dict[str, str]


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
        web.wait_http(f"http://127.0.0.1:{port}/healthz")
        yield Api(f"http://127.0.0.1:{port}", auth(database_url))
    finally:
        web.stop()


def test_no_request_makes_a_server_error(api: Api) -> None:
    # Hypothesis drives schemathesis' strategies directly: its pytest plugin predates pytest 9.
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 7, "the schema lost operations"
    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(case=operation.as_strategy())
        def no_server_error(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            case.call_and_validate(headers=api.auth, checks=[not_a_server_error])

        no_server_error()
