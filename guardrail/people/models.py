"""Tables for people, their sessions and API tokens, and client keys kept in the store.

Nothing secret is stored in clear: passwords as argon2id hashes, session ids, person tokens
and client keys as SHA-256 digests (all three are 256-bit random values, so a fast digest is
enough; a stolen table gives no usable credential).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from guardrail.db import Base

_ID = BigInteger().with_variant(Integer, "sqlite")


class PersonRow(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))  # as given (NFC), shown and recorded
    name_key: Mapped[str] = mapped_column(String(128), unique=True)  # NFKC + casefold: sign-in
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(255))  # None: token-only account
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locale: Mapped[str | None] = mapped_column(String(8))  # "ja" | "en"; None: Accept-Language
    timezone: Mapped[str | None] = mapped_column(String(64))  # IANA name; None: UTC


class PersonTokenRow(Base):
    __tablename__ = "person_tokens"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SessionRow(Base):
    """A signed-in browser. The cookie holds a random id; this row holds its digest."""

    __tablename__ = "person_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # absolute lifetime
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # idle timeout
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ClientKeyRow(Base):
    """A client key created with ``guardrail keys add``: its tenant and optional policy."""

    __tablename__ = "client_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # key id, as incidents record
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tenant: Mapped[str] = mapped_column(String(128))
    policy: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
