"""Decisions on incidents: release, reject, escalate; assignment; overdue; held responses.

One status vocabulary for every incident:

=============== =====================================================================
open            needs a person (holds always; other actions as the policy's
                ``review.route`` says)
escalated       passed to a role or a person (e.g. legal); still needs a decision
awaiting_second four-eyes: one reviewer released an IP hold, a second one must agree
released        the output may go out (for a hold: the application can fetch it); for a
                block or flag: the intervention was not needed
rejected        the intervention was right; a held response is never released
not_required    recorded, no review needed (redactions, scanner failures)
=============== =====================================================================

Every decision names a person (or ``system`` for an expired hold), carries a reason, and is
sealed into the incident chain (:func:`guardrail.incidents.events.seal`) in the same
transaction that changes the incident, after the chain head's lock is taken: decisions are
serialised, so of two reviewers deciding at once one wins and the other gets 409.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy import func, select

from guardrail.db import store_errors
from guardrail.errors import BadRequestError, ConflictError, NotFoundError, PermissionDeniedError
from guardrail.holds.store import HeldView, HoldStore
from guardrail.incidents import events
from guardrail.incidents.models import IncidentRow
from guardrail.incidents.store import IncidentStore, row_dict
from guardrail.logs import event
from guardrail.people.roles import Perm, Principal
from guardrail.review.models import ReviewEventRow

if TYPE_CHECKING:
    from guardrail.deps import AppState

log = logging.getLogger("guardrail.review")

STATUSES: dict[str, str] = {
    "open": "Needs a reviewer",
    "escalated": "Escalated to a role or person",
    "awaiting_second": "Released by one reviewer; a second must agree (four eyes)",
    "released": "Released: the output may go out / the intervention was not needed",
    "rejected": "Rejected: the intervention was right",
    "not_required": "Recorded; no review needed",
}
OPEN_STATUSES = ("open", "escalated", "awaiting_second")
DECIDED_STATUSES = ("released", "rejected")
DECISIONS = ("release", "reject", "escalate")
LEGACY_STATUS = events.LEGACY_STATUS
SYSTEM = "system"
ASSIGN = "assign"


def normal_status(status: str) -> str:
    return LEGACY_STATUS.get(status, status)


@dataclass(frozen=True)
class Outcome:
    incident: dict[str, Any]
    status: str
    created: bool  # False: the same decision by the same person was already recorded
    held: HeldView | None = None  # the held response, when this decision settled it
    decision: str = ""
    seconds_open: float | None = None


def _target(decision: str, current: str, four_eyes: bool, released_by: str | None,
            actor: str) -> str:
    if decision == "escalate":
        return "escalated"
    if decision == "reject":
        return "rejected"
    if four_eyes and current != "awaiting_second":
        return "awaiting_second"
    if four_eyes and released_by == actor:
        raise ConflictError("Four eyes: the second release must come from another reviewer.",
                            code="second_reviewer_required")
    return "released"


def _last_decider(s: Any, incident_id: str) -> tuple[str | None, str | None]:
    """(person, to_status) of the incident's last sealed decision."""
    r = s.execute(select(ReviewEventRow.reviewer, ReviewEventRow.to_status)
                  .where(ReviewEventRow.incident_id == incident_id,
                         ReviewEventRow.kind == events.DECISION)
                  .order_by(ReviewEventRow.id.desc()).limit(1)).first()
    return (r[0], r[1]) if r else (None, None)


