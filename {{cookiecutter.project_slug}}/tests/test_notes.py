"""The example feature: CRUD on PostgreSQL, bad input answered with 4xx, writes rate-limited."""

from __future__ import annotations

from fastapi import FastAPI
from httpx import AsyncClient

from {{ cookiecutter.package_name }}.settings import Settings

NOTES = "/api/v1/notes"


async def test_create_read_update_delete(client: AsyncClient) -> None:
    created = await client.post(NOTES, json={"title": "First", "body": "hello"})
    assert created.status_code == 201
    note = created.json()
    assert (await client.get(f"{NOTES}/{note['id']}")).json()["title"] == "First"

    replaced = await client.put(f"{NOTES}/{note['id']}", json={"title": "Second"})
    assert replaced.json()["title"] == "Second"
    patched = await client.patch(f"{NOTES}/{note['id']}", json={"body": "changed"})
    assert patched.json() | {"updated_at": None} == {
        **note,
        "title": "Second",
        "body": "changed",
        "updated_at": None,
    }

    assert (await client.delete(f"{NOTES}/{note['id']}")).status_code == 204
    assert (await client.get(f"{NOTES}/{note['id']}")).status_code == 404
    assert (await client.delete(f"{NOTES}/{note['id']}")).status_code == 404


async def test_list_pages_newest_first(client: AsyncClient) -> None:
    for number in range(5):
        await client.post(NOTES, json={"title": f"n{number}"})
    page = (await client.get(NOTES, params={"limit": 2, "offset": 1})).json()
    assert [item["title"] for item in page["items"]] == ["n3", "n2"]
    assert (page["limit"], page["offset"]) == (2, 1)


async def test_bad_input_is_422_and_stores_nothing(client: AsyncClient) -> None:
    bad_bodies = [
        {},
        {"title": ""},
        {"title": 42},
        {"title": "x" * 201},
        {"title": "ok", "unknown": 1},
        {"title": "ok", "body": "x" * 10_001},
    ]
    for body in bad_bodies:
        response = await client.post(NOTES, json=body)
        assert response.status_code == 422, body
        assert response.json()["error"] == "invalid request"
    response = await client.post(
        NOTES, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert (await client.get(NOTES)).json()["items"] == []


async def test_bad_ids_and_pages_are_4xx(client: AsyncClient) -> None:
    assert (await client.get(f"{NOTES}/abc")).status_code == 422
    assert (await client.get(f"{NOTES}/0")).status_code == 422
    assert (await client.get(f"{NOTES}/{2**64}")).status_code == 422
    assert (await client.get(f"{NOTES}/999999")).status_code == 404
    assert (await client.get(NOTES, params={"limit": 10_000})).status_code == 422
    assert (await client.get(NOTES, params={"limit": 0})).status_code == 422
    assert (await client.get(NOTES, params={"offset": -1})).status_code == 422


async def test_writes_over_the_limit_get_429_with_retry_after(
    app: FastAPI, client: AsyncClient, settings: Settings
) -> None:
    app.state.settings = settings.model_copy(update={"rate_limit_per_minute": 3})
    try:
        codes = [(await client.post(NOTES, json={"title": "t"})).status_code for _ in range(4)]
        limited = await client.post(NOTES, json={"title": "t"})
    finally:
        app.state.settings = settings
    assert codes == [201, 201, 201, 429]
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert (await client.get(NOTES)).status_code == 200  # reads are not limited
