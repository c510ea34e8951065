"""What the review pages read: the queue (filters, sorting, counts), an incident with its
evidence (the access sealed into the chain first), and its history.

Decisions and assignment are :mod:`guardrail.review.decisions`'. Listing the queue records no
access: a queue row carries no evidence and no excerpt, only what the incident is about (its
scanner, category, corpus, rights holder, score); only opening an incident shows its content,
and that is recorded (:func:`open_incident`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Literal

from sqlalchemy import Select, func, select

from guardrail.db import store_errors
from guardrail.errors import PermissionDeniedError
from guardrail.incidents import events
from guardrail.incidents.models import IncidentRow
from guardrail.incidents.store import IncidentStore, row_dict
from guardrail.people.roles import Perm, Principal
from guardrail.review import decisions
from guardrail.review.models import ReviewEventRow

Sort = Literal["oldest", "newest", "score"]
SORTS: tuple[Sort, ...] = ("oldest", "newest", "score")
# the queue's status choices: groups, then every single status
SHOW = ("open", "overdue", "decided", "all", *decisions.STATUSES)
BATCH = 500
UNASSIGNED = "-"  # QueueFilter.assignee: nobody's


@dataclass(frozen=True)
class QueueFilter:
    """One queue view. Every set field narrows the list; ``since``/``until`` are days in the
    viewer's time zone ``tz`` (``until`` inclusive)."""

    show: str = "open"
    scanner: str | None = None  # the incident's lead scanner
    finding_scanner: str | None = None  # any of its findings' scanners (or the lead one)
    category: str | None = None  # the lead category or any finding's
    corpus: str | None = None  # an IP finding's corpus
    rights_holder: str | None = None  # an IP finding's rights holder (case-blind, part of it)
    tenant: str | None = None
    system: str | None = None
    policy: str | None = None
    assignee: str | None = None  # a person's name, or UNASSIGNED
    since: date | None = None
    until: date | None = None
    sort: Sort = "oldest"
    tz: tzinfo = UTC
    limit: int = 200

    @property
    def statuses(self) -> tuple[str, ...]:
        if self.show in ("open", "overdue"):
            return decisions.OPEN_STATUSES
        if self.show == "decided":
            return decisions.DECIDED_STATUSES
        if self.show in decisions.STATUSES:
            return (self.show,)
        return tuple(decisions.STATUSES)

    @property
    def reads_evidence(self) -> bool:
        """Whether a filter looks inside the findings (applied here, not in SQL)."""
        return bool(self.finding_scanner or self.category or self.corpus or self.rights_holder)

    def active(self) -> dict[str, str]:
        """The set filters, as the page's query string spells them."""
        out: dict[str, str] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("tz", "limit") or v is None or v == "":
                continue
            out[f.name] = v.isoformat() if isinstance(v, date) else str(v)
        return out


@dataclass(frozen=True)
class Counts:
    open: int
    overdue: int
    decided: int


@dataclass(frozen=True)
class QueueView:
    rows: list[dict[str, Any]]
    counts: Counts
    more: bool  # more rows match than were listed


