"""Incident lifecycle API and page (``router`` and ``pages``; included by
:mod:`guardrail.governance.routes`).

``POST /v1/guardrail/incidents/{id}/lifecycle`` ``{"to", "reason", "owner"?, "serious"?:
{"kind"}, "reported"?}`` with a person's token (triage: reviewer, compliance or admin; the
rest: compliance or admin; 409 ``lifecycle_order`` for a step out of order);
``GET .../lifecycle`` (any role); ``GET /governance/incidents`` (admin and compliance
sessions): lifecycles, serious flags, reporting clocks, overdue counts. See
:mod:`guardrail.governance.lifecycle`.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from guardrail.deps import ReaderDep, State
from guardrail.governance import lifecycle, pagekit
from guardrail.governance.redress_routes import StaffPersonDep
from guardrail.people import web
from guardrail.people.roles import Perm

router = APIRouter(prefix="/v1/guardrail/incidents", tags=["lifecycle"])
pages = APIRouter(prefix="/governance", tags=["lifecycle"], include_in_schema=False)


class SeriousIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(max_length=32, description="A key of GUARDRAIL_INCIDENT_CLOCKS: "
                      "eu_general, eu_widespread, eu_death, appi, appi_improper by default.")


class LifecycleIn(BaseModel):
    """A step, a serious flag, a report, or several of them. The person is whoever the token
    belongs to."""

    model_config = ConfigDict(extra="forbid")

    to: str | None = Field(None, max_length=32, description=f"The next step: {lifecycle.STEPS}")
    reason: str = Field(min_length=1, max_length=4000)
    owner: str | None = Field(None, max_length=128, description="The remediation owner "
                              "(required for owner_assigned).")
    serious: SeriousIn | None = None
    reported: str | None = Field(None, max_length=32, description="A clock whose report "
                                 "was made (e.g. eu_report, appi_preliminary).")


@router.post("/{incident_id}/lifecycle", status_code=201)
async def change(incident_id: str, body: LifecycleIn, state: State,
                 who: StaffPersonDep) -> dict[str, Any]:
    c = lifecycle.Change(reason=body.reason, to=body.to, owner=body.owner,
                         serious=body.serious.kind if body.serious else None,
                         reported=body.reported)
    await anyio.to_thread.run_sync(lambda: lifecycle.change(
        state.store, incident_id, c, who, state.settings.incident_clocks))
    return await anyio.to_thread.run_sync(lambda: lifecycle.view(
        state.store, incident_id, state.settings.incident_clocks))


@router.get("/{incident_id}/lifecycle")
async def get_lifecycle(incident_id: str, state: State, _who: ReaderDep) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(lambda: lifecycle.view(
        state.store, incident_id, state.settings.incident_clocks))


@pages.get("/incidents", response_class=HTMLResponse)
async def incidents_page(request: Request, state: State) -> Response:
    me = await web.signed_in(request, state)
    if me is None:
        return RedirectResponse(web.SIGNIN_PATH, status_code=303)
    locale = pagekit.negotiate(request, me.principal.locale)
    if not me.principal.can(Perm.GOVERNANCE):
        return pagekit.render(request, "lifecycle_incidents.html", locale, 403, forbidden=True)
    clocks = state.settings.incident_clocks
    items = await anyio.to_thread.run_sync(lambda: lifecycle.listing(state.store, clocks))
    overdue = await anyio.to_thread.run_sync(
        lambda: lifecycle.overdue_clocks(state.store, None, clocks))
    return pagekit.render(request, "lifecycle_incidents.html", locale, items=items,
                          overdue=overdue, forbidden=False)
