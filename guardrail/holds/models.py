"""Tables: held response bodies (encrypted) and webhook delivery attempts (migration 0006)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from guardrail.db import Base


class HeldResponseRow(Base):
    __tablename__ = "held_responses"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # hr_...
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tenant: Mapped[str | None] = mapped_column(String(128))
    api_key_id: Mapped[str | None] = mapped_column(String(64))
    policy_name: Mapped[str] = mapped_column(String(128))
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    route: Mapped[str] = mapped_column(String(128))
    incident_ids: Mapped[list[str]] = mapped_column(JSON)  # the hold incidents it waits on
    status: Mapped[str] = mapped_column(String(32))  # pending | released | rejected | expired
    key_id: Mapped[str] = mapped_column(String(32))  # which keyring key sealed it
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)  # None once rejected/purged
    content_sha256: Mapped[str] = mapped_column(String(64))  # of the plaintext body
    media_type: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(128))


class WebhookAttemptRow(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(40))  # the same across retries
    response_id: Mapped[str] = mapped_column(String(40), index=True)
    api_key_id: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2048))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(512))
    ok: Mapped[bool] = mapped_column(Boolean)


def attempt_dict(r: WebhookAttemptRow) -> dict[str, Any]:
    return {"delivery_id": r.delivery_id, "response_id": r.response_id, "url": r.url,
            "attempt": r.attempt, "at": r.at.isoformat(), "status_code": r.status_code,
            "error": r.error, "ok": r.ok}
