"""Corpus tables: registered corpora and their works (text kept as the source of truth; the
LSH index on disk is derived from it and can be rebuilt), and the generation every node's
index is compared with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from guardrail.db import Base

_ID = BigInteger().with_variant(Integer, "sqlite")


class CorpusRow(Base):
    __tablename__ = "corpora"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, index=True)
    rights_holder: Mapped[str] = mapped_column(String(256))
    license: Mapped[str] = mapped_column(String(256))
    source_url: Mapped[str | None] = mapped_column(String(1024))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WorkRow(Base):
    __tablename__ = "corpus_works"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    corpus_id: Mapped[int] = mapped_column(
        ForeignKey("corpora.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(512))
    external_id: Mapped[str | None] = mapped_column(String(256))
    source_url: Mapped[str | None] = mapped_column(String(1024))
    rights_holder: Mapped[str | None] = mapped_column(String(256))  # overrides the corpus's
    license: Mapped[str | None] = mapped_column(String(256))
    content_sha256: Mapped[str] = mapped_column(String(64), index=True)
    chars: Mapped[int] = mapped_column(Integer)
    windows: Mapped[int] = mapped_column(Integer, default=0)
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("corpus_id", "content_sha256", name="uq_work_content"),)


class CorpusGenerationRow(Base):
    """One row (``id`` 1): ``generation`` is bumped in the same transaction as every change
    to corpora or works, so a node knows whether its local index is current by comparing
    one number (guardrail/corpus/sync.py). ``store_id`` names this database: an index
    directory built from another database is never taken for current."""

    __tablename__ = "corpus_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    store_id: Mapped[str] = mapped_column(String(32))
    generation: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
