"""Table: the answering models seen in traffic per AI system (migration 0007).

One row per (system, model). A model that answers for a system and that no approved risk
assessment of it covers makes that system due for re-assessment.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from guardrail.db import Base


class ModelSeenRow(Base):
    __tablename__ = "models_seen"

    system_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    model: Mapped[str] = mapped_column(String(256), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # observations written: each process writes a pair once (models_seen.observe_model), so
    # this counts the processes that saw it, not the responses
    count: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
