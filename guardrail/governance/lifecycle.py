"""Incident lifecycle: triage -> owner_assigned -> remediation -> resolved -> closed.

Routes: :mod:`guardrail.governance.lifecycle_routes` (``router``: the JSON API under
``/v1/guardrail/incidents/{id}/lifecycle``; ``pages``: the ``/governance/incidents`` page).

The review decision (:mod:`guardrail.review.decisions`: was the intervention right?) and the
lifecycle (what the organisation did about the incident) are separate tracks of one incident.
Every lifecycle step is a sealed event of the incident chain
(:func:`guardrail.incidents.events.seal`), so ``guardrail incidents verify`` covers it:

=========== ===========================================================================
lifecycle    a step: ``from_status`` -> ``to_status``, the person, the time, the reason
             (``note``) and, where one was named, the remediation ``owner``
serious      the incident was flagged serious: ``to_status`` is its kind (a key of
             ``GUARDRAIL_INCIDENT_CLOCKS``), which starts the reporting clocks
report       a report to an authority was made: ``to_status`` is the clock it stops
=========== ===========================================================================

``incident_lifecycle`` holds one row per incident in the lifecycle, for queries; it is a
projection of the sealed events, and :func:`chain_problems` (run by verify) fails any row
whose status, owner, serious kind or reported clocks differ from what its events say.

Order: each step is the next one; none is skipped, none is repeated, and ``closed`` is
final (409 ``lifecycle_order`` otherwise). Roles (a person, never the admin key): triage is
open to reviewers too (they see incidents first, in the review queue); every other step, the
serious flag and reports need the governance permission (admin, compliance).

Clocks run from the first serious flag (the moment the organisation recorded that it was
aware); changing the kind later changes the deadlines, not their start. A clock is overdue
when its deadline has passed without a report for it, whatever the lifecycle status.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import JSON, DateTime, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from guardrail.db import Base, store_errors
from guardrail.errors import BadRequestError, ConflictError, NotFoundError, PermissionDeniedError
from guardrail.incidents import events
from guardrail.incidents.events import IncidentEventRow
from guardrail.incidents.models import IncidentRow
from guardrail.incidents.store import IncidentStore
from guardrail.people.roles import Perm, Principal
from guardrail.settings import DEFAULT_INCIDENT_CLOCKS

if TYPE_CHECKING:
    from guardrail.deps import AppState

STEPS = ("triage", "owner_assigned", "remediation", "resolved", "closed")
NONE = "none"  # not in the lifecycle yet
LIFECYCLE, SERIOUS, REPORT = "lifecycle", "serious", "report"
KINDS = (LIFECYCLE, SERIOUS, REPORT)
Clocks = Mapping[str, Mapping[str, float]]


class LifecycleRow(Base):
    __tablename__ = "incident_lifecycle"

    incident_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    owner: Mapped[str | None] = mapped_column(String(128))
    serious_kind: Mapped[str | None] = mapped_column(String(32), index=True)
    serious_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reported: Mapped[dict[str, str]] = mapped_column(JSON)  # clock -> ISO time of the report
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(String(128))


def _utc(t: datetime) -> datetime:
    return (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).astimezone(UTC)


def next_step(status: str) -> str | None:
    i = STEPS.index(status) + 1 if status in STEPS else 0
    return STEPS[i] if i < len(STEPS) else None


def _check_who(who: Principal, to: str | None, governance: bool) -> None:
    if not who.is_person:
        raise PermissionDeniedError(
            "A lifecycle step names a person: use a person's token (guardrail users token "
            "NAME), not the admin key.", code="person_required")
    if who.can(Perm.GOVERNANCE):
        return
    if to == "triage" and not governance and who.can(Perm.REVIEW):
        return
    raise PermissionDeniedError(
        f"The {who.role} role cannot record this lifecycle step (triage: reviewer, "
        "compliance or admin; the rest, serious flags and reports: compliance or admin).",
        code="insufficient_role")


@dataclass(frozen=True)
class Change:
    """One request: a step (``to``), a serious flag (``serious``), a report (``reported``),
    or several at once (sealed as that many events, in that order)."""

    reason: str
    to: str | None = None
    owner: str | None = None
    serious: str | None = None
    reported: str | None = None


def _validate(c: Change, current: str, clocks: Clocks) -> None:
    if not (c.to or c.serious or c.reported):
        raise BadRequestError("Nothing to record: give to, serious or reported.",
                              code="invalid_value")
    if not c.reason.strip():
        raise BadRequestError("A lifecycle step needs a reason.", param="reason",
                              code="reason_required")
    if c.to is not None:
        if c.to not in STEPS:
            raise BadRequestError(f"Unknown lifecycle status {c.to!r}; one of {list(STEPS)}.",
                                  param="to", code="invalid_value")
        want = next_step(current)
        if c.to != want:
            raise ConflictError(
                f"This incident's lifecycle is {current!r}: the next step is "
                f"{want or 'none (closed is final)'!r}, not {c.to!r} (no step is skipped or "
                "repeated).", code="lifecycle_order")
        if c.to == "owner_assigned" and not (c.owner or "").strip():
            raise BadRequestError("owner_assigned names the remediation owner (owner).",
                                  param="owner", code="invalid_value")
    if c.serious is not None and c.serious not in clocks:
        raise BadRequestError(f"Unknown serious-incident kind {c.serious!r}; one of "
                              f"{sorted(clocks)}.", param="serious.kind", code="invalid_value")


def change(store: IncidentStore, incident_id: str, c: Change, who: Principal,
           clocks: Clocks | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Record ``c`` on the incident: each part a sealed event, in the caller's name."""
    clocks = DEFAULT_INCIDENT_CLOCKS if clocks is None else clocks
    _check_who(who, c.to, governance=bool(c.serious or c.reported or c.owner))
    now = _utc(now or datetime.now(UTC))
    reason = c.reason.strip()[:4000]
    with store_errors(), store.sessions.begin() as s:
        store.lock_head(s)  # serialises steps: the status read below is the latest
        inc = s.execute(select(IncidentRow).where(IncidentRow.id == incident_id)).scalar()
        if inc is None:
            raise NotFoundError(f"No incident with id {incident_id!r}.")
        row = s.get(LifecycleRow, incident_id)
        current = row.status if row is not None else NONE
        _validate(c, current, clocks)
        kind = c.serious or (row.serious_kind if row is not None else None)
        if c.serious is not None and row is not None and row.serious_kind == c.serious:
            raise ConflictError(f"Already flagged serious ({c.serious}).",
                                code="already_serious")
        if c.reported is not None:
            if kind is None:
                raise ConflictError("Only a serious incident has reporting clocks: flag it "
                                    "first (serious).", code="not_serious")
            if c.reported not in clocks.get(kind, {}):
                raise BadRequestError(f"A {kind} incident has the clocks "
                                      f"{sorted(clocks.get(kind, {}))}, not {c.reported!r}.",
                                      param="reported", code="invalid_value")
            if row is not None and c.reported in (row.reported or {}):
                raise ConflictError(f"The {c.reported} report is already recorded.",
                                    code="already_reported")
        if row is None:
            row = LifecycleRow(incident_id=incident_id, status=NONE, reported={},
                               updated_at=now, updated_by=who.actor[:128])
            s.add(row)
        owner = (c.owner or "").strip()[:128] or None

        def seal(kind_: str, from_: str, to_: str, owner_: str | None = None) -> None:
            events.seal(store, s, IncidentEventRow(
                incident_id=incident_id, created_at=now, kind=kind_, reviewer=who.actor[:128],
                person_id=who.person_id, role=who.role, from_status=from_, to_status=to_,
                owner=owner_, note=reason))

        if c.to is not None:
            seal(LIFECYCLE, current, c.to, owner)
            row.status = c.to
            if owner:
                row.owner = inc.owner = owner
        if c.serious is not None:
            seal(SERIOUS, row.serious_kind or "", c.serious)
            row.serious_kind = c.serious
            row.serious_at = row.serious_at or now
        if c.reported is not None:
            seal(REPORT, row.serious_kind or "", c.reported)
            row.reported = {**(row.reported or {}), c.reported: now.isoformat()}
        row.updated_at, row.updated_by = now, who.actor[:128]
        s.flush()
        return _view(row, clocks, now)


