"""Held response bodies: stored encrypted before the hold notice leaves the proxy, opened
only for the application that was held once a person (or the expiry sweep) released it."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from sqlalchemy import select
from sqlalchemy.orm import Session

from guardrail.db import store_errors
from guardrail.holds.crypto import Keyring
from guardrail.holds.models import HeldResponseRow
from guardrail.incidents.store import IncidentStore

PENDING, RELEASED, REJECTED = "pending", "released", "rejected"


def new_response_id() -> str:
    return "hr_" + uuid.uuid4().hex[:24]


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class HeldView:
    """What the application that was held may know about its response."""

    id: str
    status: str  # pending | released | rejected
    tenant: str | None
    api_key_id: str | None
    incident_ids: list[str]
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    media_type: str
    policy_name: str
    expired: bool  # decided by the system when nobody had decided in time

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "object": "guardrail.held_response", "status": self.status,
                "incident_ids": self.incident_ids,
                "created_at": int(self.created_at.timestamp()),
                "expires_at": int(self.expires_at.timestamp()),
                "decided_at": int(self.decided_at.timestamp()) if self.decided_at else None}


def _view(r: HeldResponseRow) -> HeldView:
    return HeldView(r.id, r.status, r.tenant, r.api_key_id, list(r.incident_ids or []),
                    _utc(r.created_at), _utc(r.expires_at),
                    _utc(r.decided_at) if r.decided_at else None, r.decided_by, r.media_type,
                    r.policy_name,
                    expired=(r.decided_by or "").startswith("system"))


class HoldStore:
    def __init__(self, store: IncidentStore, keyring: Keyring) -> None:
        self.store, self.keyring = store, keyring

    def put(self, *, response_id: str, body: bytes, media_type: str, tenant: str | None,
            api_key_id: str | None, policy_name: str, request_id: str, route: str,
            incident_ids: list[str], expire_after_minutes: int) -> str:
        now = datetime.now(UTC)
        key_id, token = self.keyring.encrypt(body)
        with store_errors(), self.store.sessions.begin() as s:
            s.add(HeldResponseRow(
                id=response_id, created_at=now,
                expires_at=now + timedelta(minutes=expire_after_minutes), tenant=tenant,
                api_key_id=api_key_id, policy_name=policy_name, request_id=request_id,
                route=route, incident_ids=list(incident_ids), status=PENDING, key_id=key_id,
                ciphertext=token, content_sha256=hashlib.sha256(body).hexdigest(),
                media_type=media_type))
        return response_id

    async def put_async(self, **kw: Any) -> str:
        return await anyio.to_thread.run_sync(lambda: self.put(**kw))

    def view(self, response_id: str) -> HeldView | None:
        with store_errors(), self.store.sessions() as s:
            r = s.get(HeldResponseRow, response_id)
            return _view(r) if r is not None else None

    def body(self, response_id: str) -> bytes | None:
        """The plaintext of a released response (None unless it is released)."""
        with store_errors(), self.store.sessions() as s:
            r = s.get(HeldResponseRow, response_id)
            if r is None or r.status != RELEASED or r.ciphertext is None:
                return None
            return self.keyring.decrypt(r.ciphertext)

    def reviewer_body(self, response_id: str) -> bytes | None:
        """The plaintext for a reviewer (the caller records the access first)."""
        with store_errors(), self.store.sessions() as s:
            r = s.get(HeldResponseRow, response_id)
            if r is None or r.ciphertext is None:
                return None
            return self.keyring.decrypt(r.ciphertext)

    @staticmethod
    def settle(s: Session, response_id: str, incident_status: dict[str, str],
               actor: str, now: datetime) -> HeldView | None:
        """Inside a decision's transaction: the held response follows its incidents. Any
        rejected: rejected (its body is dropped); all released: released; else pending."""
        r = s.get(HeldResponseRow, response_id)
        if r is None or r.status != PENDING:
            return None
        statuses = [incident_status.get(i, "open") for i in r.incident_ids or []]
        if any(st == "rejected" for st in statuses):
            r.status, r.ciphertext = REJECTED, None
        elif statuses and all(st == "released" for st in statuses):
            r.status = RELEASED
        else:
            return None
        r.decided_at, r.decided_by = now, actor[:128]
        s.flush()
        return _view(r)

    def due(self, now: datetime | None = None, limit: int = 100) -> list[HeldView]:
        """Pending holds past their expiry, oldest first."""
        now = now or datetime.now(UTC)
        with store_errors(), self.store.sessions() as s:
            rows = s.execute(select(HeldResponseRow)
                             .where(HeldResponseRow.status == PENDING,
                                    HeldResponseRow.expires_at <= now)
                             .order_by(HeldResponseRow.expires_at).limit(limit)).scalars()
            return [_view(r) for r in rows]

    def rotate(self) -> int:
        """Re-encrypt every stored body under the keyring's first key; returns the count."""
        n = 0
        with store_errors(), self.store.sessions.begin() as s:
            for r in s.execute(select(HeldResponseRow)
                               .where(HeldResponseRow.ciphertext.is_not(None))).scalars():
                if r.key_id != self.keyring.current and r.ciphertext is not None:
                    r.ciphertext, r.key_id = self.keyring.rotate(r.ciphertext), \
                        self.keyring.current
                    n += 1
        return n
