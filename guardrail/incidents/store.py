"""The incident store: append (chained, committed before release), query, verify."""

from __future__ import annotations

import hashlib
import heapq
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from guardrail.db import session_factory, store_errors
from guardrail.incidents import events
from guardrail.incidents.chain import GENESIS, SEALED_FIELDS, record_hash
from guardrail.incidents.models import ChainHead, IncidentRow


@dataclass
class IncidentDraft:
    """Everything known about an intervention before it is sealed into the chain."""

    request_id: str
    system_id: str
    policy_name: str
    policy_version: str
    route: str
    stage: str
    kind: str
    action: str
    evidence: dict[str, Any]
    scanners: list[dict[str, Any]]
    api_key_id: str | None = None
    tenant: str | None = None
    upstream_model: str | None = None  # the model that answered (the response's ``model``)
    requested_model: str | None = None  # the model the client asked for
    scanner: str | None = None
    backend: str | None = None
    model: str | None = None
    model_version: str | None = None
    category: str | None = None
    score: float | None = None
    threshold: float | None = None
    content_sha256: str | None = None
    excerpt: str | None = None
    owner: str | None = None
    review_status: str = "open"
    id: str = field(default_factory=lambda: "inc_" + uuid.uuid4().hex[:24])
    occurred_at: datetime | None = None  # set for a record replayed from the outbox


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class VerifyReport:
    ok: bool
    checked: int  # chain records: incidents and sealed review events
    problems: list[str]
    notes: list[str] = field(default_factory=list)


def row_dict(row: IncidentRow) -> dict[str, Any]:
    out = {c.name: getattr(row, c.name) for c in IncidentRow.__table__.columns}
    out["created_at"] = row.created_at.isoformat() if row.created_at else None
    out["decided_at"] = row.decided_at.isoformat() if row.decided_at else None
    return out


def sealed_fields(rec: dict[str, Any]) -> dict[str, Any]:
    """An incident's sealed fields from its :func:`row_dict`, as they were hashed."""
    fields = {k: rec[k] for k in SEALED_FIELDS}
    at = datetime.fromisoformat(rec["created_at"])
    # sealed as UTC; SQLite returns it naive, PostgreSQL in the session's time zone
    fields["created_at"] = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
    return fields


def incident_link(rec: dict[str, Any], purged: events.Purged | None = None) -> events.Link:
    """The incident ``rec`` (a :func:`row_dict`) as a link of the chain; ``purged``: the
    sealed purge event's word for it, where its content was purged past retention."""
    fields = sealed_fields(rec)
    computed = events.vouched_hash(purged, fields, rec["record_hash"],
                                   record_hash(rec["prev_hash"], fields))
    return events.Link(rec["seq"], f"record {rec['seq']} ({rec['id']})", rec["prev_hash"],
                       rec["record_hash"], computed)


def walk(links: Iterable[events.Link], prev: str = GENESIS,
         expected_seq: int = 1) -> tuple[list[str], int, str, int]:
    """The link checks of the chain over ``links`` (in sequence order) from ``prev`` and
    ``expected_seq``: (problems, links checked, the last hash, the next sequence number)."""
    problems: list[str] = []
    checked = 0
    for link in links:
        seq = link.seq
        if seq < expected_seq:
            problems.append(f"{link.label}: sequence number {seq} used twice")
        elif seq != expected_seq:
            problems.append(f"records {expected_seq}..{seq - 1} missing (deleted?)")
        if link.prev_hash != prev:
            problems.append(f"{link.label}: previous-hash link broken")
        if link.computed_hash != link.stored_hash:
            problems.append(f"{link.label}: content does not match its hash")
        prev, expected_seq, checked = link.stored_hash, seq + 1, checked + 1
    return problems, checked, prev, expected_seq