def decide(store: IncidentStore, incident_id: str, *, decision: str, reason: str,
           who: Principal | None, escalate_to: str | None = None, four_eyes: bool = False,
           expected_status: str | None = None) -> Outcome:
    """Record ``decision`` on the incident. ``who`` None: the system (an expired hold)."""
    if decision not in DECISIONS:
        raise BadRequestError(f"Unknown decision {decision!r}; one of {list(DECISIONS)}.",
                              param="decision", code="invalid_value")
    reason = (reason or "").strip()
    if not reason:
        raise BadRequestError("A decision needs a reason.", param="reason",
                              code="reason_required")
    if decision == "escalate" and not (escalate_to or "").strip():
        raise BadRequestError("Escalate to whom? Give a role or a person (escalate_to).",
                              param="escalate_to", code="invalid_value")
    if who is not None:
        if not who.is_person:
            raise PermissionDeniedError(
                "A decision names a person: sign in, or use a person's token "
                "(guardrail users token NAME), not the admin key.", code="person_required")
        if not who.can(Perm.REVIEW):
            raise PermissionDeniedError(f"The {who.role} role cannot record decisions.",
                                        code="insufficient_role")
    actor = who.actor[:128] if who is not None else SYSTEM
    now = datetime.now(UTC)
    with store_errors(), store.sessions.begin() as s:
        store.lock_head(s)  # serialises decisions: the status read below is the latest
        row = s.execute(select(IncidentRow).where(IncidentRow.id == incident_id)).scalar()
        if row is None:
            raise NotFoundError(f"No incident with id {incident_id!r}.")
        current = row.review_status
        if expected_status is not None and expected_status != current:
            raise ConflictError(
                f"This incident changed while you looked at it: it is now {current!r} "
                f"(by {row.reviewer or '-'}).", code="decision_conflict")
        last_by, _ = _last_decider(s, incident_id)
        if current in DECIDED_STATUSES:
            same = (decision == "release") == (current == "released") and decision != "escalate"
            if same and last_by == actor:
                return Outcome(row_dict(row), current, created=False, decision=decision)
            raise ConflictError(
                f"Already {current} by {row.reviewer or '-'}; a decision cannot be changed "
                "here (escalate through your process, or file redress).",
                code="already_decided")
        target = _target(decision, current, four_eyes and decision == "release",
                         last_by if current == "awaiting_second" else None, actor)
        if target == current and last_by == actor and target != "escalated":
            return Outcome(row_dict(row), current, created=False, decision=decision)
        owner = ((escalate_to or "").strip()[:128] or None) if decision == "escalate" else None
        events.seal(store, s, ReviewEventRow(
            incident_id=incident_id, created_at=now, kind=events.DECISION, reviewer=actor,
            person_id=who.person_id if who else None, role=who.role if who else SYSTEM,
            from_status=current, to_status=target, owner=owner,
            note=f"{decision}: {reason}"[:4000]))
        row.review_status, row.reviewer = target, actor
        if owner:
            row.assignee = owner
        seconds = None
        if target in DECIDED_STATUSES:
            row.decided_at = now
            created = row.created_at if row.created_at.tzinfo else \
                row.created_at.replace(tzinfo=UTC)
            seconds = (now - created).total_seconds()
        held = None
        rid = (row.evidence or {}).get("response_id")
        if isinstance(rid, str):
            held = _settle(s, rid, actor, now)
        s.flush()
        return Outcome(row_dict(row), target, created=True, held=held, decision=decision,
                       seconds_open=seconds)


def _settle(s: Any, response_id: str, actor: str, now: datetime) -> HeldView | None:
    from guardrail.holds.models import HeldResponseRow

    held = s.get(HeldResponseRow, response_id)
    if held is None:
        return None
    ids = list(held.incident_ids or [])
    got = dict(s.execute(select(IncidentRow.id, IncidentRow.review_status)
                         .where(IncidentRow.id.in_(ids))).all())
    return HoldStore.settle(s, response_id, got, actor, now)


def assign(store: IncidentStore, incident_id: str, *, assignee: str | None,
           who: Principal) -> dict[str, Any]:
    """Give the incident to a person (None: unassign); sealed as an ``assign`` event."""
    if not who.is_person or not who.can(Perm.REVIEW):
        raise PermissionDeniedError("Assigning work needs a reviewer or admin (a person).",
                                    code="insufficient_role")
    with store_errors(), store.sessions.begin() as s:
        store.lock_head(s)
        row = s.execute(select(IncidentRow).where(IncidentRow.id == incident_id)).scalar()
        if row is None:
            raise NotFoundError(f"No incident with id {incident_id!r}.")
        target = (assignee or "").strip()[:128] or None
        events.seal(store, s, ReviewEventRow(
            incident_id=incident_id, created_at=datetime.now(UTC), kind=ASSIGN,
            reviewer=who.actor[:128], person_id=who.person_id, role=who.role,
            from_status=row.review_status, to_status=row.review_status, owner=target,
            note=f"assigned to {target}" if target else "unassigned"))
        row.assignee = target
        s.flush()
        return row_dict(row)


# -- with the application's state: the policy, metrics, webhooks -----------------------------

def policy_of(state: AppState, row: dict[str, Any]) -> Any:
    return state.policies.policies.get(row.get("policy_name") or "")


def sla_due_at(state: AppState, row: dict[str, Any]) -> datetime | None:
    policy = policy_of(state, row)
    created = row.get("created_at")
    if policy is None or not created:
        return None
    at = datetime.fromisoformat(created) if isinstance(created, str) else created
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at + timedelta(minutes=policy.review.sla_minutes)


def overdue(state: AppState, row: dict[str, Any], now: datetime | None = None) -> bool:
    if row.get("review_status") not in OPEN_STATUSES:
        return False
    due = sla_due_at(state, row)
    return due is not None and (now or datetime.now(UTC)) > due


