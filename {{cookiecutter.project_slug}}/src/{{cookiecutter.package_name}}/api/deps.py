"""Request dependencies: settings, a database session and the Redis client of this process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from ..resources import Resources
from ..settings import Settings


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_resources(request: Request) -> Resources:
    """The backing-service handles opened by the lifespan."""
    resources: Resources = request.app.state.resources
    return resources


async def get_session(
    resources: Annotated[Resources, Depends(get_resources)],
) -> AsyncIterator[AsyncSession]:
    """One session per request, closed (and its connection returned) when the request ends."""
    async with resources.sessionmaker() as session:
        yield session


def get_redis(resources: Annotated[Resources, Depends(get_resources)]) -> Redis:
    """The process's Redis client."""
    return resources.redis


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
RedisDep = Annotated[Redis, Depends(get_redis)]
