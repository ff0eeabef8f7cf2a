"""The ASGI application: create_app(settings) wires routes, middleware and the lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from . import observability
from .api.health import liveness_body
from .api.health import router as health_router
from .api.router import api_router
from .backing_services import BackingServices
from .errors import install_error_handlers
from .logs import get_logger
from .middleware import RequestContextMiddleware
from .settings import Settings, load_settings

log = get_logger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the backing-service handles at start-up and close them at shutdown."""
    settings: Settings = app.state.settings
    services = await BackingServices.open(settings)
    app.state.services = services
    app.state.draining = False
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
        log.info("stopped")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; with no argument the settings come from the environment."""
    settings = settings or load_settings()
    docs = settings.show_docs
    app = FastAPI(
        title="{{ cookiecutter.project_slug }}",
        version=settings.release_version,
        lifespan=lifespan,
        telemetry=observability.fastapi_telemetry(),
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    app.state.draining = False
    app.state.liveness_body = liveness_body(settings)
    install_error_handlers(app)
    app.include_router(health_router)
    # Only the API reads request bodies, so the body limit wraps the API routes, not the probes.
    app.include_router(api_router, max_body_size=settings.max_body_size)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["content-type", "x-request-id"],
            expose_headers=["x-request-id", "retry-after"],
        )
    # Added last, so it runs first: every response, even an error, gets its id and headers.
    app.add_middleware(RequestContextMiddleware, allowed_hosts=settings.allowed_hosts)
    return app