def four_eyes_for(state: AppState, row: dict[str, Any]) -> bool:
    policy = policy_of(state, row)
    return bool(policy is not None and row.get("action") == "hold"
                and row.get("scanner") in policy.review.four_eyes)


async def decide_with_policy(state: AppState, incident_id: str, *, decision: str, reason: str,
                             who: Principal | None, escalate_to: str | None = None,
                             expected_status: str | None = None) -> Outcome:
    """:func:`decide` with the incident's policy (four eyes), then metrics and the webhook."""
    row = await anyio.to_thread.run_sync(state.store.get, incident_id)
    if row is None:
        raise NotFoundError(f"No incident with id {incident_id!r}.")
    out = await anyio.to_thread.run_sync(lambda: decide(
        state.store, incident_id, decision=decision, reason=reason, who=who,
        escalate_to=escalate_to, four_eyes=who is not None and four_eyes_for(state, row),
        expected_status=expected_status))
    if out.created:
        after_decision(state, row, out, by="person" if who is not None else SYSTEM)
    return out


def after_decision(state: AppState, row: dict[str, Any], out: Outcome, by: str) -> None:
    scanner = row.get("scanner") or "-"
    name = "second_release" if (out.decision == "release" and out.status == "released"
                                and row.get("review_status") == "awaiting_second") \
        else out.decision
    state.metrics.review_decisions.labels(scanner, name, by).inc()
    if out.seconds_open is not None:
        state.metrics.time_to_decision.labels(scanner).observe(out.seconds_open)
    event(log, logging.INFO, "review_decision", incident_id=row["id"], decision=out.decision,
          status=out.status, by=by, response_id=out.held.id if out.held else None)
    if out.held is not None:
        from guardrail.holds import webhooks

        webhooks.notify(state, out.held, incident_id=row["id"])


async def expire_due(state: AppState) -> int:
    """Decide every pending hold past its expiry as its policy says (release or reject),
    recorded as the system's decision. Returns how many holds were settled."""
    holds: HoldStore = state.extras["holds"]
    due = await anyio.to_thread.run_sync(holds.due)
    n = 0
    for h in due:
        policy = state.policies.policies.get(h.policy_name)
        outcome = policy.hold.on_expiry if policy is not None else "reject"
        for inc_id in h.incident_ids:
            try:
                out = await decide_with_policy(
                    state, inc_id, decision=outcome,
                    reason=f"hold expired at {h.expires_at.isoformat()} (policy: {outcome})",
                    who=None)
            except (ConflictError, NotFoundError):
                continue  # decided meanwhile
            if out.held is not None:
                n += 1
    return n


async def sweep_forever(state: AppState) -> None:
    """The lifespan's task: settle expired holds every ``hold_sweep_s``."""
    import asyncio

    while True:
        await asyncio.sleep(state.settings.hold_sweep_s)
        try:
            await expire_due(state)
        except Exception as exc:  # noqa: BLE001 - keep sweeping; the store may be back later
            event(log, logging.WARNING, "hold_sweep_failed", error=type(exc).__name__)


def counts(store: IncidentStore) -> dict[str, int]:
    """Incidents by review status."""
    with store_errors(), store.sessions() as s:
        return {k: int(v) for k, v in s.execute(
            select(IncidentRow.review_status, func.count()).group_by(IncidentRow.review_status))}


def queue_figures(state: AppState, now: datetime | None = None) -> dict[str, Any]:
    """For ``/metrics`` and the queue page: incidents by status, overdue (open past their
    policy's SLA), held responses by status."""
    from guardrail.holds.models import HeldResponseRow

    now = now or datetime.now(UTC)
    by_status = counts(state.store)
    overdue_n = 0
    with store_errors(), state.store.sessions() as s:
        for name, policy in state.policies.policies.items():
            cutoff = now - timedelta(minutes=policy.review.sla_minutes)
            overdue_n += int(s.execute(
                select(func.count()).select_from(IncidentRow)
                .where(IncidentRow.policy_name == name,
                       IncidentRow.review_status.in_(OPEN_STATUSES),
                       IncidentRow.created_at < cutoff)).scalar() or 0)
        held = {k: int(v) for k, v in s.execute(
            select(HeldResponseRow.status, func.count()).group_by(HeldResponseRow.status))}
    return {"statuses": by_status, "overdue": overdue_n, "held": held}


def refresh_gauges(state: AppState) -> None:
    f = queue_figures(state)
    m = state.metrics
    for status in STATUSES:
        m.queue_depth.labels(status).set(f["statuses"].get(status, 0))
    m.queue_overdue.set(f["overdue"])
    for status in ("pending", "released", "rejected"):
        m.held_responses.labels(status).set(f["held"].get(status, 0))
