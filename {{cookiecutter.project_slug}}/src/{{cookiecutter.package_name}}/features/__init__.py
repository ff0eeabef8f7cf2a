"""The service's features, imported here by name: the routes, tables, jobs and schedule entries of
the service are these lists. Entry points import this module; no feature imports it."""

from __future__ import annotations

from fastapi import APIRouter

from ..core.apikeys import models as apikeys_models
from ..core.jobs import queues
from ..core.jobs.schedule import Periodic
from .notes import models as notes_models
from .notes import routes as notes_routes
from .notes import tasks as notes_tasks

# Routers mounted under /api/v1 (processes/app.py).
ROUTERS: tuple[APIRouter, ...] = (notes_routes.router,)
# What the clock enqueues; the jobs themselves are declared on the broker as their module loads.
SCHEDULE: tuple[Periodic, ...] = (queues.QUEUE_DEPTHS_SCHEDULE, *notes_tasks.SCHEDULE)
# Modules that declare tables on db.base.Base: what Alembic compares with the migrations.
MODELS = (apikeys_models, notes_models)
