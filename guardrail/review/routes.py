"""The review queue: IP reviewers and trust-and-safety staff triage incidents.

HTML pages under ``/review`` (admin key entered once at ``/review/login``, kept in an HttpOnly,
SameSite=Strict cookie) and a JSON API under ``/v1/guardrail/incidents/{id}/review``.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from guardrail.deps import AdminDep, State
from guardrail.errors import NotFoundError
from guardrail.review import service

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

api = APIRouter(prefix="/v1/guardrail/incidents", tags=["review"])
pages = APIRouter(prefix="/review", tags=["review"], include_in_schema=False)

COOKIE = "guardrail_review"


class ReviewIn(BaseModel):
    status: str
    reviewer: str = Field(min_length=1, max_length=128)
    note: str = Field("", max_length=4000)
    owner: str | None = Field(None, max_length=128)


@api.post("/{incident_id}/review")
async def review_incident(incident_id: str, body: ReviewIn, state: State,
                          _admin: AdminDep) -> dict[str, Any]:
    row = await anyio.to_thread.run_sync(
        lambda: service.review(state.store, incident_id, status=body.status,
                               reviewer=body.reviewer, note=body.note, owner=body.owner))
    hist = await anyio.to_thread.run_sync(service.history, state.store, incident_id)
    return {"incident": row, "history": hist}


@api.get("/{incident_id}/reviews")
async def review_history(incident_id: str, state: State, _admin: AdminDep) -> dict[str, Any]:
    if await anyio.to_thread.run_sync(state.store.get, incident_id) is None:
        raise NotFoundError(f"No incident with id {incident_id!r}.")
    return {"object": "list",
            "data": await anyio.to_thread.run_sync(service.history, state.store, incident_id)}


# -- HTML ---------------------------------------------------------------------------------
def _session_token(state: Any) -> str | None:
    key = state.settings.admin_key
    if key is None:
        return None
    return hashlib.sha256(b"guardrail-review:" + key.get_secret_value().encode()).hexdigest()


def _authed(request: Request, state: Any) -> bool:
    token = _session_token(state)
    got = request.cookies.get(COOKIE, "")
    return token is not None and hmac.compare_digest(token.encode(), got.encode())


def _login_redirect() -> Response:
    return RedirectResponse("/review/login", status_code=303)


@pages.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, state: State) -> Response:
    return templates.TemplateResponse(request, "login.html", {
        "disabled": state.settings.admin_key is None, "error": None})


@pages.post("/login")
async def login(request: Request, state: State, admin_key: Annotated[str, Form()],
                reviewer: Annotated[str, Form()]) -> Response:
    token = _session_token(state)
    key = state.settings.admin_key
    if key is None or token is None or not hmac.compare_digest(
            key.get_secret_value().encode(), admin_key.encode()) or not reviewer.strip():
        return templates.TemplateResponse(request, "login.html", {
            "disabled": key is None, "error": "Wrong admin key, or no reviewer name."},
            status_code=401)
    resp = RedirectResponse("/review", status_code=303)
    resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/review")
    resp.set_cookie("guardrail_reviewer", reviewer.strip()[:128], httponly=True,
                    samesite="strict", path="/review")
    return resp


@pages.post("/logout")
async def logout() -> Response:
    resp = RedirectResponse("/review/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/review")
    return resp


@pages.get("", response_class=HTMLResponse)
async def queue_page(request: Request, state: State, scanner: str | None = None,
                     show: str = "open") -> Response:
    if not _authed(request, state):
        return _login_redirect()
    statuses = service.OPEN_STATUSES if show == "open" else tuple(service.STATUSES)
    rows = await anyio.to_thread.run_sync(
        lambda: service.queue(state.store, statuses=statuses, scanner=scanner or None))
    return templates.TemplateResponse(request, "queue.html", {
        "rows": rows, "scanner": scanner or "", "show": show,
        "reviewer": request.cookies.get("guardrail_reviewer", "")})


@pages.get("/incidents/{incident_id}", response_class=HTMLResponse)
async def detail_page(request: Request, incident_id: str, state: State) -> Response:
    if not _authed(request, state):
        return _login_redirect()
    row = await anyio.to_thread.run_sync(state.store.get, incident_id)
    if row is None:
        return templates.TemplateResponse(request, "missing.html", {"id": incident_id},
                                          status_code=404)
    hist = await anyio.to_thread.run_sync(service.history, state.store, incident_id)
    findings = (row.get("evidence") or {}).get("findings", [])
    return templates.TemplateResponse(request, "detail.html", {
        "inc": row, "findings": findings, "history": hist, "statuses": service.STATUSES,
        "reviewer": request.cookies.get("guardrail_reviewer", "")})


@pages.post("/incidents/{incident_id}")
async def decide(request: Request, incident_id: str, state: State,
                 status: Annotated[str, Form()], note: Annotated[str, Form()] = "",
                 owner: Annotated[str, Form()] = "") -> Response:
    if not _authed(request, state):
        return _login_redirect()
    reviewer = request.cookies.get("guardrail_reviewer", "")
    await anyio.to_thread.run_sync(
        lambda: service.review(state.store, incident_id, status=status, reviewer=reviewer,
                               note=note, owner=owner or None))
    return RedirectResponse(f"/review/incidents/{incident_id}", status_code=303)
