"""Keys a web process accepted lately, so a request with a known key costs no database round
trip; a revocation empties them in every process at once.

`api-keys revoke` (service.revoke_key) sends a PostgreSQL notification on REVOKED_CHANNEL in the
transaction that deletes the key; each web process listens on a connection of its own and
forgets every accepted key when one arrives. Should that connection be lost, a key is kept at
most API_KEY_CACHE_SECONDS (docs/security.md: the window), and the process connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg

from ..db import application_name
from ..logs import get_logger
from ..settings import Settings
from ..startup import reason

REVOKED_CHANNEL = "api_keys_revoked"
# More accepted keys than this in one process is no normal load: start afresh rather than grow.
MAX_ENTRIES = 10_000
RECONNECT_SECONDS = 2.0

log = get_logger(__name__)


class AcceptedKeys:
    """Accepted key digests with what they identify, each for at most `lifetime` seconds."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self._entries: dict[bytes, tuple[object, float]] = {}

    def get(self, digest: bytes) -> object | None:
        """What `digest` was accepted as, unless that is older than the lifetime."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            del self._entries[digest]
            return None
        return entry[0]

    def put(self, digest: bytes, caller: object) -> None:
        """Remember an accepted key's digest for the lifetime."""
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = (caller, time.monotonic() + self.lifetime)

    def forget_all(self, *_: object) -> None:
        """Forget every key (a key was revoked, or revocations may have been missed)."""
        self._entries.clear()


class RevocationListener:
    """Listens on REVOKED_CHANNEL on a connection of its own, connecting again when it is lost."""

    def __init__(self, settings: Settings, accepted: AcceptedKeys) -> None:
        self._settings = settings
        self._accepted = accepted
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Connect in the background; requests are served meanwhile (with the lifetime bound)."""
        self._task = asyncio.create_task(self._run(), name="api-key revocations")

    async def _run(self) -> None:
        down = False
        while True:
            try:
                await self._listen()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                if not down:  # once per outage, not once per attempt
                    log.warning("revocation channel down", error=reason(error))
                down = True
            else:
                down = False
                log.warning("revocation channel lost; connecting again")
            # Revocations sent while the channel was down were missed: start afresh.
            self._accepted.forget_all()
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _listen(self) -> None:
        """Listen until the connection is lost."""
        connection = await asyncpg.connect(
            self._settings.asyncpg_dsn.get_secret_value(),
            timeout=self._settings.db_connect_timeout,
            server_settings={"application_name": application_name("revocations")},
        )
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(REVOKED_CHANNEL, self._accepted.forget_all)
            self._accepted.forget_all()  # what was accepted before the channel was up
            await lost.wait()
        finally:
            with contextlib.suppress(Exception):
                await connection.close(timeout=1)

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
