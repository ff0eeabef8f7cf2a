"""Every table: each feature's models.py (features.py) declares its tables on Base's metadata,
which Alembic compares with the migrations."""

from __future__ import annotations

from ..features import feature_modules
from .base import Base

feature_modules("models")

__all__ = ["Base"]
