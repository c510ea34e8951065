"""Which upstream models answer for which AI system (table ``models_seen``, migration 0007).

The proxy reports the model of every answered response through
:func:`guardrail.governance.setup.observe_model`. Each (system, model) pair reaches the
database at most once per process: the first sighting is remembered in memory and written by
one background thread (an upsert: first_seen, last_seen, count); later sightings cost a set
lookup. So ``count`` is the number of processes (and restarts) that saw the pair, and
``last_seen`` when one last started seeing it, not a per-response tally.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy import Engine, select

from guardrail.db import session_factory, store_errors
from guardrail.governance.models import ModelSeenRow
from guardrail.logs import event

log = logging.getLogger("guardrail.governance")
MAX_MODEL = 256


class ModelsSeen:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = session_factory(engine)
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="guardrail-models")
        self._pending: set[Future[Any]] = set()

    def observe(self, system_id: str, model: str | None) -> bool:
        """Note ``model`` answering for ``system_id``; True when this process had not seen the
        pair (its write is queued). Never touches the database on the caller's thread."""
        if not model:
            return False
        key = (system_id[:128], model[:MAX_MODEL])
        if key in self._seen:
            return False
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
        self.submit(self._write, key, datetime.now(UTC))
        return True

    def submit(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` on the writer thread (nothing once closed)."""
        try:
            fut = self._pool.submit(fn, *args)
        except RuntimeError:  # shut down
            return
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)

    def _write(self, key: tuple[str, str], at: datetime) -> None:
        try:
            with store_errors(), self.sessions.begin() as s:
                upsert(s, key[0], key[1], at)
        except Exception as exc:  # noqa: BLE001 - retried at the next sighting
            with self._lock:
                self._seen.discard(key)
            event(log, logging.WARNING, "models_seen_write_failed", system=key[0],
                  error=type(exc).__name__)

    def by_system(self) -> dict[str, set[str]]:
        """Every model recorded for each system (all processes)."""
        out: dict[str, set[str]] = {}
        with store_errors(), self.sessions() as s:
            for sid, model in s.execute(select(ModelSeenRow.system_id, ModelSeenRow.model)):
                out.setdefault(sid, set()).add(model)
        return out

    def rows(self, system_id: str | None = None) -> list[dict[str, Any]]:
        stmt = select(ModelSeenRow).order_by(ModelSeenRow.system_id, ModelSeenRow.model)
        if system_id is not None:
            stmt = stmt.where(ModelSeenRow.system_id == system_id)
        with store_errors(), self.sessions() as s:
            return [{"system_id": r.system_id, "model": r.model,
                     "first_seen": r.first_seen.isoformat(), "last_seen": r.last_seen.isoformat(),
                     "count": r.count} for r in s.execute(stmt).scalars()]

    def flush(self, timeout: float = 10.0) -> None:
        """Wait for the queued writes (tests, shutdown)."""
        wait(list(self._pending), timeout=timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.close)


def upsert(s: Any, system_id: str, model: str, at: datetime) -> None:
    """Insert the pair, or bump ``last_seen`` and ``count`` (SQLite and PostgreSQL: one
    ``INSERT ... ON CONFLICT``; elsewhere read, then write)."""
    dialect = s.get_bind().dialect.name
    values = {"system_id": system_id, "model": model, "first_seen": at, "last_seen": at,
              "count": 1}
    if dialect in ("sqlite", "postgresql"):
        from sqlalchemy.dialects import postgresql, sqlite

        insert: Any = sqlite.insert if dialect == "sqlite" else postgresql.insert
        stmt = insert(ModelSeenRow).values(**values)
        s.execute(stmt.on_conflict_do_update(
            index_elements=["system_id", "model"],
            set_={"last_seen": at, "count": ModelSeenRow.count + 1}))
        return
    row = s.get(ModelSeenRow, (system_id, model))
    if row is None:
        s.add(ModelSeenRow(**values))
    else:
        row.last_seen, row.count = at, row.count + 1
