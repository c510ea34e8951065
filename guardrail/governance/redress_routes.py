"""Redress JSON API (``router``; included by :mod:`guardrail.governance.routes`).

``POST /v1/guardrail/redress`` (no sign-in, rate-limited per client address; no CSRF token:
it takes no cookie, so a cross-site page cannot act for anyone with it),
``GET /v1/guardrail/redress/{ack_id}`` (status and answer, by acknowledgement id only; the
lookups are rate-limited too) and ``POST /v1/guardrail/redress/{ack_id}/answer`` (a
reviewer's, compliance person's or admin's token). See :mod:`guardrail.governance.redress`.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from guardrail.deps import AppState, ReaderDep, State
from guardrail.errors import NotFoundError, PermissionDeniedError
from guardrail.governance import redress
from guardrail.people.roles import Perm, Principal
from guardrail.people.web import client_addr

router = APIRouter(prefix="/v1/guardrail/redress", tags=["redress"])


def budgets(state: AppState) -> tuple[redress.AddressBudget, redress.AddressBudget]:
    """(intakes, lookups) per client address, kept on the app state."""
    got = state.extras.get("redress_budgets")
    if got is None:
        s = state.settings
        got = state.extras["redress_budgets"] = (
            redress.AddressBudget(s.redress_max_per_window, s.redress_window_s, s.redis_url,
                                  "redress-intake", s.redis_namespace),
            redress.AddressBudget(s.redress_lookups_per_window, s.redress_window_s,
                                  s.redis_url, "redress-lookup", s.redis_namespace))
    out: tuple[redress.AddressBudget, redress.AddressBudget] = got
    return out


def origin(state: AppState, request: Request, route: str) -> redress.Origin:
    p = state.policies.policies[state.policies.default]
    return redress.Origin(system_id=p.system, policy_name=p.name, policy_version=p.version,
                          route=route, request_id=getattr(request.state, "request_id", "-"))


async def staff_person(who: ReaderDep) -> Principal:
    """A person's token with the review or governance permission (reviewer, compliance,
    admin), checked before the body is read: a caller without it gets 401/403 whatever it
    sent. The admin key is no person, and what these routes record names one."""
    if not who.is_person:
        raise PermissionDeniedError("This names a person: use a person's token (guardrail "
                                    "users token NAME), not the admin key.",
                                    code="person_required")
    if not (who.can(Perm.REVIEW) or who.can(Perm.GOVERNANCE)):
        raise PermissionDeniedError(f"The {who.role} role cannot do this.",
                                    code="insufficient_role")
    return who


StaffPersonDep = Annotated[Principal, Depends(staff_person)]


class IntakeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field("", max_length=redress.TEXT_MAX,
                      description="What is wrong, in the complainant's own words.")
    response_id: str | None = Field(None, max_length=40)
    incident_id: str | None = Field(None, max_length=40)
    request_id: str | None = Field(None, max_length=64)
    contact: str | None = Field(None, max_length=redress.CONTACT_MAX)
    language: str | None = Field(None, max_length=8)


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: str = Field(min_length=1, max_length=redress.ANSWER_MAX)


@router.post("", status_code=201)
async def submit(body: IntakeIn, request: Request, state: State) -> dict[str, Any]:
    intakes, _ = budgets(state)
    it = redress.Intake(**body.model_dump(), channel="api").cleaned()  # 400 before counting
    intakes.check(client_addr(request))
    ack, _inc = await anyio.to_thread.run_sync(
        redress.submit, state.store, it, origin(state, request, "/v1/guardrail/redress"))
    return {"id": ack, "object": "guardrail.redress", "status": redress.RECEIVED,
            "status_url": f"/v1/guardrail/redress/{ack}"}


@router.get("/{ack_id}")
async def status(ack_id: str, request: Request, state: State,
                 response: Response) -> dict[str, Any]:
    _, lookups = budgets(state)
    lookups.check(client_addr(request))
    got = await anyio.to_thread.run_sync(redress.public_status, state.store, ack_id)
    response.headers["Cache-Control"] = "no-store"
    if got is None:
        raise NotFoundError("No redress request has this acknowledgement id.")
    return got


@router.post("/{ack_id}/answer")
async def answer(ack_id: str, body: AnswerIn, state: State,
                 who: StaffPersonDep) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(
        lambda: redress.answer(state.store, ack_id, body.answer, who))
