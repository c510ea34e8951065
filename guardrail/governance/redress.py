"""Redress: an affected person or customer contests an output, and is answered.

Routes: :mod:`guardrail.governance.redress_routes` (the JSON API under
``/v1/guardrail/redress``) and :mod:`guardrail.governance.redress_pages` (the public
``/redress`` form and ``/redress/status``, Japanese and English).

An intake names a held response (``hr_...``), an incident (``inc_...``), a request id (the
``x-guardrail-request-id`` header) and/or says in free text what is wrong. It is recorded as
its own incident of the chain (kind ``redress``, action ``flag``, stage ``redress``, review
status ``open``, so the review queue shows it like any other), whose sealed evidence holds
the acknowledgement id, the channel and the incidents it was linked to (those the given ids
found; ids that found nothing are not sealed), and whose excerpt is the complainant's own
words (at most :data:`TEXT_MAX` characters). Each linked incident gets the intake's incident
id in its ``redress`` list. The ``redress`` table keeps what the complainant may see.

The complainant gets an acknowledgement id (``rd_`` + 32 hex: 128 random bits) and with it,
and nothing else, the intake's status (received, in_review: a person has opened or acted on
the intake, answered) and the published answer; never an incident, its evidence or another
intake. Lookups and intakes are rate-limited per client address (:class:`AddressBudget`).

An answer (a reviewer, compliance or admin person) is a sealed event of the intake's
incident (kind ``redress``, the answer's SHA-256 in its note): verify
(:func:`chain_problems`) fails a published answer that is not the one sealed, and one that
disappeared without a purge (:mod:`guardrail.governance.retention`). Answering publishes;
it does not decide: the intake's incident leaves the review queue by a decision like any
flag (and the contested incidents keep their own decisions, which a decision cannot change:
a complaint upheld is handled through the lifecycle, :mod:`guardrail.governance.lifecycle`).

The JSON intake takes no CSRF token: it reads no cookie or other ambient credential, so a
cross-site page gains nothing by posting to it that it could not post itself; the per-address
limit bounds both. The limits are per process (as the sign-in limit is).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from guardrail.db import Base, store_errors
from guardrail.errors import (
    ApiError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
)
from guardrail.holds.models import HeldResponseRow
from guardrail.incidents import events
from guardrail.incidents.events import IncidentEventRow
from guardrail.incidents.models import IncidentRow
from guardrail.incidents.store import IncidentDraft, IncidentStore, content_hash
from guardrail.people.ratelimit import build_limiter
from guardrail.people.roles import Perm, Principal

REDRESS = "redress"  # the intake's incident kind, and the answer event's kind
TEXT_MAX = 4000
CONTACT_MAX = 256
ANSWER_MAX = 8000
RECEIVED, IN_REVIEW, ANSWERED = "received", "in_review", "answered"
ACK_RE = re.compile(r"^rd_[0-9a-f]{32}$")
_ANSWER_NOTE = re.compile(r"^answered: sha256=([0-9a-f]{64})$")


class RedressRow(Base):
    __tablename__ = "redress"

    ack_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    incident_id: Mapped[str] = mapped_column(String(40), index=True)  # its chain record
    linked_incident_ids: Mapped[list[str]] = mapped_column(JSON)
    given: Mapped[dict[str, str] | None] = mapped_column(JSON(none_as_null=True))  # (purged)
    channel: Mapped[str] = mapped_column(String(8))  # web | api
    language: Mapped[str | None] = mapped_column(String(8))
    text: Mapped[str | None] = mapped_column(Text)  # the complainant's words (purged)
    contact: Mapped[str | None] = mapped_column(String(CONTACT_MAX))  # optional (purged)
    status: Mapped[str] = mapped_column(String(16))  # received | answered
    answer: Mapped[str | None] = mapped_column(Text)
    answer_sha256: Mapped[str | None] = mapped_column(String(64))
    answered_by: Mapped[str | None] = mapped_column(String(128))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RateLimitedError(ApiError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"


class AddressBudget:
    """At most ``n`` uses per client address within ``window_s`` (in this process, like the
    sign-in limit it reuses: :class:`guardrail.people.ratelimit.SignInLimiter`)."""

    def __init__(self, n: int, window_s: float, redis_url: str | None = None,
                 scope: str = "redress", namespace: str = "guardrail") -> None:
        self._limiter = build_limiter(redis_url, n, window_s, scope, namespace)

    def take(self, addr: str) -> int:
        """0 and one use counted, or the seconds to wait (nothing counted)."""
        wait = self._limiter.retry_after("", addr)
        if not wait:
            self._limiter.failed("", addr)
        return wait

    def check(self, addr: str) -> None:
        wait = self.take(addr)
        if wait:
            raise RateLimitedError(f"Too many requests from this address; try again in {wait} "
                                   "seconds.", headers={"Retry-After": str(wait)})


def new_ack_id() -> str:
    return "rd_" + secrets.token_hex(16)


def _utc(t: datetime) -> datetime:
    return (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).astimezone(UTC)


@dataclass(frozen=True)
class Intake:
    text: str = ""
    response_id: str | None = None
    incident_id: str | None = None
    request_id: str | None = None
    contact: str | None = None
    channel: str = "api"
    language: str | None = None

    def cleaned(self) -> Intake:
        def one(v: str | None, n: int) -> str | None:
            v = (v or "").strip()
            return v[:n] or None

        out = Intake(text=(self.text or "").strip()[:TEXT_MAX],
                     response_id=one(self.response_id, 40), incident_id=one(self.incident_id, 40),
                     request_id=one(self.request_id, 64), contact=one(self.contact, CONTACT_MAX),
                     channel=self.channel if self.channel in ("web", "api") else "api",
                     language=one(self.language, 8))
        if not (out.text or out.response_id or out.incident_id or out.request_id):
            raise BadRequestError("Say what you contest: a response id, an incident id, a "
                                  "request id or a description.", param="text",
                                  code="invalid_value")
        return out


@dataclass(frozen=True)
class Origin:
    """What the intake's own incident records when it links to nothing: the default
    policy and its AI system, the route it came in by and the HTTP request's id."""

    system_id: str
    policy_name: str
    policy_version: str
    route: str
    request_id: str