def _clock_views(row: LifecycleRow, clocks: Clocks, now: datetime) -> list[dict[str, Any]]:
    if row.serious_kind is None or row.serious_at is None:
        return []
    start = _utc(row.serious_at)
    out = []
    for name, days in sorted(clocks.get(row.serious_kind, {}).items()):
        due = start + timedelta(days=float(days))
        done = (row.reported or {}).get(name)
        out.append({"clock": name, "days": days, "due_at": due.isoformat(), "reported_at": done,
                    "overdue": done is None and now > due})
    return out


def _view(row: LifecycleRow, clocks: Clocks, now: datetime) -> dict[str, Any]:
    return {"object": "guardrail.incident_lifecycle", "incident_id": row.incident_id,
            "status": row.status, "next": next_step(row.status), "owner": row.owner,
            "serious": None if row.serious_kind is None else {
                "kind": row.serious_kind,
                "since": _utc(row.serious_at).isoformat() if row.serious_at else None,
                "clocks": _clock_views(row, clocks, now)},
            "updated_at": _utc(row.updated_at).isoformat(), "updated_by": row.updated_by}


def view(store: IncidentStore, incident_id: str, clocks: Clocks | None = None,
         now: datetime | None = None) -> dict[str, Any]:
    """The incident's lifecycle and its sealed steps (oldest first)."""
    clocks = DEFAULT_INCIDENT_CLOCKS if clocks is None else clocks
    now = _utc(now or datetime.now(UTC))
    with store_errors(), store.sessions() as s:
        if s.execute(select(IncidentRow.id).where(IncidentRow.id == incident_id)).first() \
                is None:
            raise NotFoundError(f"No incident with id {incident_id!r}.")
        row = s.get(LifecycleRow, incident_id)
        hist = s.execute(select(IncidentEventRow)
                         .where(IncidentEventRow.incident_id == incident_id,
                                IncidentEventRow.kind.in_(KINDS))
                         .order_by(IncidentEventRow.seq)).scalars().all()
    out: dict[str, Any] = _view(row, clocks, now) if row is not None else {
        "object": "guardrail.incident_lifecycle", "incident_id": incident_id, "status": NONE,
        "next": STEPS[0], "owner": None, "serious": None, "updated_at": None,
        "updated_by": None}
    out["history"] = [{"seq": e.seq, "kind": e.kind, "at": _utc(e.created_at).isoformat(),
                       "by": e.reviewer, "role": e.role, "from": e.from_status,
                       "to": e.to_status, "owner": e.owner, "reason": e.note} for e in hist]
    return out


