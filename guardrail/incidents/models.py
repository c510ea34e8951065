"""Incident tables: one row per intervention, chained by hash."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from guardrail.db import Base


class IncidentRow(Base):
    __tablename__ = "incidents"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                     autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    tenant: Mapped[str | None] = mapped_column(String(128))
    api_key_id: Mapped[str | None] = mapped_column(String(64), index=True)
    system_id: Mapped[str] = mapped_column(String(128))
    policy_name: Mapped[str] = mapped_column(String(128), index=True)
    policy_version: Mapped[str] = mapped_column(String(64))
    route: Mapped[str] = mapped_column(String(128))
    upstream_model: Mapped[str | None] = mapped_column(String(256))  # the model that answered
    requested_model: Mapped[str | None] = mapped_column(String(256))  # the one asked for
    stage: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32), index=True)  # decision | scanner_failure
    action: Mapped[str] = mapped_column(String(16), index=True)
    scanner: Mapped[str | None] = mapped_column(String(128), index=True)
    backend: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(256))
    model_version: Mapped[str | None] = mapped_column(String(128))
    category: Mapped[str | None] = mapped_column(String(128), index=True)
    score: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    scanners: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    excerpt: Mapped[str | None] = mapped_column(Text)
    review_status: Mapped[str] = mapped_column(String(32), index=True)
    reviewer: Mapped[str | None] = mapped_column(String(128))
    owner: Mapped[str | None] = mapped_column(String(128))
    assignee: Mapped[str | None] = mapped_column(String(128))  # the person working on it
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    redress: Mapped[list[Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    record_hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_incidents_created_action", "created_at", "action"),)


class ChainHead(Base):
    """Single row: the hash and seq of the latest incident. Serialises appends (row lock on
    PostgreSQL, BEGIN IMMEDIATE on SQLite) and lets verify detect a deleted tail."""

    __tablename__ = "incident_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(BigInteger)
