"""Review events on incidents, sealed into the incident chain.

Each decision (a status change, by a person) and each access to an incident's content (who
opened the evidence) is a row of ``incident_reviews`` and a link of the tamper-evident chain:
it takes the next sequence number from the chain head, and its hash covers its fields and the
previous record's hash, whether that record is an incident or an event. ``verify`` walks both
tables in sequence order, so an edited, inserted or deleted event breaks the chain like an
edited incident; it also checks that each incident's review status and reviewer are those of
its last sealed decision. Events written before this (migration 0005) carry no seal and are
reported, not failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import BigInteger, DateTime, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from guardrail.db import Base
from guardrail.incidents.chain import EVENT_SEALED_FIELDS, event_hash, record_hash
from guardrail.incidents.models import IncidentRow

if TYPE_CHECKING:
    from guardrail.incidents.store import IncidentStore

DECISION = "decision"
ACCESS = "access"
# review statuses sealed before migration 0006 (one vocabulary since), read as today's words
LEGACY_STATUS = {"pending_review": "open", "in_review": "open", "confirmed": "rejected",
                 "resolved": "rejected", "cleared": "released"}


class IncidentEventRow(Base):
    __tablename__ = "incident_reviews"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(String(40), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(16), default=DECISION)  # decision | access
    reviewer: Mapped[str] = mapped_column(String(128))  # the person's name (or admin-key id)
    person_id: Mapped[int | None] = mapped_column(BigInteger)
    role: Mapped[str | None] = mapped_column(String(16))
    from_status: Mapped[str] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text, default="")
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)  # None: before 0005
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    record_hash: Mapped[str | None] = mapped_column(String(64))


class Link(NamedTuple):
    """One record of the chain as verify sees it."""

    seq: int
    label: str
    prev_hash: str
    stored_hash: str
    computed_hash: str


def _utc(t: datetime) -> datetime:
    return (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).astimezone(UTC)


def _fields(row: IncidentEventRow) -> dict[str, object]:
    out: dict[str, object] = {k: getattr(row, k) for k in EVENT_SEALED_FIELDS}
    out["created_at"] = _utc(row.created_at)
    return out


def seal(store: IncidentStore, s: Session, row: IncidentEventRow) -> IncidentEventRow:
    """Append ``row`` to the chain inside the caller's transaction ``s`` (which then holds the
    chain head's lock until it commits, as incident appends do)."""
    head = store.lock_head(s)
    row.created_at = _utc(row.created_at)
    row.seq, row.prev_hash = head.last_seq + 1, head.last_hash
    row.record_hash = event_hash(head.last_hash, _fields(row))
    s.add(row)
    head.last_seq, head.last_hash, head.count = row.seq, row.record_hash, head.count + 1
    return row


def links(store: IncidentStore, batch: int = 1000) -> Iterator[Link]:
    """Every sealed event in sequence order, with its recomputed hash."""
    last = 0
    while True:
        with store.sessions() as s:
            rows = s.execute(select(IncidentEventRow).where(IncidentEventRow.seq > last)
                             .order_by(IncidentEventRow.seq).limit(batch)).scalars().all()
        if not rows:
            return
        for r in rows:
            seq = int(r.seq or 0)
            yield Link(seq, f"review event {seq} ({r.kind} on {r.incident_id} by {r.reviewer})",
                       r.prev_hash or "", r.record_hash or "",
                       event_hash(r.prev_hash or "", _fields(r)))
        last = int(rows[-1].seq or 0)


def problems(store: IncidentStore) -> tuple[list[str], list[str]]:
    """What verify adds beyond the links: (problems, notes). Problems: an unsealed event newer
    than the first sealed one (inserted, or its seal removed), an incident whose review status
    or reviewer differs from its last sealed decision. Notes: events from before sealing."""
    out: list[str] = []
    with store.sessions() as s:
        first_sealed = s.execute(select(func.min(IncidentEventRow.id))
                                 .where(IncidentEventRow.seq.is_not(None))).scalar()
        unsealed = s.execute(select(IncidentEventRow.id).where(IncidentEventRow.seq.is_(None))
                             .order_by(IncidentEventRow.id)).scalars().all()
    legacy = [i for i in unsealed if first_sealed is None or i < first_sealed]
    for i in unsealed:
        if first_sealed is not None and i > first_sealed:
            out.append(f"review event id {i} is not sealed but was written after sealing began "
                       "(inserted, or its seal removed)")
    out.extend(_status_problems(store))
    out.extend(_governance_problems(store))
    notes = [f"{len(legacy)} review event(s) recorded before review events were sealed "
             "(migration 0005) are not covered"] if legacy else []
    return out, notes