def _linked(store: IncidentStore, it: Intake) -> list[dict[str, Any]]:
    ids: list[str] = []
    with store_errors(), store.sessions() as s:
        if it.incident_id:
            ids.append(it.incident_id)
        if it.response_id:
            held = s.get(HeldResponseRow, it.response_id)
            ids += list(held.incident_ids or []) if held is not None else []
        stmt = select(IncidentRow.id, IncidentRow.tenant, IncidentRow.system_id,
                      IncidentRow.policy_name, IncidentRow.policy_version)
        found = {r[0]: r for r in s.execute(stmt.where(IncidentRow.id.in_(ids)))} if ids else {}
        if it.request_id:
            found.update({r[0]: r for r in s.execute(
                stmt.where(IncidentRow.request_id == it.request_id).limit(50))})
    return [{"id": r[0], "tenant": r[1], "system_id": r[2], "policy_name": r[3],
             "policy_version": r[4]} for r in found.values()]


def submit(store: IncidentStore, intake: Intake, origin: Origin,
           now: datetime | None = None) -> tuple[str, str]:
    """Record the intake; returns (acknowledgement id, the intake's incident id). The
    incident is committed first (the chain record is what counts); the table row after."""
    it = intake.cleaned()
    now = _utc(now or datetime.now(UTC))
    ack = new_ack_id()
    linked = _linked(store, it)
    first = linked[0] if linked else None
    tenants = {x["tenant"] for x in linked}
    draft = IncidentDraft(
        request_id=origin.request_id[:64],
        system_id=first["system_id"] if first else origin.system_id,
        policy_name=first["policy_name"] if first else origin.policy_name,
        policy_version=first["policy_version"] if first else origin.policy_version,
        route=origin.route, stage=REDRESS, kind=REDRESS, action="flag", category=REDRESS,
        tenant=tenants.pop() if len(tenants) == 1 else None, scanners=[],
        evidence={"ack_id": ack, "channel": it.channel,
                  "linked_incident_ids": sorted(x["id"] for x in linked)},
        excerpt=it.text or None, content_sha256=content_hash(it.text) if it.text else None,
        review_status="open")
    [inc_id] = store.append([draft])
    given = {k: v for k, v in (("response_id", it.response_id), ("incident_id", it.incident_id),
                               ("request_id", it.request_id)) if v}
    with store_errors(), store.sessions.begin() as s:
        s.add(RedressRow(ack_id=ack, created_at=now, incident_id=inc_id,
                         linked_incident_ids=sorted(x["id"] for x in linked),
                         given=given or None, channel=it.channel, language=it.language,
                         text=it.text or None, contact=it.contact, status=RECEIVED))
        for row in s.execute(select(IncidentRow).where(
                IncidentRow.id.in_([x["id"] for x in linked]))).scalars():
            row.redress = [*(row.redress or []), {"incident_id": inc_id, "at": now.isoformat()}]
    return ack, inc_id


