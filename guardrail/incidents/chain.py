"""Tamper-evident chain: each record's hash covers its content and the previous hash."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

GENESIS = "0" * 64

# Fields covered by the hash. Review fields (status, reviewer, owner, redress) change over a
# record's life and every change is logged in ``incident_reviews`` (guardrail.review), so
# they are not part of the sealed content.
SEALED_FIELDS = (
    "seq", "id", "created_at", "request_id", "tenant", "api_key_id", "system_id", "policy_name",
    "policy_version", "route", "upstream_model", "stage", "kind", "action", "scanner", "backend",
    "model", "model_version", "category", "score", "threshold", "evidence", "scanners",
    "content_sha256", "excerpt", "requested_model",
)

# Sealed fields added after records were first written: left out of the hashed payload while
# empty, so records written before them still verify; once set, they are covered like the rest.
LATER_FIELDS = frozenset({"requested_model"})


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, float):
        return round(v, 9)
    return v


def _digest(prev_hash: str, payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           default=str)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def record_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    payload = {k: _jsonable(fields.get(k)) for k in SEALED_FIELDS
               if k not in LATER_FIELDS or fields.get(k) is not None}
    return _digest(prev_hash, payload)


# Review events (decisions, and accesses to an incident's content) are links of the same
# chain: one sequence number space and one head with the incidents (guardrail.incidents.events).
EVENT_SEALED_FIELDS = (
    "seq", "kind", "incident_id", "created_at", "reviewer", "person_id", "role", "from_status",
    "to_status", "owner", "note",
)


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    # the "record" tag keeps an event's payload from ever reading as an incident's
    payload = {"record": "incident_event",
               **{k: _jsonable(fields.get(k)) for k in EVENT_SEALED_FIELDS}}
    return _digest(prev_hash, payload)