def findings(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The incident's recorded findings (none for a scanner failure)."""
    got = (row.get("evidence") or {}).get("findings")
    return [f for f in got if isinstance(f, dict)] if isinstance(got, list) else []


def _ev(f: dict[str, Any]) -> dict[str, Any]:
    ev = f.get("evidence")
    return ev if isinstance(ev, dict) else {}


def matches(row: dict[str, Any], filt: QueueFilter) -> bool:
    """The filters on findings (the others are SQL's, :func:`_where`)."""
    fs = findings(row)
    if filt.finding_scanner and filt.finding_scanner != row.get("scanner") and not any(
            f.get("scanner") == filt.finding_scanner for f in fs):
        return False
    if filt.category and filt.category != row.get("category") and not any(
            f.get("category") == filt.category for f in fs):
        return False
    if filt.corpus and not any(_ev(f).get("corpus") == filt.corpus for f in fs):
        return False
    holder = (filt.rights_holder or "").strip().casefold()
    return not holder or any(holder in str(_ev(f).get("rights_holder") or "").casefold()
                             for f in fs)


def _day_start(d: date, tz: tzinfo) -> datetime:
    return datetime.combine(d, time(0), tzinfo=tz).astimezone(UTC)


def _where(stmt: Select[Any], filt: QueueFilter, statuses: tuple[str, ...]) -> Select[Any]:
    stmt = stmt.where(IncidentRow.review_status.in_(statuses))
    for col, value in ((IncidentRow.scanner, filt.scanner), (IncidentRow.tenant, filt.tenant),
                       (IncidentRow.system_id, filt.system),
                       (IncidentRow.policy_name, filt.policy)):
        if value:
            stmt = stmt.where(col == value)
    if filt.assignee == UNASSIGNED:
        stmt = stmt.where(IncidentRow.assignee.is_(None))
    elif filt.assignee:
        stmt = stmt.where(IncidentRow.assignee == filt.assignee)
    if filt.since:
        stmt = stmt.where(IncidentRow.created_at >= _day_start(filt.since, filt.tz))
    if filt.until:
        stmt = stmt.where(IncidentRow.created_at
                          < _day_start(filt.until + timedelta(days=1), filt.tz))
    return stmt


def _order(stmt: Select[Any], sort: Sort) -> Select[Any]:
    if sort == "score":
        return stmt.order_by(IncidentRow.score.desc().nulls_last(), IncidentRow.seq)
    if sort == "newest":
        return stmt.order_by(IncidentRow.seq.desc())
    return stmt.order_by(IncidentRow.seq)


def _rows(store: IncidentStore, stmt: Select[Any]) -> Iterator[dict[str, Any]]:
    with store_errors(), store.sessions() as s:
        for row in s.execute(stmt.execution_options(yield_per=BATCH)).scalars():
            yield row_dict(row)


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """A queue row: what the incident is about, none of its content (no excerpt, no quotes)."""
    fs = findings(row)
    ip = next((_ev(f) for f in fs if _ev(f).get("corpus")), {})
    keep = ("id", "created_at", "action", "kind", "scanner", "category", "score", "tenant",
            "system_id", "policy_name", "policy_version", "review_status", "reviewer",
            "assignee", "decided_at", "route")
    return {**{k: row.get(k) for k in keep},
            "finding_scanners": sorted({str(f.get("scanner")) for f in fs if f.get("scanner")}),
            "corpus": ip.get("corpus"), "rights_holder": ip.get("rights_holder"),
            "work_title": ip.get("title")}


Overdue = Callable[[dict[str, Any]], bool]


def queue(store: IncidentStore, filt: QueueFilter, overdue: Overdue) -> QueueView:
    """The rows of one queue view (``filt.limit`` at most, sorted), and the counts of open,
    overdue and decided incidents under the same filters (whatever ``filt.show`` says).
    ``overdue`` is the policy's SLA (:func:`guardrail.review.decisions.overdue`)."""
    statuses = filt.statuses
    listed: list[dict[str, Any]] = []
    more = False
    stmt = _order(_where(select(IncidentRow), filt, statuses), filt.sort)
    if not filt.reads_evidence and filt.show != "overdue":
        stmt = stmt.limit(filt.limit + 1)
    for row in _rows(store, stmt):
        if not matches(row, filt) or (filt.show == "overdue" and not overdue(row)):
            continue
        if len(listed) == filt.limit:
            more = True
            break
        listed.append({**summary(row), "overdue": overdue(row)})
    return QueueView(listed, counts(store, filt, overdue), more)


def counts(store: IncidentStore, filt: QueueFilter, overdue: Overdue) -> Counts:
    """Open and overdue from the open rows; decided by SQL, unless a filter looks inside the
    findings (then the decided rows are read too)."""
    n_open = n_overdue = 0
    for row in _rows(store, _where(select(IncidentRow), filt, decisions.OPEN_STATUSES)):
        if matches(row, filt):
            n_open += 1
            n_overdue += overdue(row)
    if filt.reads_evidence:
        n_decided = sum(matches(row, filt) for row in _rows(
            store, _where(select(IncidentRow), filt, decisions.DECIDED_STATUSES)))
    else:
        with store_errors(), store.sessions() as s:
            n_decided = int(s.execute(_where(select(func.count()).select_from(IncidentRow),
                                             filt, decisions.DECIDED_STATUSES)).scalar() or 0)
    return Counts(n_open, n_overdue, n_decided)


def open_incident(store: IncidentStore, incident_id: str, who: Principal,
                  channel: str) -> dict[str, Any] | None:
    """The incident with its evidence, for ``who``; the access is sealed into the chain
    first (None, and nothing recorded, when there is no such incident)."""
    if not who.can(Perm.READ_INCIDENTS):
        raise PermissionDeniedError(f"The {who.role} role cannot read incidents.",
                                    code="insufficient_role")
    with store.sessions.begin() as s:
        row = s.execute(select(IncidentRow).where(IncidentRow.id == incident_id)).scalar()
        if row is None:
            return None
        events.seal(store, s, ReviewEventRow(
            incident_id=incident_id, created_at=datetime.now(UTC), kind=events.ACCESS,
            reviewer=who.actor[:128], person_id=who.person_id, role=who.role,
            from_status=row.review_status, to_status=row.review_status, owner=None,
            note=channel[:4000]))
        return row_dict(row)


def _event(r: ReviewEventRow) -> dict[str, Any]:
    at = r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=UTC)
    return {"at": at.isoformat(), "kind": r.kind, "reviewer": r.reviewer,
            "person_id": r.person_id, "role": r.role, "from": r.from_status,
            "to": r.to_status, "owner": r.owner, "note": r.note, "seq": r.seq}


def history(store: IncidentStore, incident_id: str,
            kinds: tuple[str, ...] | None = (events.DECISION,)) -> list[dict[str, Any]]:
    """The incident's decisions, oldest first (``kinds``: other kinds of event, e.g.
    accesses and assignments; None: every event)."""
    stmt = select(ReviewEventRow).where(ReviewEventRow.incident_id == incident_id)
    if kinds is not None:
        stmt = stmt.where(ReviewEventRow.kind.in_(kinds))
    with store.sessions() as s:
        return [_event(r) for r in s.execute(stmt.order_by(ReviewEventRow.id)).scalars()]
