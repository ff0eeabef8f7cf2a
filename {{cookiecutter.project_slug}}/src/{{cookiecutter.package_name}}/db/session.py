"""SQLAlchemy engines for the processes that use the ORM layer: admin commands and migrations
(async, one connection) and the worker's job threads (blocking, pooled). The web process uses
db/pool.py instead."""

from __future__ import annotations

from sqlalchemy import create_engine as _create_sync_engine
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import NullPool

from ..settings import Settings
from . import application_name


def _connect_args(settings: Settings, process: str) -> dict[str, object]:
    """psycopg's connect options: a bounded connect, and the process named on the server."""
    return {
        "connect_timeout": settings.db_connect_timeout,
        "application_name": application_name(process),
    }


def create_engine(settings: Settings) -> AsyncEngine:
    """An engine for one-off commands: one connection at a time, closed after use."""
    return _create_async_engine(
        settings.database_url.get_secret_value(),
        connect_args=_connect_args(settings, "admin"),
        poolclass=NullPool,
    )


def create_sync_engine(settings: Settings, *, pool_size: int) -> Engine:
    """A blocking engine for the worker's job threads: at most pool_size connections, no more."""
    return _create_sync_engine(
        settings.database_url.get_secret_value(),
        connect_args=_connect_args(settings, "worker"),
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout,
    )