def _status_problems(store: IncidentStore, batch: int = 500) -> Iterator[str]:
    last: dict[str, tuple[str, str]] = {}
    for row in _sealed_decisions(store):
        last[row[0]] = (row[1], row[2])
    ids = list(last)
    for i in range(0, len(ids), batch):
        with store.sessions() as s:
            got = s.execute(select(IncidentRow.id, IncidentRow.review_status,
                                   IncidentRow.reviewer)
                            .where(IncidentRow.id.in_(ids[i:i + batch]))).all()
        for inc_id, status, reviewer in got:
            want = last[inc_id]
            if (LEGACY_STATUS.get(status, status), reviewer) != (
                    LEGACY_STATUS.get(want[0], want[0]), want[1]):
                yield (f"incident {inc_id}: review status {status!r} by {reviewer!r} is not its "
                       f"last sealed decision ({want[0]!r} by {want[1]!r})")


def _sealed_decisions(store: IncidentStore, batch: int = 5000) -> Iterator[tuple[str, str, str]]:
    last = 0
    while True:
        with store.sessions() as s:
            rows = s.execute(select(IncidentEventRow.seq, IncidentEventRow.incident_id,
                                    IncidentEventRow.to_status, IncidentEventRow.reviewer)
                             .where(IncidentEventRow.seq > last,
                                    IncidentEventRow.kind == DECISION)
                             .order_by(IncidentEventRow.seq).limit(batch)).all()
        if not rows:
            return
        for _seq, inc_id, to_status, reviewer in rows:
            yield inc_id, to_status, reviewer
        last = int(rows[-1][0])


# -- governance records sealed into this chain (guardrail.governance) ------------------------
# Modules whose ``chain_problems(store)`` verify runs, where they exist: each checks that its
# table (lifecycle, redress answers) is what its sealed events say.
CHAIN_CHECKS = ("guardrail.governance.lifecycle", "guardrail.governance.redress")


def _governance_problems(store: IncidentStore) -> Iterator[str]:
    import importlib
    import importlib.util

    for module in CHAIN_CHECKS:
        if importlib.util.find_spec(module) is not None:
            yield from importlib.import_module(module).chain_problems(store)


# -- records purged past retention (guardrail.governance.retention) --------------------------
# A sealed ``purge`` event's note lists, for each record whose content it removed, the
# record's hash (kept) and the digest of what the record's sealed fields hold after the
# purge. Verify accepts such a record's stored hash where the event names it and the record
# still holds exactly what the purge left; the retention module's docstring gives the
# argument.
PURGE = "purge"
PURGED_PREFIX = "purged"  # the digest of a purged record's payload never reads as a link


class Purged(NamedTuple):
    record_hash: str  # the record's own hash, as sealed before the purge
    purged_sha256: str  # purged_digest() of its sealed fields after the purge


def purged_digest(fields: Mapping[str, object]) -> str:
    return record_hash(PURGED_PREFIX, dict(fields))


def purge_entries(note: str) -> Iterator[tuple[int, Purged]]:
    """The records one purge event's note vouches for (nothing, for a note not in the form)."""
    try:
        body = json.loads(note)
        records = body.get("records", []) if isinstance(body, dict) else []
        got = [(int(r["seq"]), Purged(str(r["record_hash"]), str(r["purged_sha256"])))
               for r in records]
    except (ValueError, TypeError, KeyError, AttributeError):
        return
    yield from got


def purged_records(store: IncidentStore) -> dict[int, Purged]:
    """seq -> what the sealed purge events say of each purged record."""
    out: dict[int, Purged] = {}
    with store.sessions() as s:
        for note in s.execute(select(IncidentEventRow.note)
                              .where(IncidentEventRow.kind == PURGE,
                                     IncidentEventRow.seq.is_not(None))
                              .order_by(IncidentEventRow.seq)).scalars():
            out.update(purge_entries(note))
    return out


def vouched_hash(purged: Purged | None, fields: Mapping[str, object], stored: str,
                 computed: str) -> str:
    """The hash verify compares with a record's stored one: ``computed`` (its content's), or
    for a purged record, ``stored`` where a purge event names that hash and the record holds
    what the purge left (else a value that matches nothing)."""
    if purged is None or computed == stored:
        return computed
    if purged.record_hash == stored and purged.purged_sha256 == purged_digest(fields):
        return stored
    return "purged record changed since its purge"
