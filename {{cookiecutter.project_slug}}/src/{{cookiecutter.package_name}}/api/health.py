"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import text
from starlette.responses import Response

from ..errors import json_response
from ..logs import get_logger
from ..resources import Resources
from .deps import SettingsDep, get_resources

router = APIRouter(tags=["health"])
log = get_logger(__name__)


@router.get("/healthz")
async def healthz(settings: SettingsDep) -> dict[str, str]:
    """Liveness: the process answers. Touches no backing service."""
    return {
        "status": "ok",
        "version": settings.release_version,
        "commit": settings.release_commit,
    }


async def _check_postgres(resources: Resources) -> None:
    async with resources.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _check_redis(resources: Resources) -> None:
    await resources.redis.ping()


@router.get("/readyz")
async def readyz(
    request: Request,
    settings: SettingsDep,
    resources: Annotated[Resources, Depends(get_resources)],
) -> Response:
    """Readiness: 200 when PostgreSQL and Redis answer in time and the process is not draining."""
    if request.app.state.draining:
        return json_response({"status": "draining", "failed": ["shutdown"]}, 503)
    names = ("postgres", "redis")
    checks = (_check_postgres(resources), _check_redis(resources))
    results = await asyncio.gather(
        *(asyncio.wait_for(check, settings.readiness_timeout) for check in checks),
        return_exceptions=True,
    )
    failed = [name for name, result in zip(names, results, strict=True) if result is not None]
    if failed:
        for name, result in zip(names, results, strict=True):
            if result is not None:
                log.warning("backing service not ready", service=name, reason=type(result).__name__)
        return json_response({"status": "unavailable", "failed": failed}, 503)
    return json_response({"status": "ready", "failed": []}, 200)
