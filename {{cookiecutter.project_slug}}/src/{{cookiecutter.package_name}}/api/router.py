"""The versioned API: every feature's router (features.py) is mounted here under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ..features import feature_modules
from .auth import require_key

# Every route under /api needs an API key (api/auth.py); the health probes live elsewhere.
api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key)])
for _routes in feature_modules("routes"):
    api_router.include_router(_routes.router)
