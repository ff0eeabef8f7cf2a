"""API key use cases, free of HTTP: the auth dependency and the admin commands call these.

Plain SQL on the web's asyncpg pool, like the notes feature; models.py declares the table.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from ..db.pool import Database
from ..settings import Settings
from .digests import digests, new_key, secret_tags, well_formed

# A key's last use is written at most this often, so a busy client costs one write a minute.
TOUCH_EVERY_SECONDS = 60

_INSERT = "INSERT INTO api_keys (name, digest, secret_tag) VALUES ($1, $2, $3)"
_LIST = "SELECT id, name, created_at, last_used_at, secret_tag FROM api_keys ORDER BY name"
_DELETE = "DELETE FROM api_keys WHERE name = $1 RETURNING id"
_FIND = "SELECT id, name, digest, last_used_at FROM api_keys WHERE digest = ANY($1::bytea[])"
# Marks the use and stores the digest under SECRET_KEY (new when the key matched a fallback).
_TOUCH = "UPDATE api_keys SET last_used_at = now(), digest = $2, secret_tag = $3 WHERE id = $1"


class KeyNameTakenError(Exception):
    """A key of that name exists already."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request's key belongs to."""

    key_id: int
    name: str


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What `api-keys list` shows of a key: never the key, nor its digest."""

    key_id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    secret: str  # "current", "fallback 1", ... or "retired" (a secret no longer configured)


async def create_key(db: Database, settings: Settings, name: str, *, replace: bool = False) -> str:
    """Make a key called name and return it: the only time it is ever seen."""
    key = new_key()
    async with db.connection() as connection, connection.transaction():
        if replace:
            await connection.execute(_DELETE, name)
        try:
            await connection.execute(
                _INSERT, name, digests(settings, key)[0], secret_tags(settings)[0]
            )
        except asyncpg.UniqueViolationError:
            raise KeyNameTakenError(name) from None
    return key


async def list_keys(db: Database, settings: Settings) -> list[KeyInfo]:
    """Every key, by name, with the secret its digest was made with."""
    names = {
        tag: "fallback " + str(i) if i else "current" for i, tag in enumerate(secret_tags(settings))
    }
    return [
        KeyInfo(
            key_id=row["id"],
            name=row["name"],
            created_at=row["created_at"],
            last_used_at=row["last_used_at"],
            secret=names.get(row["secret_tag"], "retired"),
        )
        for row in await db.fetch(_LIST)
    ]


async def revoke_key(db: Database, name: str) -> bool:
    """Delete the key called name; False when there is none. Effective on the next request."""
    return await db.fetchrow(_DELETE, name) is not None


async def authenticate(db: Database, settings: Settings, key: str) -> Caller | None:
    """The caller a key belongs to, or None. Digests are compared in constant time."""
    if not well_formed(key):
        return None
    candidates = digests(settings, key)
    for row in await db.fetch(_FIND, candidates):
        stored = bytes(row["digest"])
        for index, candidate in enumerate(candidates):
            if hmac.compare_digest(stored, candidate):
                if index or _stale(row["last_used_at"]):
                    tag = secret_tags(settings)[0]
                    await db.fetchrow(_TOUCH, row["id"], candidates[0], tag)
                return Caller(key_id=row["id"], name=row["name"])
    return None


def _stale(last_used_at: datetime | None) -> bool:
    if last_used_at is None:
        return True
    return (datetime.now(UTC) - last_used_at).total_seconds() >= TOUCH_EVERY_SECONDS
