"""API key use cases, free of HTTP: the auth dependency and the admin commands call these.

Every statement is built from the declaration in models.py and compiled once, like the notes
feature's (docs/data.md).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import asyncpg
from asyncpg import Record
from asyncpg.pool import PoolConnectionProxy
from sqlalchemy import (
    LargeBinary,
    String,
    Table,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from starlette.authentication import BaseUser

from ..db.compiled import Compiled
from ..db.pool import Database
from ..settings import Settings
from .accepted import REVOKED_CHANNEL, AcceptedKeys
from .digests import digest, digests, new_key, secret_tags, well_formed
from .models import ApiKey

# A key's last use is written when a process looks it up, and at most this often.
TOUCH_EVERY_SECONDS = 60

api_keys = cast(Table, ApiKey.__table__)
_INSERT = Compiled(
    insert(api_keys).values(
        name=bindparam("name"), digest=bindparam("digest"), secret_tag=bindparam("secret_tag")
    )
)
_LIST = Compiled(
    select(
        api_keys.c.id,
        api_keys.c.name,
        api_keys.c.created_at,
        api_keys.c.last_used_at,
        api_keys.c.secret_tag,
    ).order_by(api_keys.c.name)
)
_DELETE = Compiled(
    delete(api_keys).where(api_keys.c.name == bindparam("name")).returning(api_keys.c.id)
)
# One lookup for the digests under SECRET_KEY and each fallback.
_FIND = Compiled(
    select(api_keys.c.id, api_keys.c.name, api_keys.c.digest, api_keys.c.last_used_at).where(
        api_keys.c.digest == any_(bindparam("candidates", type_=ARRAY(LargeBinary)))
    )
)
# Marks the use and stores the digest under SECRET_KEY (new when the key matched a fallback).
_TOUCH = Compiled(
    update(api_keys)
    .where(api_keys.c.id == bindparam("key_id"))
    .values(
        last_used_at=func.now(),
        digest=bindparam("new_digest"),
        secret_tag=bindparam("new_tag"),
    )
    .returning(api_keys.c.id)
)


# Sent in the transaction that deletes a key: every web process forgets the keys it accepted.
_NOTIFY = Compiled(
    select(func.pg_notify(bindparam("channel", type_=String), bindparam("name", type_=String)))
)


async def _notify_revoked(connection: PoolConnectionProxy[Record], name: str) -> None:
    """Tell every web process, once the transaction commits, that a key is gone."""
    params = {"channel": REVOKED_CHANNEL, "name": name}
    await connection.execute(_NOTIFY.sql, *_NOTIFY.args(params))


class KeyNameTakenError(Exception):
    """A key of that name exists already."""


@dataclass(frozen=True, slots=True)
class Caller(BaseUser):
    """Who a request's key belongs to (request.user on /api routes)."""

    key_id: int
    name: str

    @property
    def is_authenticated(self) -> bool:
        """Always: a caller exists only for a valid key."""
        return True

    @property
    def display_name(self) -> str:
        """The key's name."""
        return self.name


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
            await connection.execute(_DELETE.sql, *_DELETE.args({"name": name}))
            await _notify_revoked(connection, name)
        row = {
            "name": name,
            "digest": digests(settings, key)[0],
            "secret_tag": secret_tags(settings)[0],
        }
        try:
            await connection.execute(_INSERT.sql, *_INSERT.args(row))
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
    """Delete the key called name; False when there is none. Every web process refuses it from
    its next request on (the notification sent on commit, accepted.py)."""
    async with db.connection() as connection, connection.transaction():
        deleted = await connection.fetchrow(_DELETE.sql, *_DELETE.args({"name": name}))
        if deleted is not None:
            await _notify_revoked(connection, name)
    return deleted is not None


async def authenticate(
    db: Database, settings: Settings, key: str, accepted: AcceptedKeys
) -> Caller | None:
    """The caller a key belongs to, or None: from the keys this process accepted lately, else
    from the table (then remembered). Digests are compared in constant time."""
    if not well_formed(key):
        return None
    current = digest(settings.secret_key.get_secret_value().encode(), key)
    known = accepted.get(current)
    if isinstance(known, Caller):
        return known
    candidates = digests(settings, key)
    for row in await db.fetch(_FIND, candidates=candidates):
        stored = bytes(row["digest"])
        for index, candidate in enumerate(candidates):
            if hmac.compare_digest(stored, candidate):
                if index or _stale(row["last_used_at"]):
                    tag = secret_tags(settings)[0]
                    await db.fetchrow(
                        _TOUCH, key_id=row["id"], new_digest=candidates[0], new_tag=tag
                    )
                caller = Caller(key_id=row["id"], name=row["name"])
                accepted.put(current, caller)
                return caller
    return None


def _stale(last_used_at: datetime | None) -> bool:
    if last_used_at is None:
        return True
    return (datetime.now(UTC) - last_used_at).total_seconds() >= TOUCH_EVERY_SECONDS
