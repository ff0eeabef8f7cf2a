"""Liveness and readiness probes.

The probes are plain Starlette routes, not FastAPI path operations: they take no input, so
there is nothing for FastAPI's dependency solving and validation to do. They still pass through
every middleware (request id, headers, access
log). They read what they need from the app's state, and /healthz sends a body made once, when
the app is created. Being Starlette routes, they are not in the OpenAPI schema.
"""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..logs import get_logger
from ..settings import Settings
from ..startup import reason
from .services import BackingServices

router = APIRouter(tags=["health"])
log = get_logger(__name__)


def liveness_body(settings: Settings) -> bytes:
    """What /healthz answers: the release this process runs."""
    return orjson.dumps(
        {"status": "ok", "version": settings.release_version, "commit": settings.release_commit}
    )


async def healthz(request: Request) -> Response:
    """Liveness: the process answers. Touches no backing service."""
    return Response(request.app.state.liveness_body, media_type="application/json")


async def _check_postgres(services: BackingServices) -> None:
    await services.db.ping()


async def _check_redis(services: BackingServices) -> None:
    await services.redis.ping()


async def readyz(request: Request) -> Response:
    """Readiness: 200 when PostgreSQL and Redis answer in time."""
    state = request.app.state
    settings: Settings = state.settings
    services: BackingServices = state.services
    names = ("postgres", "redis")
    checks = (_check_postgres(services), _check_redis(services))
    results = await asyncio.gather(
        *(asyncio.wait_for(check, settings.readiness_timeout) for check in checks),
        return_exceptions=True,
    )
    failed = [name for name, result in zip(names, results, strict=True) if result is not None]
    if failed:
        for name, result in zip(names, results, strict=True):
            if result is not None:
                why = reason(result, settings.secret_values)
                log.warning("backing service not ready", service=name, reason=why)
        return _json({"status": "unavailable", "failed": failed}, 503)
    return _json({"status": "ready", "failed": []}, 200)


def _json(body: dict[str, object], status: int) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


router.add_route("/healthz", healthz, methods=["GET"])
router.add_route("/readyz", readyz, methods=["GET"])
