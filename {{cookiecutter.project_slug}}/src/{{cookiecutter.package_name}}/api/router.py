"""The versioned API: every feature's router is mounted here under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ..notes.routes import router as notes_router
from .auth import require_key

# Every route under /api needs an API key (api/auth.py); the health probes live elsewhere.
api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key)])
api_router.include_router(notes_router)
