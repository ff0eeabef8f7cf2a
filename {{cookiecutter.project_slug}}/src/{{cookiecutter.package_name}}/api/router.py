"""The versioned API: every feature's router is mounted here under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from ..notes.routes import router as notes_router

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(notes_router)
