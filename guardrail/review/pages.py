"""The review queue's HTML pages: sign in with name and password, triage, decide.

Sessions, cookies and CSRF are :mod:`guardrail.people.web`'s; the sign-in rate limit is
:class:`guardrail.people.ratelimit.SignInLimiter`'s (per name and client address).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from guardrail.deps import State
from guardrail.errors import ApiError
from guardrail.people import web
from guardrail.people.auth import people_store, sessions, signin_limiter
from guardrail.people.roles import Perm, name_key
from guardrail.people.sessions import SignedIn
from guardrail.review import service

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

pages = APIRouter(prefix="/review", tags=["review"], include_in_schema=False)


def _login_redirect() -> Response:
    return RedirectResponse(web.SIGNIN_PATH, status_code=303)


def _page(request: Request, name: str, me: SignedIn | None, status_code: int = 200,
          **context: Any) -> Response:
    return templates.TemplateResponse(request, name, {
        "me": me.principal if me else None, "csrf": me.csrf_token if me else "", **context},
        status_code=status_code)


def _refused(request: Request, me: SignedIn | None, exc: ApiError) -> Response:
    return _page(request, "refused.html", me, status_code=exc.status_code,
                 message=exc.message)


def _signin_page(request: Request, state: Any, error: str | None = None,
                 status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    token = web.signin_token(request)
    resp = _page(request, "login.html", None, status_code=status_code, error=error,
                 signin_csrf=token)
    resp.headers.update(headers or {})
    web.set_signin_cookie(resp, request, state, token)
    return resp


@pages.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, state: State) -> Response:
    if await web.signed_in(request, state) is not None:
        return RedirectResponse("/review", status_code=303)
    return _signin_page(request, state)


@pages.post("/login")
async def login(request: Request, state: State) -> Response:
    try:
        await web.check_csrf(request, request.cookies.get(web.SIGNIN_COOKIE))
    except web.CsrfError as exc:
        return _refused(request, None, exc)
    form = await request.form()
    name, password = str(form.get("name") or ""), str(form.get("password") or "")
    try:
        key = name_key(name)
    except ApiError:
        key = name.strip().casefold()[:128]
    limiter, addr = signin_limiter(state), web.client_addr(request)
    wait = limiter.retry_after(key, addr)
    if wait:
        return _signin_page(request, state, f"Too many failed sign-ins: try again in {wait} s.",
                            status_code=429, headers={"Retry-After": str(wait)})
    who = await anyio.to_thread.run_sync(people_store(state).authenticate, name, password)
    if who is None:
        limiter.failed(key, addr)
        return _signin_page(request, state, "Wrong name or password.", status_code=401)
    limiter.succeeded(key, addr)
    sid = await anyio.to_thread.run_sync(sessions(state).create, who)
    resp = RedirectResponse("/review", status_code=303)
    web.set_session(resp, request, state, sid)
    return resp


@pages.post("/logout")
async def logout(request: Request, state: State) -> Response:
    me = await web.signed_in(request, state)
    if me is not None:
        try:
            await web.check_csrf(request, me.csrf_token)
        except web.CsrfError as exc:
            return _refused(request, me, exc)
        await anyio.to_thread.run_sync(sessions(state).revoke,
                                       request.cookies.get(web.SESSION_COOKIE))
    resp = _login_redirect()
    web.clear_session(resp)
    return resp


@pages.get("", response_class=HTMLResponse)
async def queue_page(request: Request, state: State, scanner: str | None = None,
                     show: str = "open") -> Response:
    me = await web.signed_in(request, state)
    if me is None:
        return _login_redirect()
    statuses = service.OPEN_STATUSES if show == "open" else tuple(service.STATUSES)
    rows = await anyio.to_thread.run_sync(
        lambda: service.queue(state.store, statuses=statuses, scanner=scanner or None))
    return _page(request, "queue.html", me, rows=rows, scanner=scanner or "", show=show)


@pages.get("/incidents/{incident_id}", response_class=HTMLResponse)
async def detail_page(request: Request, incident_id: str, state: State) -> Response:
    me = await web.signed_in(request, state)
    if me is None:
        return _login_redirect()
    try:
        row = await anyio.to_thread.run_sync(
            service.open_incident, state.store, incident_id, me.principal, "review page")
    except ApiError as exc:
        return _refused(request, me, exc)
    if row is None:
        return _page(request, "missing.html", me, status_code=404, id=incident_id)
    hist = await anyio.to_thread.run_sync(service.history, state.store, incident_id)
    findings = (row.get("evidence") or {}).get("findings", [])
    return _page(request, "detail.html", me, inc=row, findings=findings, history=hist,
                 statuses=service.STATUSES, can_decide=me.principal.can(Perm.REVIEW))


@pages.post("/incidents/{incident_id}")
async def decide(request: Request, incident_id: str, state: State) -> Response:
    me = await web.signed_in(request, state)
    if me is None:
        return _login_redirect()
    try:
        await web.check_csrf(request, me.csrf_token)
        form = await request.form()
        status, note = str(form.get("status") or ""), str(form.get("note") or "")
        owner = str(form.get("owner") or "") or None
        await anyio.to_thread.run_sync(
            lambda: service.review(state.store, incident_id, status=status,
                                   reviewer=me.principal, note=note, owner=owner))
    except ApiError as exc:
        return _refused(request, me, exc)
    return RedirectResponse(f"/review/incidents/{incident_id}", status_code=303)
