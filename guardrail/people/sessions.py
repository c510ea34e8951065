"""Browser sessions: a random id in the cookie, its digest and the CSRF token in the store.

A session ends at the first of: its absolute lifetime (``GUARDRAIL_SESSION_TTL_S``), idle
time (``GUARDRAIL_SESSION_IDLE_S``), sign-out, a password reset, or the person being
disabled. All of these are checked server-side on every request, so a copied cookie is worth
nothing after sign-out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update

from guardrail.people.models import PersonRow, SessionRow
from guardrail.people.passwords import digest
from guardrail.people.roles import Principal
from guardrail.people.store import PeopleStore, aware, principal

TOUCH_EVERY = timedelta(seconds=30)  # last_seen_at is written at most this often


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    csrf_token: str


class Sessions:
    def __init__(self, people: PeopleStore, *, ttl_s: float, idle_s: float) -> None:
        self.people = people
        self.ttl = timedelta(seconds=ttl_s)
        self.idle = timedelta(seconds=idle_s)

    def create(self, person: Principal) -> str:
        """Start a session for ``person``; returns the cookie value (shown to no one else)."""
        if person.person_id is None:
            raise ValueError("only a person can hold a session")
        sid = secrets.token_urlsafe(32)
        now = self.people.clock()
        with self.people.sessions.begin() as s:
            s.execute(delete(SessionRow).where(SessionRow.expires_at < now - timedelta(days=1)))
            s.add(SessionRow(id_hash=digest(sid), person_id=person.person_id,
                             csrf_token=secrets.token_urlsafe(32), created_at=now,
                             expires_at=now + self.ttl, last_seen_at=now))
        return sid

    def get(self, sid: str | None) -> SignedIn | None:
        if not sid:
            return None
        now = self.people.clock()
        with self.people.sessions.begin() as s:
            got = s.execute(
                select(SessionRow, PersonRow)
                .join(PersonRow, PersonRow.id == SessionRow.person_id)
                .where(SessionRow.id_hash == digest(sid), SessionRow.revoked_at.is_(None))
            ).first()
            if got is None:
                return None
            sess, person = got
            if (person.disabled or now >= aware(sess.expires_at)
                    or now - aware(sess.last_seen_at) >= self.idle):
                return None
            if now - aware(sess.last_seen_at) >= TOUCH_EVERY:
                sess.last_seen_at = now
            return SignedIn(principal=principal(person, "session"), csrf_token=sess.csrf_token)

    def revoke(self, sid: str | None) -> None:
        if not sid:
            return
        with self.people.sessions.begin() as s:
            s.execute(update(SessionRow).where(SessionRow.id_hash == digest(sid),
                                               SessionRow.revoked_at.is_(None))
                      .values(revoked_at=self.people.clock()))
