"""The api_keys table: a name, the key's keyed digest, when it was made and last used."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from ..db.base import Base

NAME_MAX = 64


class ApiKey(Base):
    """One client's key. The key itself is never stored: only HMAC-SHA256(SECRET_KEY, key)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), unique=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    # Which secret made the digest (digests.secret_tag): "current" or a fallback in `list`.
    secret_tag: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
