"""How many outputs went out labelled as AI-generated, per day, policy and kind, in the store
(table ``labelled_outputs``, migration 0010): the compliance report's evidence for the
disclosure control (METI; EU AI Act Art. 50).

Counted in memory as responses leave (a dict increment on the hot path) and flushed to the
store every ``labelling_flush_s`` and at shutdown, by adding to the day's row (one UPDATE, or
an INSERT the first time; workers adding at once are safe: a lost INSERT race retries as an
UPDATE). Kinds: ``text`` (a chat or completion response released with the disclosure headers
and field, ``notice`` when a visible notice was added too) and ``image`` (an image released
C2PA-signed). A crash loses at most the last interval's counts, never a record of the chain.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Date, String, update
from sqlalchemy.orm import Mapped, mapped_column

from guardrail.db import Base, store_errors
from guardrail.errors import StoreConflictError, StoreError
from guardrail.logs import event

if TYPE_CHECKING:
    from guardrail.deps import AppState
    from guardrail.incidents.store import IncidentStore

log = logging.getLogger("guardrail.labelling")


class LabelledOutputRow(Base):
    __tablename__ = "labelled_outputs"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    policy_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # text | notice | image
    count: Mapped[int] = mapped_column(BigInteger)


class LabelCounts:
    def __init__(self, store: IncidentStore) -> None:
        self.store = store
        self._pending: Counter[tuple[date, str, str]] = Counter()
        self._lock = threading.Lock()

    def add(self, policy: str, kind: str, n: int = 1) -> None:
        if n > 0:
            with self._lock:
                self._pending[(datetime.now(UTC).date(), policy[:128], kind)] += n

    def flush(self) -> int:
        """Write what was counted (from a worker thread). On a store failure the counts are
        kept for the next flush."""
        with self._lock:
            todo, self._pending = self._pending, Counter()
        if not todo:
            return 0
        try:
            for (day, policy, kind), n in todo.items():
                self._add_row(day, policy, kind, n)
        except StoreError as exc:
            with self._lock:
                self._pending.update(todo)
            event(log, logging.WARNING, "label_counts_not_written", error=type(exc).__name__)
            return 0
        return sum(todo.values())

    def _add_row(self, day: date, policy: str, kind: str, n: int) -> None:
        t = LabelledOutputRow
        for _ in range(3):
            with store_errors(), self.store.sessions.begin() as s:
                got = s.execute(update(t).where(t.day == day, t.policy_name == policy,
                                                t.kind == kind)
                                .values(count=t.count + n))
                if got.rowcount:
                    return
            try:
                with store_errors(), self.store.sessions.begin() as s:
                    s.add(t(day=day, policy_name=policy, kind=kind, count=n))
                return
            except StoreConflictError:
                continue  # another worker inserted it first: add to its row

    def totals(self, since: date, until: date) -> dict[str, int]:
        """Counts by kind for days in [since, until), from the store (flushed counts)."""
        from sqlalchemy import func, select

        t = LabelledOutputRow
        with store_errors(), self.store.sessions() as s:
            return {k: int(n) for k, n in s.execute(
                select(t.kind, func.sum(t.count)).where(t.day >= since, t.day < until)
                .group_by(t.kind))}


async def flush_forever(state: AppState) -> None:
    import asyncio

    import anyio

    counts: LabelCounts = state.extras["label_counts"]
    while True:
        await asyncio.sleep(state.settings.labelling_flush_s)
        await anyio.to_thread.run_sync(counts.flush)