class IncidentStore:
    """SQL-backed store. Sync methods run in worker threads; ``*_async`` wrap them. Every
    database failure leaves as a :class:`guardrail.errors.StoreError` (the engine's boundary,
    and :func:`guardrail.db.store_errors` here)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = session_factory(engine)
        self._pg = engine.dialect.name == "postgresql"

    # -- append -----------------------------------------------------------------------------
    def lock_head(self, s: Session) -> ChainHead:
        """The chain head, locked for this transaction (row lock on PostgreSQL; SQLite's
        BEGIN IMMEDIATE already holds the write lock). Every append, of incidents or of review
        events (:mod:`guardrail.incidents.events`), goes through it."""
        stmt = select(ChainHead).where(ChainHead.id == 1)
        if self._pg:
            stmt = stmt.with_for_update()
        head = s.execute(stmt).scalar_one_or_none()
        if head is None and self._pg:
            # the first append: concurrent ones must not both insert the head (a unique
            # violation); one inserts, the others wait on its row lock
            from sqlalchemy.dialects.postgresql import insert

            s.execute(insert(ChainHead).values(id=1, last_seq=0, last_hash=GENESIS, count=0)
                      .on_conflict_do_nothing(index_elements=["id"]))
            head = s.execute(stmt).scalar_one()
        elif head is None:  # SQLite: BEGIN IMMEDIATE already serialises writers
            head = ChainHead(id=1, last_seq=0, last_hash=GENESIS, count=0)
            s.add(head)
            s.flush()
        return head

    def append(self, drafts: list[IncidentDraft]) -> list[str]:
        if not drafts:
            return []
        with store_errors(), self.sessions.begin() as s:
            head = self.lock_head(s)
            prev, seq = head.last_hash, head.last_seq
            now = datetime.now(UTC)
            for d in drafts:
                seq += 1
                at = d.occurred_at or now  # an outbox record keeps the time it happened
                own = {k: v for k, v in d.__dict__.items() if k != "occurred_at"}
                h = record_hash(prev, {**own, "seq": seq, "created_at": at})
                s.add(IncidentRow(
                    seq=seq, created_at=at, prev_hash=prev, record_hash=h, redress=[],
                    reviewer=None, **own,
                ))
                prev = h
            head.last_seq, head.last_hash, head.count = seq, prev, head.count + len(drafts)
        return [d.id for d in drafts]

    async def append_async(self, drafts: list[IncidentDraft]) -> list[str]:
        if not drafts:
            return []
        return await anyio.to_thread.run_sync(self.append, drafts)

    # -- read -------------------------------------------------------------------------------
    def get(self, incident_id: str) -> dict[str, Any] | None:
        with store_errors(), self.sessions() as s:
            row = s.execute(select(IncidentRow).where(IncidentRow.id == incident_id)).scalar()
            return row_dict(row) if row else None

    def list(
        self,
        *,
        limit: int = 50,
        before_seq: int | None = None,
        filters: dict[str, Any] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        stmt = select(IncidentRow).order_by(IncidentRow.seq.desc()).limit(limit)
        if before_seq is not None:
            stmt = stmt.where(IncidentRow.seq < before_seq)
        for name, value in (filters or {}).items():
            if value is not None:
                stmt = stmt.where(getattr(IncidentRow, name) == value)
        if since is not None:
            stmt = stmt.where(IncidentRow.created_at >= since)
        if until is not None:
            stmt = stmt.where(IncidentRow.created_at < until)
        with store_errors(), self.sessions() as s:
            return [row_dict(r) for r in s.execute(stmt).scalars()]

    def iter_all(self, batch: int = 1000) -> Iterator[dict[str, Any]]:
        last = 0
        while True:
            with store_errors(), self.sessions() as s:
                rows = s.execute(select(IncidentRow).where(IncidentRow.seq > last)
                                 .order_by(IncidentRow.seq).limit(batch)).scalars().all()
            if not rows:
                return
            for r in rows:
                yield row_dict(r)
            last = rows[-1].seq

    def ping(self) -> None:
        with store_errors(), self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def count(self) -> int:
        with store_errors(), self.sessions() as s:
            return int(s.execute(select(func.count()).select_from(IncidentRow)).scalar_one())

    # -- verify -----------------------------------------------------------------------------
    def _links(self) -> Iterator[events.Link]:
        purged = events.purged_records(self)  # records a sealed purge event vouches for
        for rec in self.iter_all():
            yield incident_link(rec, purged.get(rec["seq"]))

    def verify(self) -> VerifyReport:
        """Walk the chain in sequence order: incidents and review events together."""
        with store_errors():
            return self._verify()

    def _verify(self) -> VerifyReport:
        problems, checked, prev, expected_seq = walk(
            heapq.merge(self._links(), events.links(self), key=lambda x: x.seq))
        with self.sessions() as s:
            head = s.execute(select(ChainHead).where(ChainHead.id == 1)).scalar_one_or_none()
        if head is not None:
            if head.last_seq != expected_seq - 1 or head.last_hash != prev:
                problems.append(
                    f"chain head says last record is {head.last_seq}, found {expected_seq - 1}"
                    " (tail deleted or head edited)"
                )
            if head.count != checked:
                problems.append(f"chain head counts {head.count} records, found {checked}")
        elif checked:
            problems.append("chain head missing")
        more, notes = events.problems(self)
        problems.extend(more)
        return VerifyReport(ok=not problems, checked=checked, problems=problems, notes=notes)
