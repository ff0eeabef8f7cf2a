"""Request dependencies: settings, the database pool, the backing services.

They are `async def` because they only read the app's state: FastAPI would run a plain `def`
dependency in a worker thread, for nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..db.pool import Database
from ..settings import Settings
from .services import BackingServices


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_services(request: Request) -> BackingServices:
    """The backing services opened by the lifespan."""
    services: BackingServices = request.app.state.services
    return services


async def get_db(request: Request) -> Database:
    """The process's PostgreSQL pool; each query takes a connection for itself."""
    services: BackingServices = request.app.state.services
    return services.db


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_db)]
ServicesDep = Annotated[BackingServices, Depends(get_services)]
