"""Review decisions on incidents, and accesses to their content: each one names the person
and is sealed into the incident chain (:mod:`guardrail.incidents.events`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from guardrail.errors import BadRequestError, NotFoundError, PermissionDeniedError
from guardrail.incidents import events
from guardrail.incidents.models import IncidentRow
from guardrail.incidents.store import IncidentStore, row_dict
from guardrail.people.roles import Perm, Principal
from guardrail.review.models import ReviewEventRow

# What a reviewer can conclude. "open"/"pending_review" are where incidents start.
STATUSES = {
    "pending_review": "Waiting for a reviewer",
    "open": "Open",
    "in_review": "A reviewer is looking at it",
    "confirmed": "Confirmed: the intervention was right (e.g. infringing copy)",
    "cleared": "Cleared: false positive or licensed use",
    "escalated": "Escalated to the remediation owner / legal",
    "resolved": "Resolved: remediation done",
}
OPEN_STATUSES = ("pending_review", "open", "in_review", "escalated")


def review(store: IncidentStore, incident_id: str, *, status: str,
           reviewer: Principal, note: str = "", owner: str | None = None) -> dict[str, Any]:
    """Record a decision by ``reviewer`` (a person with the review permission)."""
    if status not in STATUSES:
        raise BadRequestError(f"Unknown review status {status!r}; one of {sorted(STATUSES)}.",
                              param="status", code="invalid_value")
    who = reviewer
    if not who.is_person:
        raise PermissionDeniedError(
            "A decision names a person: sign in, or use a person's token "
            "(guardrail users token NAME), not the admin key.", code="person_required")
    if not who.can(Perm.REVIEW):
        raise PermissionDeniedError(f"The {who.role} role cannot record decisions.",
                                    code="insufficient_role")
    with store.sessions.begin() as s:
        row = s.execute(select(IncidentRow).where(IncidentRow.id == incident_id)).scalar()
        if row is None:
            raise NotFoundError(f"No incident with id {incident_id!r}.")
        events.seal(store, s, ReviewEventRow(
            incident_id=incident_id, created_at=datetime.now(UTC), kind=events.DECISION,
            reviewer=who.actor[:128], person_id=who.person_id, role=who.role,
            from_status=row.review_status, to_status=status, owner=owner or None,
            note=note[:4000]))
        row.review_status = status
        row.reviewer = who.actor[:128]
        if owner:
            row.owner = owner[:128]
        s.flush()
        return row_dict(row)


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
            kinds: tuple[str, ...] = (events.DECISION,)) -> list[dict[str, Any]]:
    """The incident's decisions (``kinds`` adds accesses), oldest first."""
    with store.sessions() as s:
        rows = s.execute(select(ReviewEventRow)
                         .where(ReviewEventRow.incident_id == incident_id,
                                ReviewEventRow.kind.in_(kinds))
                         .order_by(ReviewEventRow.id)).scalars().all()
        return [_event(r) for r in rows]


def queue(store: IncidentStore, *, statuses: tuple[str, ...] = OPEN_STATUSES,
          scanner: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    stmt = (select(IncidentRow).where(IncidentRow.review_status.in_(statuses))
            .order_by(IncidentRow.seq.desc()).limit(limit))
    if scanner:
        stmt = stmt.where(IncidentRow.scanner == scanner)
    with store.sessions() as s:
        return [row_dict(r) for r in s.execute(stmt).scalars()]
