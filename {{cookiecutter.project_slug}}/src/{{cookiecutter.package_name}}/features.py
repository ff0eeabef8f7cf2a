"""The service's features, one folder each: every registry (tables, routes, jobs, schedule) is
derived from this tuple and the modules each folder holds."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# A feature folder may hold models.py (tables), routes.py (`router`, mounted under /api/v1) and
# tasks.py (jobs and schedule entries). Add a folder's name here and all three are picked up.
FEATURES: tuple[str, ...] = ("notes", "apikeys")


def feature_modules(part: str) -> list[ModuleType]:
    """Each feature's `part` module ("models", "routes", "tasks"), for those that have one."""
    found = []
    for feature in FEATURES:
        name = f"{__package__}.{feature}.{part}"
        if importlib.util.find_spec(name) is not None:
            found.append(importlib.import_module(name))
    return found
