"""The example feature: CRUD on PostgreSQL, bad input answered with 4xx, writes rate-limited."""

from __future__ import annotations

import json

from fastapi import FastAPI
from httpx import AsyncClient

from {{ cookiecutter.package_name }}.core.db.pool import Database
from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.features.notes import service
from {{ cookiecutter.package_name }}.features.notes.schemas import NoteIn

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


async def test_list_pages_newest_first_each_naming_the_next(client: AsyncClient) -> None:
    for number in range(5):
        await client.post(NOTES, json={"title": f"n{number}"})
    first = (await client.get(NOTES, params={"limit": 2})).json()
    assert [item["title"] for item in first["items"]] == ["n4", "n3"]
    second = (await client.get(NOTES, params={"limit": 2, "cursor": first["next"]})).json()
    assert [item["title"] for item in second["items"]] == ["n2", "n1"]
    assert second["limit"] == 2
    assert isinstance(second["next"], str)
    assert "offset" not in (await client.get(NOTES)).json()


async def test_the_last_page_names_no_next_page(client: AsyncClient) -> None:
    created = (await client.post(NOTES, json={"title": "only"})).json()
    below = (await client.get(NOTES, params={"limit": 1})).json()["next"]
    page = (await client.get(NOTES, params={"limit": 100, "cursor": below})).json()
    assert created["id"] not in [item["id"] for item in page["items"]]
    assert page["next"] is None or len(page["items"]) == 100


async def test_a_deep_page_reads_no_more_rows_than_the_first(
    client: AsyncClient, db: Database
) -> None:
    await service.create_notes(db, [NoteIn(title=f"d{n}") for n in range(6_000)])
    newest = (await client.get(NOTES, params={"limit": 1})).json()["items"][0]["id"]
    async with db.connection() as connection:
        for after in (None, newest - 5_000):
            statement = service.page_statement(after)
            params = {"limit": 20} if after is None else {"limit": 20, "after": after}
            plan = await connection.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {statement.sql}", *statement.args(params)
            )
            scanned = json.loads(plan)[0]["Plan"]["Plans"][0]
            assert scanned["Node Type"] == "Index Scan", scanned["Node Type"]
            assert scanned["Actual Rows"] == 20, (after, scanned["Actual Rows"])


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
    assert (await client.get(NOTES, params={"cursor": "bm90LWEtY3Vyc29y"})).status_code == 422
    assert (await client.get(NOTES, params={"cursor": "%%%"})).status_code == 422
    assert (await client.get(NOTES, params={"cursor": "x" * 65})).status_code == 422


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
