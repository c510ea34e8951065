"""The public redress pages (``router``; included by :mod:`guardrail.governance.routes`).

``GET /redress`` (the form), ``POST /redress`` (an intake: a double-submit CSRF token, as
the sign-in form has, then the per-address limit) and ``GET /redress/status?id=rd_...``
(status and answer). Japanese or English (:func:`guardrail.governance.pagekit.negotiate`).
A form whose token is missing or wrong is refused with 400 and the form again (the visitor
reloads it; nothing is recorded); too many intakes or lookups answer 429 with Retry-After.
"""

from __future__ import annotations

import secrets
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from guardrail.deps import AppState, State
from guardrail.errors import BadRequestError
from guardrail.governance import pagekit, redress
from guardrail.governance.redress_routes import budgets, origin
from guardrail.people import web

router = APIRouter(prefix="/redress", tags=["redress"], include_in_schema=False)

CSRF_COOKIE = "guardrail_redress_csrf"
FIELDS = ("response_id", "incident_id", "request_id", "text", "contact")


def _form_page(request: Request, state: AppState, locale: str, status_code: int = 200,
               error: str | None = None, wait: int = 0, form: dict[str, str] | None = None,
               headers: dict[str, str] | None = None) -> Response:
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    resp = pagekit.render(request, "redress_form.html", locale, status_code, headers,
                          csrf=token, error=error, wait=wait, form=form or {})
    resp.set_cookie(CSRF_COOKIE, token, max_age=3 * 3600, path="/redress", httponly=True,
                    samesite="lax", secure=web.secure(request, state))
    return resp


@router.get("", response_class=HTMLResponse)
async def form_page(request: Request, state: State) -> Response:
    return _form_page(request, state, pagekit.negotiate(request))


@router.post("")
async def submit(request: Request, state: State) -> Response:
    locale = pagekit.negotiate(request)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    kept = {k: form.get(k, "") for k in FIELDS}
    try:
        await web.check_csrf(request, request.cookies.get(CSRF_COOKIE))
    except web.CsrfError:
        return _form_page(request, state, locale, 400, "csrf", form=kept)
    try:
        it = redress.Intake(**kept, channel="web", language=locale).cleaned()
    except BadRequestError:
        return _form_page(request, state, locale, 400, "invalid", form=kept)
    intakes, _ = budgets(state)
    wait = intakes.take(web.client_addr(request))
    if wait:
        return _form_page(request, state, locale, 429, "limited", wait=wait, form=kept,
                          headers={"Retry-After": str(wait)})
    ack, _inc = await anyio.to_thread.run_sync(
        redress.submit, state.store, it, origin(state, request, "/redress"))
    return pagekit.render(request, "redress_received.html", locale, 201, ack=ack)


@router.get("/status", response_class=HTMLResponse)
async def status_page(request: Request, state: State) -> Response:
    locale = pagekit.negotiate(request)
    ack = (request.query_params.get("id") or "").strip()
    if not ack:
        return pagekit.render(request, "redress_status.html", locale, found=None)
    _, lookups = budgets(state)
    wait = lookups.take(web.client_addr(request))
    if wait:
        return pagekit.render(request, "redress_status.html", locale, 429,
                              {"Retry-After": str(wait)}, found=None, error="limited",
                              wait=wait)
    found: dict[str, Any] | None = await anyio.to_thread.run_sync(
        redress.public_status, state.store, ack)
    if found is None:
        return pagekit.render(request, "redress_status.html", locale, 404, found=None,
                              error="not_found")
    return pagekit.render(request, "redress_status.html", locale, found=found)