def public_status(store: IncidentStore, ack_id: str) -> dict[str, Any] | None:
    """What the complainant may know, by acknowledgement id: status and the answer."""
    if not ACK_RE.match(ack_id or ""):
        return None
    with store_errors(), store.sessions() as s:
        r = s.get(RedressRow, ack_id)
        if r is None:
            return None
        status = r.status
        if status == RECEIVED:
            status = IN_REVIEW if _looked_at(s, r.incident_id) else RECEIVED
        return {"id": r.ack_id, "object": "guardrail.redress", "status": status,
                "received_at": _utc(r.created_at).isoformat(),
                "answer": r.answer if r.answered_at else None,
                "answered_at": _utc(r.answered_at).isoformat() if r.answered_at else None}


def _looked_at(s: Any, incident_id: str) -> bool:
    """A person opened the intake's incident or acted on it (any sealed event), or its
    review status moved."""
    if s.execute(select(IncidentEventRow.id).where(IncidentEventRow.incident_id == incident_id)
                 .limit(1)).first() is not None:
        return True
    status = s.execute(select(IncidentRow.review_status)
                       .where(IncidentRow.id == incident_id)).scalar()
    return status not in (None, "open")


def staff_view(r: RedressRow) -> dict[str, Any]:
    return {"id": r.ack_id, "object": "guardrail.redress", "status": r.status,
            "incident_id": r.incident_id, "linked_incident_ids": list(r.linked_incident_ids),
            "channel": r.channel, "received_at": _utc(r.created_at).isoformat(),
            "answer": r.answer, "answered_by": r.answered_by,
            "answered_at": _utc(r.answered_at).isoformat() if r.answered_at else None}


def answer(store: IncidentStore, ack_id: str, text: str, who: Principal,
           now: datetime | None = None) -> dict[str, Any]:
    """Publish the answer (once), sealed on the intake's incident in the caller's name."""
    if not who.is_person:
        raise PermissionDeniedError("An answer names a person: use a person's token, not the "
                                    "admin key.", code="person_required")
    if not (who.can(Perm.REVIEW) or who.can(Perm.GOVERNANCE)):
        raise PermissionDeniedError(f"The {who.role} role cannot answer redress.",
                                    code="insufficient_role")
    text = (text or "").strip()
    if not text:
        raise BadRequestError("An answer needs text.", param="answer", code="invalid_value")
    text = text[:ANSWER_MAX]
    now = _utc(now or datetime.now(UTC))
    digest = hashlib.sha256(text.encode()).hexdigest()
    with store_errors(), store.sessions.begin() as s:
        store.lock_head(s)
        r = s.get(RedressRow, ack_id) if ACK_RE.match(ack_id or "") else None
        if r is None:
            raise NotFoundError(f"No redress intake {ack_id!r}.")
        if r.answered_at is not None:
            raise ConflictError(f"Already answered by {r.answered_by} at "
                                f"{_utc(r.answered_at).isoformat()}.", code="already_answered")
        events.seal(store, s, IncidentEventRow(
            incident_id=r.incident_id, created_at=now, kind=REDRESS,
            reviewer=who.actor[:128], person_id=who.person_id, role=who.role,
            from_status=r.status, to_status=ANSWERED, owner=None,
            note=f"answered: sha256={digest}"))
        r.status, r.answer, r.answer_sha256 = ANSWERED, text, digest
        r.answered_by, r.answered_at = who.actor[:128], now
        s.flush()
        return staff_view(r)


# -- verify (guardrail.incidents.events.problems calls this) ---------------------------------

def chain_problems(store: IncidentStore) -> Iterator[str]:
    """Published answers that are not the sealed ones, answers removed without a purge,
    answered intakes without a sealed answer."""
    with store.sessions() as s:
        sealed = {r[0]: (r[1], r[2]) for r in s.execute(
            select(IncidentEventRow.incident_id, IncidentEventRow.reviewer,
                   IncidentEventRow.note)
            .where(IncidentEventRow.kind == REDRESS, IncidentEventRow.seq.is_not(None)))}
        rows = s.execute(select(RedressRow)).scalars().all()
    for r in rows:
        got = sealed.get(r.incident_id)
        if got is None:
            if r.status == ANSWERED or r.answered_at is not None or r.answer is not None:
                yield f"redress intake of incident {r.incident_id}: answered, but no sealed answer"
            continue
        by, note = got
        m = _ANSWER_NOTE.match(note or "")
        want = m.group(1) if m else None
        if r.status != ANSWERED or r.answered_by != by or r.answer_sha256 != want:
            yield (f"redress intake of incident {r.incident_id}: answer by {r.answered_by!r} "
                   f"(status {r.status!r}) is not the sealed one (by {by!r})")
        elif r.answer is None:
            if r.purged_at is None:
                yield (f"redress intake of incident {r.incident_id}: the published answer is "
                       "gone, and no purge removed it")
        elif hashlib.sha256(r.answer.encode()).hexdigest() != want:
            yield (f"redress intake of incident {r.incident_id}: the published answer is not "
                   "the one sealed (its SHA-256 differs)")
