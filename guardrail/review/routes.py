"""The review queue: IP reviewers and trust-and-safety staff triage incidents.

JSON API under ``/v1/guardrail/incidents/{id}/review(s)`` (a person's token; reading also the
admin key) and HTML pages under ``/review`` (:mod:`guardrail.review.pages`: people sign in
with name and password). Every decision and every access to an incident's content names the
person and is sealed into the incident chain.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from guardrail.deps import ReaderDep, ReviewerDep, State
from guardrail.errors import NotFoundError
from guardrail.incidents import events
from guardrail.review import service
from guardrail.review.pages import pages

api = APIRouter(prefix="/v1/guardrail/incidents", tags=["review"])

__all__ = ["api", "pages"]


class ReviewIn(BaseModel):
    """A decision. The reviewer is whoever the token belongs to; a ``reviewer`` field in
    the body is refused rather than ignored, so no tool believes it set one."""

    model_config = ConfigDict(extra="forbid")

    status: str
    note: str = Field("", max_length=4000)
    owner: str | None = Field(None, max_length=128)


@api.post("/{incident_id}/review")
async def review_incident(incident_id: str, body: ReviewIn, state: State,
                          who: ReviewerDep) -> dict[str, Any]:
    row = await anyio.to_thread.run_sync(
        lambda: service.review(state.store, incident_id, status=body.status, reviewer=who,
                               note=body.note, owner=body.owner))
    hist = await anyio.to_thread.run_sync(service.history, state.store, incident_id)
    return {"incident": row, "history": hist}


@api.get("/{incident_id}/reviews")
async def review_history(incident_id: str, state: State, _who: ReaderDep) -> dict[str, Any]:
    if await anyio.to_thread.run_sync(state.store.get, incident_id) is None:
        raise NotFoundError(f"No incident with id {incident_id!r}.")
    decisions = await anyio.to_thread.run_sync(service.history, state.store, incident_id)
    accesses = await anyio.to_thread.run_sync(
        lambda: service.history(state.store, incident_id, (events.ACCESS,)))
    return {"object": "list", "data": decisions, "accesses": accesses}
