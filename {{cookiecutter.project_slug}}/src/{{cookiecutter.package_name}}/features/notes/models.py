"""The notes table, and the stats the worker derives from each note."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from ...core.db.base import Base
from .schemas import TITLE_MAX


class Note(Base):
    """A short titled text."""

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class NoteStats(Base):
    """Counts derived from a note's body by a background job, one row per note."""

    __tablename__ = "note_stats"

    note_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey(Note.id, ondelete="CASCADE"), primary_key=True
    )
    words: Mapped[int] = mapped_column(Integer)
    characters: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
