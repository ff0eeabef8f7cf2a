"""Every model, imported in one place so that the metadata Alembic compares is complete."""

from ..apikeys.models import ApiKey
from ..notes.models import Note, NoteStats
from .base import Base

__all__ = ["ApiKey", "Base", "Note", "NoteStats"]
