"""Signed decision notices for applications whose responses were held.

When a held response is released or rejected (by a person or by expiry) and its client key has
a webhook (``ClientKey.webhook_url`` / ``GUARDRAIL_WEBHOOKS``), guardrail POSTs::

    {"id": "whd_...", "type": "held_response.released" | "held_response.rejected",
     "created": 1767225600, "data": {<the held response's status object>}}

with the header ``Guardrail-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` over
``"<t>.<raw body>"`` with the key's webhook secret (Stripe's scheme; GitHub's is the same
HMAC without the timestamp). Receivers check the HMAC with a constant-time compare and refuse
timestamps older than a few minutes (:func:`verify`). A non-2xx answer or a network failure is
retried with exponential back-off (``webhook_backoff_s`` doubling, ``webhook_max_attempts``);
every attempt is a row of ``webhook_attempts``. The ``id`` stays the same across retries so
receivers can de-duplicate.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from guardrail.db import store_errors
from guardrail.errors import HttpFailure, WebhookDeliveryError, httpx_errors
from guardrail.holds.models import WebhookAttemptRow
from guardrail.logs import event

if TYPE_CHECKING:
    from guardrail.deps import AppState
    from guardrail.holds.store import HeldView

log = logging.getLogger("guardrail.webhooks")
HEADER = "Guardrail-Signature"


def sign(secret: str, body: bytes, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, header: str, body: bytes, tolerance_s: int = 300,
           now: float | None = None) -> bool:
    """What a receiver does: the timestamp is recent and one ``v1`` HMAC matches."""
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    t = next((v for k, v in parts if k.strip() == "t"), None)
    macs = [v for k, v in parts if k.strip() == "v1"]
    if t is None or not t.isdigit() or not macs:
        return False
    if abs((time.time() if now is None else now) - int(t)) > tolerance_s:
        return False
    want = sign(secret, body, int(t)).split("v1=", 1)[1]
    return any(hmac.compare_digest(want, m) for m in macs)


def payload(held: HeldView, delivery_id: str) -> bytes:
    return json.dumps({"id": delivery_id, "type": f"held_response.{held.status}",
                       "created": int(time.time()), "data": held.public()},
                      ensure_ascii=False, separators=(",", ":")).encode()


def notify(state: AppState, held: HeldView, incident_id: str) -> None:
    """Start the delivery in the background (tracked; drained at shutdown)."""
    target = state.settings.webhook_for(held.api_key_id)
    if target is None:
        return
    try:
        state.background.spawn(deliver(state, held, *target),
                               name=f"guardrail-webhook-{held.id}")
    except RuntimeError:  # no running loop (a decision from a worker thread's CLI)
        event(log, logging.WARNING, "webhook_not_started", response_id=held.id)


def _failure(f: HttpFailure) -> WebhookDeliveryError:
    return WebhookDeliveryError(f"{f.kind} ({f.name})")


async def deliver(state: AppState, held: HeldView, url: str, secret: str) -> bool:
    s = state.settings
    delivery_id = "whd_" + uuid.uuid4().hex[:24]
    body = payload(held, delivery_id)
    delay = s.webhook_backoff_s
    async with httpx.AsyncClient(timeout=s.webhook_timeout_s, follow_redirects=False) as http:
        for attempt in range(1, s.webhook_max_attempts + 1):
            status: int | None = None
            error: str | None = None
            try:
                with httpx_errors(_failure):
                    r = await http.post(url, content=body, headers={
                        HEADER: sign(secret, body), "Content-Type": "application/json",
                        "User-Agent": "guardrail-webhook", "Guardrail-Delivery": delivery_id})
                status = r.status_code
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except WebhookDeliveryError as exc:
                error = str(exc)
            ok = error is None
            await anyio.to_thread.run_sync(
                _record, state, delivery_id, held, url, attempt, status, error, ok)
            state.metrics.webhook_deliveries.labels("ok" if ok else "failed").inc()
            if ok:
                return True
            event(log, logging.WARNING, "webhook_failed", response_id=held.id,
                  attempt=attempt, error=error)
            if attempt < s.webhook_max_attempts:
                await asyncio.sleep(delay)
                delay *= 2
    event(log, logging.ERROR, "webhook_gave_up", response_id=held.id,
          attempts=s.webhook_max_attempts)
    return False


def _record(state: AppState, delivery_id: str, held: HeldView, url: str, attempt: int,
            status: int | None, error: str | None, ok: bool) -> None:
    with store_errors(), state.store.sessions.begin() as s:
        s.add(WebhookAttemptRow(delivery_id=delivery_id, response_id=held.id,
                                api_key_id=held.api_key_id, url=url[:2048], attempt=attempt,
                                at=datetime.now(UTC), status_code=status,
                                error=(error or None) and error[:512], ok=ok))


def attempts(state: AppState, response_id: str) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from guardrail.holds.models import attempt_dict

    with store_errors(), state.store.sessions() as s:
        rows = s.execute(select(WebhookAttemptRow)
                         .where(WebhookAttemptRow.response_id == response_id)
                         .order_by(WebhookAttemptRow.id)).scalars()
        return [attempt_dict(r) for r in rows]
