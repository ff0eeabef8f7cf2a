"""Liveness never touches a backing service; readiness names what is not there."""

from __future__ import annotations

import asyncio

import psycopg
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from {{ cookiecutter.package_name }}.core.db import APPLICATION_NAME
from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.processes.app import create_app

from support import free_port, make_settings, wait_until


async def test_healthz_reports_the_release(client: AsyncClient, settings: Settings) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "version": settings.release_version,
        "commit": settings.release_commit,
    }


async def test_readyz_is_200_when_postgres_and_redis_answer(client: AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["failed"] == []


async def _get(app: FastAPI, path: str) -> tuple[int, dict[str, object]]:
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        response = await http.get(path)
        return response.status_code, response.json()


async def test_readyz_names_redis_when_redis_is_down(database_url: str) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    status, body = await _get(create_app(make_settings(database_url, down)), "/readyz")
    assert status == 503
    assert body["failed"] == ["redis"]


async def test_readyz_names_postgres_when_postgres_is_down() -> None:
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    status, body = await _get(create_app(make_settings(down)), "/readyz")
    assert status == 503
    assert body["failed"] == ["postgres"]


async def test_healthz_answers_while_backing_services_are_down() -> None:
    app = create_app(
        make_settings(
            f"postgresql://postgres@127.0.0.1:{free_port()}/x", f"redis://127.0.0.1:{free_port()}/0"
        )
    )
    status, _ = await _get(app, "/healthz")
    assert status == 200


def _terminate_app_connections(database_url: str) -> int:
    """What a PostgreSQL restart or failover does to the web's pooled connections."""
    query = (
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = %s AND pid <> pg_backend_pid()"
    )
    with psycopg.connect(database_url, autocommit=True) as connection:
        pids = [row[0] for row in connection.execute(query, (APPLICATION_NAME,)).fetchall()]
        for pid in pids:
            connection.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_until(lambda: not connection.execute(query, (APPLICATION_NAME,)).fetchall(), 5)
    return len(pids)


async def test_connections_the_server_closed_are_replaced_not_used(database_url: str) -> None:
    app = create_app(make_settings(database_url))
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        assert (await http.get("/readyz")).status_code == 200  # the pool now holds a connection
        assert _terminate_app_connections(database_url) >= 1
        await asyncio.sleep(0.1)  # an idle moment: the event loop sees the connections close
        responses = [await http.get("/readyz") for _ in range(3)]
    assert [response.status_code for response in responses] == [200, 200, 200]
