"""The versioned API: every feature's router (features.py) is mounted here under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from ..features import feature_modules

api_router = APIRouter(prefix="/api/v1")
for _routes in feature_modules("routes"):
    api_router.include_router(_routes.router)
