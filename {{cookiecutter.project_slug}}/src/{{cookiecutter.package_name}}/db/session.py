"""The async engine and session factory, built from settings when a process starts."""

from __future__ import annotations

from sqlalchemy import create_engine as _create_sync_engine
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import NullPool

from ..settings import Settings


def create_engine(settings: Settings, *, pool: bool = True) -> AsyncEngine:
    """An engine whose waits are all bounded: connect, pool checkout, and dead connections."""
    options: dict[str, object] = {"pool_pre_ping": True}
    if pool:
        options |= {
            "pool_size": settings.db_pool_size,
            "max_overflow": settings.db_max_overflow,
            "pool_timeout": settings.db_pool_timeout,
        }
    else:
        options["poolclass"] = NullPool  # one-off commands: one connection, closed after use
    return _create_async_engine(
        settings.database_url.get_secret_value(),
        connect_args={
            "connect_timeout": settings.db_connect_timeout,
            "application_name": "{{ cookiecutter.project_slug }}",
        },
        **options,
    )


def create_sync_engine(settings: Settings, *, pool_size: int) -> Engine:
    """A blocking engine for the worker's job threads: at most pool_size connections, no more."""
    return _create_sync_engine(
        settings.database_url.get_secret_value(),
        connect_args={
            "connect_timeout": settings.db_connect_timeout,
            "application_name": "{{ cookiecutter.project_slug }}-worker",
        },
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (no lazy loads under asyncio)."""
    return async_sessionmaker(engine, expire_on_commit=False)