def listing(store: IncidentStore, clocks: Clocks | None = None, now: datetime | None = None,
            limit: int = 500) -> list[dict[str, Any]]:
    """Incidents in the lifecycle, serious and most recently changed first."""
    clocks = DEFAULT_INCIDENT_CLOCKS if clocks is None else clocks
    now = _utc(now or datetime.now(UTC))
    with store_errors(), store.sessions() as s:
        rows = s.execute(select(LifecycleRow).order_by(
            LifecycleRow.serious_kind.is_(None), LifecycleRow.updated_at.desc())
            .limit(limit)).scalars().all()
    return [_view(r, clocks, now) for r in rows]


def overdue_clocks(store: IncidentStore, now: datetime | None = None,
                   clocks: Clocks | None = None) -> dict[str, int]:
    """Reporting clocks past their deadline without a report, by clock name (every clock of
    ``clocks`` present, 0 where none is overdue). For metrics and the compliance report."""
    clocks = DEFAULT_INCIDENT_CLOCKS if clocks is None else clocks
    now = _utc(now or datetime.now(UTC))
    out = {name: 0 for spec in clocks.values() for name in spec}
    with store_errors(), store.sessions() as s:
        rows = s.execute(select(LifecycleRow).where(LifecycleRow.serious_kind.is_not(None))
                         ).scalars().all()
    for r in rows:
        for c in _clock_views(r, clocks, now):
            if c["overdue"]:
                out[c["clock"]] = out.get(c["clock"], 0) + 1
    return out


