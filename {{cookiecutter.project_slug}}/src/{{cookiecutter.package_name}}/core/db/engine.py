"""SQLAlchemy's blocking engine on psycopg: the worker's job threads and the migrations."""

from __future__ import annotations

import functools

from sqlalchemy import create_engine as _create_engine
from sqlalchemy.engine import Engine

from ..settings import Settings, load_settings
from . import application_name


def create_engine(settings: Settings, *, process: str, pool_size: int = 1) -> Engine:
    """An engine holding at most pool_size connections (no overflow), each connect bounded by
    DB_CONNECT_TIMEOUT and named after the process type on the server."""
    return _create_engine(
        settings.sqlalchemy_url.get_secret_value(),
        connect_args={
            "connect_timeout": settings.db_connect_timeout,
            "application_name": application_name(process),
        },
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout,
    )


@functools.cache
def worker_engine() -> Engine:
    """The engine of the jobs this process runs: one per process, as SQLAlchemy advises, made on
    first use, holding at most WORKER_THREADS connections (one per job thread)."""
    settings = load_settings()
    return create_engine(settings, process="worker", pool_size=settings.worker_threads)
