"""The floor: a bare FastAPI app with an asyncpg pool, the generated list and read queries, orjson.

What a hand-written service reaching PostgreSQL the fastest plain way would do, with nothing
else: no middleware, no logging, no settings. Run with the generated project's interpreter,
PORT and DATABASE_URL (a postgresql:// URL) in the environment; the pool has the generated
web's default size (DB_POOL_MAX_SIZE, 15).
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import orjson
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import Response

POOL_SIZE = 15
PAGE = "SELECT id, title, body, created_at, updated_at FROM notes ORDER BY id DESC LIMIT $1"
ONE = "SELECT id, title, body, created_at, updated_at FROM notes WHERE id = $1"
pool: asyncpg.Pool


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """Open the pool at start-up, close it at shutdown."""
    global pool  # noqa: PLW0603  # one pool per process
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=0, max_size=POOL_SIZE)
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}


@app.get("/api/v1/notes")
async def list_notes(limit: int = 20) -> Response:
    """The newest notes."""
    rows = await pool.fetch(PAGE, limit)
    body = orjson.dumps({"items": [dict(row) for row in rows]})
    return Response(body, media_type="application/json")


@app.get("/api/v1/notes/{note_id}")
async def read_note(note_id: int) -> Response:
    """One note."""
    row = await pool.fetchrow(ONE, note_id)
    if row is None:
        raise HTTPException(status_code=404)
    return Response(orjson.dumps(dict(row)), media_type="application/json")


if __name__ == "__main__":
    # The generated web's uvicorn options, as in baseline_app.py.
    config = uvicorn.Config(
        app,
        host="0.0.0.0",  # noqa: S104  # the generated web binds all interfaces too
        port=int(os.environ["PORT"]),
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips="*",
        timeout_graceful_shutdown=20,
        timeout_keep_alive=5,
        lifespan="on",
    )
    uvicorn.Server(config).run()
