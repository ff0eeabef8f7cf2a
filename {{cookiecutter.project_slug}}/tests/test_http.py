"""HTTP defaults: request ids, generic error bodies, security headers, host allowlist, limits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from {{ cookiecutter.package_name }}.processes.app import create_app

from support import auth, make_settings


async def test_a_well_formed_request_id_is_kept_and_echoed(client: AsyncClient) -> None:
    response = await client.get("/healthz", headers={"x-request-id": "abc-123-DEF.456"})
    assert response.headers["x-request-id"] == "abc-123-DEF.456"


@pytest.mark.parametrize("given", ["short", "x" * 200, "bad id with spaces", "a\tb-c-d-e-f"])
async def test_a_malformed_request_id_is_replaced(client: AsyncClient, given: str) -> None:
    response = await client.get("/healthz", headers={"x-request-id": given})
    assert response.headers["x-request-id"] != given
    assert len(response.headers["x-request-id"]) == 32


async def test_errors_are_generic_json_with_the_request_id(client: AsyncClient) -> None:
    response = await client.get("/no/such/page", headers={"x-request-id": "req-0000-0001"})
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found", "request_id": "req-0000-0001"}


async def test_api_responses_carry_security_headers(client: AsyncClient) -> None:
    response = await client.get("/api/v1/notes")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "server" not in response.headers


@pytest.fixture
async def strict_client(database_url: str) -> AsyncIterator[AsyncClient]:
    """A production-like app that allows one host and small bodies, with a route that fails."""
    app = create_app(
        make_settings(
            database_url,
            app_env="production",
            allowed_hosts=["api.example.com"],
            max_body_size=1000,
        )
    )

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    async with (
        app.router.lifespan_context(app),
        # As a server would: the app answers the 500, then hands the error on to be logged.
        AsyncClient(
            transport=ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://api.example.com",
        ) as http,
    ):
        yield http


async def test_unhandled_errors_are_500_without_internals(strict_client: AsyncClient) -> None:
    response = await strict_client.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal server error"
    assert body["request_id"] == response.headers["x-request-id"]
    assert "hunter2" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_unknown_hosts_are_refused_but_probes_pass(strict_client: AsyncClient) -> None:
    wrong = {"host": "evil.example.org"}
    assert (await strict_client.get("/api/v1/notes", headers=wrong)).status_code == 400
    assert (
        await strict_client.get("/healthz", headers={"host": "10.1.2.3:8000"})
    ).status_code == 200


async def test_docs_are_off_in_production(strict_client: AsyncClient) -> None:
    assert (await strict_client.get("/docs")).status_code == 404
    assert (await strict_client.get("/openapi.json")).status_code == 404


async def test_docs_can_be_enabled_by_a_variable(database_url: str) -> None:
    app: FastAPI = create_app(make_settings(database_url, docs_enabled=True))
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http:
        assert (await http.get("/openapi.json")).status_code == 200


async def test_large_bodies_are_413_also_when_chunked(
    strict_client: AsyncClient, database_url: str
) -> None:
    big = b'{"title": "' + b"x" * 5000 + b'"}'
    keyed = {"content-type": "application/json", "host": "api.example.com", **auth(database_url)}
    response = await strict_client.post("/api/v1/notes", content=big, headers=keyed)
    assert response.status_code == 413
    # The key is checked first: without one, the body is never read.
    anonymous = await strict_client.post(
        "/api/v1/notes", content=big, headers={"content-type": "application/json"}
    )
    assert anonymous.status_code == 401

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 500

    chunked = await strict_client.post("/api/v1/notes", content=chunks(), headers=keyed)
    assert chunked.status_code == 413
    assert chunked.json()["error"] == "content too large"


async def test_cors_allows_only_listed_origins(database_url: str) -> None:
    app = create_app(make_settings(database_url, cors_origins=["https://app.example.com"]))
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http:
        allowed = await http.get("/healthz", headers={"origin": "https://app.example.com"})
        denied = await http.get("/healthz", headers={"origin": "https://evil.example.org"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-origin" not in denied.headers


async def test_a_browser_page_on_a_listed_origin_can_call_the_api_with_its_key(
    database_url: str,
) -> None:
    origin = "https://app.example.com"
    app = create_app(make_settings(database_url, cors_origins=[origin]))
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        # What a browser sends before a keyed fetch(), then the call itself.
        preflight = await http.options(
            "/api/v1/notes",
            headers={
                "origin": origin,
                "access-control-request-method": "GET",
                "access-control-request-headers": "authorization",
            },
        )
        call = await http.get("/api/v1/notes", headers={"origin": origin, **auth(database_url)})
    assert preflight.status_code == 200
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert preflight.headers["access-control-allow-origin"] == origin
    assert call.status_code == 200
    assert call.headers["access-control-allow-origin"] == origin
    assert "x-request-id" in call.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize("body", [b"not json", b'{"title": 5}'])
async def test_the_key_is_checked_before_the_body_is_read(
    anonymous: AsyncClient, body: bytes
) -> None:
    response = await anonymous.post(
        "/api/v1/notes", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "missing API key"
