"""Request dependencies: settings, a database session, this process's Redis client and jobs.

They are `async def` although they only read the app's state: FastAPI runs a plain `def`
dependency in a worker thread, a round trip that cost about half of a small request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

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


async def get_session(
    resources: Annotated[Resources, Depends(get_resources)],
) -> AsyncIterator[AsyncSession]:
    """One session per request, closed (and its connection returned) when the request ends."""
    async with resources.sessionmaker() as session:
        yield session


async def get_redis(resources: Annotated[Resources, Depends(get_resources)]) -> Redis:
    """The process's Redis client."""
    return resources.redis


async def get_jobs(resources: Annotated[Resources, Depends(get_resources)]) -> JobSender:
    """The process's job sender (it imports Dramatiq on first use, not before)."""
    return resources.jobs


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
RedisDep = Annotated[Redis, Depends(get_redis)]
JobsDep = Annotated[JobSender, Depends(get_jobs)]