class OverdueCollector(Collector):
    """``guardrail_incidents_overdue{clock}``, read from the store at scrape time (NaN while
    the store is unreachable, so an outage is not read as "nothing overdue")."""

    NAME = "guardrail_incidents_overdue"
    HELP = "Serious incidents whose reporting clock has run out without a report, by clock"

    def __init__(self, store: IncidentStore, clocks: Clocks) -> None:
        self.store, self.clocks = store, clocks

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.NAME, self.HELP, labels=["clock"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily(self.NAME, self.HELP, labels=["clock"])
        try:
            got: dict[str, float] = {k: float(v) for k, v in
                                     overdue_clocks(self.store, None, self.clocks).items()}
        except Exception:  # noqa: BLE001 - a scrape must not fail with the store
            got = {name: math.nan for spec in self.clocks.values() for name in spec}
        for name, value in sorted(got.items()):
            g.add_metric([name], value)
        yield g


def setup(state: AppState) -> None:
    """Register the overdue gauge on the app's registry (once per app)."""
    if state.extras.get("lifecycle_collector") is None:
        c = OverdueCollector(state.store, state.settings.incident_clocks)
        state.metrics.registry.register(c)
        state.extras["lifecycle_collector"] = c


# -- verify (guardrail.incidents.events.problems calls this) ---------------------------------

@dataclass
class _Projection:
    status: str = NONE
    owner: str | None = None
    serious: str | None = None
    reported: frozenset[str] = frozenset()


def _project(s: Session, batch: int = 5000) -> dict[str, _Projection]:
    out: dict[str, _Projection] = {}
    last = 0
    while True:
        rows = s.execute(select(IncidentEventRow.seq, IncidentEventRow.incident_id,
                                IncidentEventRow.kind, IncidentEventRow.to_status,
                                IncidentEventRow.owner)
                         .where(IncidentEventRow.seq > last, IncidentEventRow.kind.in_(KINDS))
                         .order_by(IncidentEventRow.seq).limit(batch)).all()
        if not rows:
            return out
        for _seq, inc_id, kind, to_status, owner in rows:
            p = out.setdefault(inc_id, _Projection())
            if kind == LIFECYCLE:
                p.status, p.owner = to_status, owner or p.owner
            elif kind == SERIOUS:
                p.serious = to_status
            else:
                p.reported = p.reported | {to_status}
        last = int(rows[-1][0] or 0)


def chain_problems(store: IncidentStore) -> Iterator[str]:
    """Lifecycle rows (and incident owners) that are not what their sealed events say."""
    with store.sessions() as s:
        want = _project(s)
        rows = s.execute(select(LifecycleRow)).scalars().all()
        owners = dict(s.execute(select(IncidentRow.id, IncidentRow.owner)
                                .where(IncidentRow.id.in_(list(want)))).all()) if want else {}
    seen: set[str] = set()
    for r in rows:
        seen.add(r.incident_id)
        p = want.get(r.incident_id, _Projection())
        got = (r.status, r.owner, r.serious_kind, frozenset(r.reported or {}))
        if got != (p.status, p.owner, p.serious, p.reported):
            yield (f"incident {r.incident_id}: lifecycle {r.status!r} (owner {r.owner!r}, "
                   f"serious {r.serious_kind!r}, reported {sorted(r.reported or {})}) is not "
                   f"its sealed lifecycle events ({p.status!r}, owner {p.owner!r}, serious "
                   f"{p.serious!r}, reported {sorted(p.reported)})")
        if p.owner is not None and owners.get(r.incident_id) != p.owner:
            yield (f"incident {r.incident_id}: owner {owners.get(r.incident_id)!r} is not the "
                   f"one its last sealed lifecycle step named ({p.owner!r})")
    for inc_id in sorted(set(want) - seen):
        yield f"incident {inc_id}: sealed lifecycle events but no lifecycle record (deleted?)"
