"""The ASGI application: create_app(settings) wires routes, middleware and the lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.cors import CORSMiddleware

{% if cookiecutter.observability %}from ..core import observability
{% endif %}from ..core.http.auth import ApiKeyBackend, refused, require_key
from ..core.http.errors import install_error_handlers
from ..core.http.health import liveness_body
from ..core.http.health import router as health_router
from ..core.http.middleware import (
    AccessLogMiddleware,
    AllowedHostsMiddleware,
    BodyLimitMiddleware,
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
)
from ..core.http.services import BackingServices
from ..core.jobs.broker import broker
from ..core.logs import get_logger
from ..core.settings import Settings, load_settings
from ..features import ROUTERS

log = get_logger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the backing-service handles at start-up and close them at shutdown."""
    settings: Settings = app.state.settings
    services = await BackingServices.open(settings)
    app.state.services = services
    log.info(
        "started",
        env=settings.app_env,
        version=settings.release_version,
        commit=settings.release_commit,
    )
    # What is loaded by now (modules, routes, tables, compiled statements) lives as long as the
    # process: frozen, the cycle collector no longer walks it, neither while serving nor at exit.
    gc.freeze()
    try:
        yield
    finally:
        await services.close()
        broker.client.close()  # the connections the jobs were sent on
        log.info("stopped")
{%- if cookiecutter.observability %}
        # The last requests' spans and error reports: a granian worker ends without atexit.
        observability.shutdown()
{%- endif %}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; with no argument the settings come from the environment."""
    settings = settings or load_settings()
    docs = settings.show_docs
    app = FastAPI(
        title="{{ cookiecutter.project_slug }}",
        version=settings.release_version,
        lifespan=lifespan,
{%- if cookiecutter.observability %}
        telemetry=observability.fastapi_telemetry(),
{%- endif %}
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    app.state.liveness_body = liveness_body(settings)
    install_error_handlers(app)
    app.include_router(health_router)
    # Every route under /api needs an API key (core/http/auth.py); the health probes live elsewhere.
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key)])
    for router in ROUTERS:
        api.include_router(router)
    app.include_router(api)
    # Each add_middleware wraps what is there: the last added runs first for a request.
    app.add_middleware(BodyLimitMiddleware, max_body_size=settings.max_body_size)
    # The key is checked before the body is read.
    app.add_middleware(AuthenticationMiddleware, backend=ApiKeyBackend(), on_error=refused)
    if settings.cors_origins:
        # Before the key check: a browser's preflight carries no key.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-request-id", "retry-after"],
        )
    if "*" not in settings.allowed_hosts:
        app.add_middleware(AllowedHostsMiddleware, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
