"""Review decisions on incidents: status transitions, recorded in the review log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from guardrail.errors import BadRequestError, NotFoundError
from guardrail.incidents.models import IncidentRow
from guardrail.incidents.store import IncidentStore, row_dict
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


def review(store: IncidentStore, incident_id: str, *, status: str, reviewer: str,
           note: str = "", owner: str | None = None) -> dict[str, Any]:
    if status not in STATUSES:
        raise BadRequestError(f"Unknown review status {status!r}; one of {sorted(STATUSES)}.",
                              param="status", code="invalid_value")
    reviewer = reviewer.strip()
    if not reviewer:
        raise BadRequestError("A reviewer name is required.", param="reviewer",
                              code="missing_required_parameter")
    with store.sessions.begin() as s:
        row = s.execute(select(IncidentRow).where(IncidentRow.id == incident_id)).scalar()
        if row is None:
            raise NotFoundError(f"No incident with id {incident_id!r}.")
        s.add(ReviewEventRow(incident_id=incident_id, created_at=datetime.now(UTC),
                             reviewer=reviewer[:128], from_status=row.review_status,
                             to_status=status, owner=owner, note=note[:4000]))
        row.review_status = status
        row.reviewer = reviewer[:128]
        if owner:
            row.owner = owner[:128]
        s.flush()
        return row_dict(row)


def history(store: IncidentStore, incident_id: str) -> list[dict[str, Any]]:
    with store.sessions() as s:
        rows = s.execute(select(ReviewEventRow).where(ReviewEventRow.incident_id == incident_id)
                         .order_by(ReviewEventRow.id)).scalars().all()
        return [{"at": r.created_at.isoformat(), "reviewer": r.reviewer,
                 "from": r.from_status, "to": r.to_status, "owner": r.owner, "note": r.note}
                for r in rows]


def queue(store: IncidentStore, *, statuses: tuple[str, ...] = OPEN_STATUSES,
          scanner: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    stmt = (select(IncidentRow).where(IncidentRow.review_status.in_(statuses))
            .order_by(IncidentRow.seq.desc()).limit(limit))
    if scanner:
        stmt = stmt.where(IncidentRow.scanner == scanner)
    with store.sessions() as s:
        return [row_dict(r) for r in s.execute(stmt).scalars()]
