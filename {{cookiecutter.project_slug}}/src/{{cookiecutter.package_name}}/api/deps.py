"""Request dependencies: settings, the database pool, the backing-service handles, jobs.

They are `async def` although they only read the app's state: FastAPI runs a plain `def`
dependency in a worker thread, a round trip that cost about half of a small request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..db.pool import Database
from ..jobs.sender import JobSender
from ..resources import Resources
from ..settings import Settings


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_resources(request: Request) -> Resources:
    """The backing-service handles opened by the lifespan."""
    resources: Resources = request.app.state.resources
    return resources


async def get_db(request: Request) -> Database:
    """The process's PostgreSQL pool; each query takes a connection for itself."""
    resources: Resources = request.app.state.resources
    return resources.db


async def get_jobs(resources: Annotated[Resources, Depends(get_resources)]) -> JobSender:
    """The process's job sender (it imports Dramatiq on first use, not before)."""
    return resources.jobs


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_db)]
ResourcesDep = Annotated[Resources, Depends(get_resources)]
JobsDep = Annotated[JobSender, Depends(get_jobs)]
