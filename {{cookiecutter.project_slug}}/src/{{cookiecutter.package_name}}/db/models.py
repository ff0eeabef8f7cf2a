"""Every model, imported in one place so that the metadata Alembic compares is complete."""

from ..notes.models import Note, NoteStats
from .base import Base

__all__ = ["Base", "Note", "NoteStats"]
