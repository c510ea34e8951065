"""Admin API over the incident store (read by every role; opening one incident is recorded
as an access, sealed into the chain, naming the person or the admin key)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query

from guardrail.db import MAX_SQL_INT
from guardrail.deps import ReaderDep, State
from guardrail.errors import NotFoundError
from guardrail.review import service

router = APIRouter(prefix="/v1/guardrail/incidents", tags=["incidents"])


@router.get("")
async def list_incidents(
    state: State,
    _who: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[int | None, Query(ge=0, le=MAX_SQL_INT,
                                        description="next_cursor of the previous page")] = None,
    action: str | None = None,
    scanner: str | None = None,
    category: str | None = None,
    policy: str | None = None,
    kind: str | None = None,
    review_status: str | None = None,
    request_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    filters = {"action": action, "scanner": scanner, "category": category, "policy_name": policy,
               "kind": kind, "review_status": review_status, "request_id": request_id}
    rows = await anyio.to_thread.run_sync(
        lambda: state.store.list(limit=limit + 1, before_seq=cursor, filters=filters,
                                 since=since, until=until))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"object": "list", "data": rows,
            "next_cursor": rows[-1]["seq"] if more and rows else None}


@router.get("/verify")
async def verify_chain(state: State, _who: ReaderDep) -> dict[str, Any]:
    report = await anyio.to_thread.run_sync(state.store.verify)
    return {"ok": report.ok, "checked": report.checked, "problems": report.problems}


@router.get("/{incident_id}")
async def get_incident(incident_id: str, state: State, who: ReaderDep) -> dict[str, Any]:
    row = await anyio.to_thread.run_sync(
        service.open_incident, state.store, incident_id, who, "GET /v1/guardrail/incidents/{id}")
    if row is None:
        raise NotFoundError(f"No incident with id {incident_id!r}.")
    return row
