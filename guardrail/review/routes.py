"""The review queue's JSON API: decisions on incidents, assignment, history.

Under ``/v1/guardrail/incidents/{id}``: ``POST .../decisions`` (release, reject, escalate, each
with a reason; a person's token with the review permission), ``POST .../assignee``,
``GET .../reviews`` (decisions, assignments and accesses). HTML pages are under ``/review``
(:mod:`guardrail.review.pages`). Every decision and every access to an incident's content
names the person and is sealed into the incident chain.
"""

from __future__ import annotations

from typing import Any, Literal

import anyio
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from guardrail.deps import DeciderDep, ReaderDep, State
from guardrail.errors import NotFoundError
from guardrail.incidents import events
from guardrail.review import decisions, service
from guardrail.review.pages import pages

api = APIRouter(prefix="/v1/guardrail/incidents", tags=["review"])

__all__ = ["api", "pages"]


class DecisionIn(BaseModel):
    """A decision. The reviewer is whoever the token belongs to; a ``reviewer`` field in
    the body is refused rather than ignored, so no tool believes it set one."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["release", "reject", "escalate"]
    reason: str = Field(min_length=1, max_length=4000)
    escalate_to: str | None = Field(None, max_length=128,
                                    description="A role or a person (escalate only).")
    expected_status: str | None = Field(
        None, description="Refuse (409) if the incident is no longer in this status.")


class AssigneeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str | None = Field(None, max_length=128)


@api.post("/{incident_id}/decisions")
async def decide(incident_id: str, body: DecisionIn, state: State, who: DeciderDep,
                 response: Response) -> dict[str, Any]:
    out = await decisions.decide_with_policy(
        state, incident_id, decision=body.decision, reason=body.reason, who=who,
        escalate_to=body.escalate_to, expected_status=body.expected_status)
    response.status_code = 201 if out.created else 200
    hist = await anyio.to_thread.run_sync(service.history, state.store, incident_id)
    return {"object": "guardrail.decision", "decision": body.decision, "status": out.status,
            "created": out.created, "incident": out.incident,
            "response": out.held.public() if out.held else None, "history": hist}


@api.post("/{incident_id}/assignee")
async def assign(incident_id: str, body: AssigneeIn, state: State,
                 who: DeciderDep) -> dict[str, Any]:
    row = await anyio.to_thread.run_sync(lambda: decisions.assign(
        state.store, incident_id, assignee=body.assignee, who=who))
    return {"incident": row}


@api.get("/{incident_id}/reviews")
async def review_history(incident_id: str, state: State, _who: ReaderDep) -> dict[str, Any]:
    if await anyio.to_thread.run_sync(state.store.get, incident_id) is None:
        raise NotFoundError(f"No incident with id {incident_id!r}.")
    got = await anyio.to_thread.run_sync(lambda: service.history(
        state.store, incident_id, (events.DECISION, decisions.ASSIGN)))
    accesses = await anyio.to_thread.run_sync(
        lambda: service.history(state.store, incident_id, (events.ACCESS,)))
    return {"object": "list", "data": got, "accesses": accesses}
