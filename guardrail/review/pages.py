"""The review queue's HTML pages: sign in with name and password, triage, decide.

Sessions, cookies and CSRF are :mod:`guardrail.people.web`'s; the sign-in rate limit is
:class:`guardrail.people.ratelimit.SignInLimiter`'s (per name and client address); decisions
and assignment are :mod:`guardrail.review.decisions`'. Every page is in Japanese or English
(:mod:`guardrail.review.i18n`): the person's saved language, else the browser's, else English;
times in the person's time zone.

"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any, cast

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from guardrail.deps import AppState, State
from guardrail.errors import ApiError, NotFoundError, PermissionDeniedError
from guardrail.people import web
from guardrail.people.auth import people_store, sessions, signin_limiter
from guardrail.people.roles import ROLES, Perm, Principal, name_key
from guardrail.people.sessions import SignedIn
from guardrail.review import decisions, i18n, service

templates = {loc: Jinja2Templates(env=i18n.environment(loc)) for loc in i18n.LOCALES}
STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"review.css": "text/css", "review.js": "text/javascript"}

pages = APIRouter(prefix="/review", tags=["review"], include_in_schema=False)


def _login_redirect() -> Response:
    return RedirectResponse(web.SIGNIN_PATH, status_code=303)


def _locale(request: Request, who: Principal | None) -> str:
    return i18n.negotiate(who.locale if who else None, request.headers.get("accept-language"))


def _page(request: Request, name: str, me: SignedIn | None, status_code: int = 200,
          **context: Any) -> Response:
    who = me.principal if me else None
    locale = _locale(request, who)
    resp = templates[locale].TemplateResponse(request, name, {
        "me": who, "csrf": me.csrf_token if me else "", "locale": locale,
        "tz": (who.timezone if who else None) or i18n.DEFAULT_TIMEZONE,
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **context}, status_code=status_code)
    resp.headers["Content-Language"] = locale
    resp.headers["Vary"] = "Accept-Language, Cookie"
    return resp


def _refused(request: Request, me: SignedIn | None, exc: ApiError,
             back: str = "/review") -> Response:
    return _page(request, "refused.html", me, status_code=exc.status_code,
                 message=exc.message, code=exc.code, param=exc.param, back=back)


def _signin_page(request: Request, state: Any, error: str | None = None,
                 status_code: int = 200, headers: dict[str, str] | None = None,
                 wait: int = 0) -> Response:
    token = web.signin_token(request)
    resp = _page(request, "login.html", None, status_code=status_code, error=error,
                 wait=wait, signin_csrf=token)
    resp.headers.update(headers or {})
    web.set_signin_cookie(resp, request, state, token)
    return resp


@pages.get("/static/{name}")
async def static(name: str) -> Response:
    """The pages' own CSS and script (no CDN); only the files listed here."""
    if name not in STATIC_FILES:
        raise NotFoundError(f"No static file {name!r}.")
    return FileResponse(STATIC / name, media_type=STATIC_FILES[name],
                        headers={"Cache-Control": "public, max-age=300"})


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
        return _refused(request, None, exc, back=web.SIGNIN_PATH)
    form = await request.form()
    name, password = str(form.get("name") or ""), str(form.get("password") or "")
    try:
        key = name_key(name)
    except ApiError:
        key = name.strip().casefold()[:128]
    limiter, addr = signin_limiter(state), web.client_addr(request)
    wait = limiter.retry_after(key, addr)
    if wait:
        return _signin_page(request, state, "limited", status_code=429, wait=wait,
                            headers={"Retry-After": str(wait)})
    who = await anyio.to_thread.run_sync(people_store(state).authenticate, name, password)
    if who is None:
        limiter.failed(key, addr)
        return _signin_page(request, state, "wrong", status_code=401)
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


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def queue_filter(params: dict[str, str], who: Principal) -> tuple[service.QueueFilter, list[str]]:
    """The queue's filters from its query string, and the names of the fields that were not
    understood (ignored, and marked on the page)."""
    bad: list[str] = []
    def text(k: str) -> str | None:
        return (params.get(k) or "").strip()[:256] or None

    show = params.get("show") or "open"
    if show not in service.SHOW:
        bad.append("show")
        show = "open"
    sort = params.get("sort") or "oldest"
    if sort not in service.SORTS:
        bad.append("sort")
        sort = "oldest"
    days = {k: _day(params.get(k)) for k in ("since", "until")}
    bad += [k for k, v in days.items() if v is None and params.get(k)]
    mine = params.get("assignee") or ""
    assignee = {"": None, "me": who.name, "none": service.UNASSIGNED}.get(mine)
    if assignee is None and mine:
        bad.append("assignee")
    return service.QueueFilter(
        show=show, sort=cast(service.Sort, sort), since=days["since"], until=days["until"],
        assignee=assignee, tz=i18n.zone(who.timezone), scanner=text("scanner"),
        finding_scanner=text("finding_scanner"), category=text("category"),
        corpus=text("corpus"), rights_holder=text("rights_holder"), tenant=text("tenant"),
        system=text("system"), policy=text("policy")), bad


def _overdue(state: AppState) -> service.Overdue:
    return lambda row: decisions.overdue(state, row)


@pages.get("", response_class=HTMLResponse)
async def queue_page(request: Request, state: State) -> Response:
    me = await web.signed_in(request, state)
    if me is None:
        return _login_redirect()
    params = dict(request.query_params)
    filt, bad = queue_filter(params, me.principal)
    view = await anyio.to_thread.run_sync(service.queue, state.store, filt, _overdue(state))
    return _page(request, "queue.html", me, view=view, filt=filt, params=params, bad=bad,
                 shows=service.SHOW, sorts=service.SORTS, statuses=decisions.STATUSES)


def split_findings(inc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The incident's findings by what the detail page shows of them.

    A harm finding's ``evidence.output`` is the chunk that scored, cut from the redacted
    text (guardrail/incidents/evidence.py)."""
    out: dict[str, list[dict[str, Any]]] = {"ip": [], "harm": [], "pii": [], "other": []}
    for f in service.findings(inc):
        ev = f.get("evidence") if isinstance(f.get("evidence"), dict) else {}
        kind = str(f.get("kind"))
        out["ip" if ev and ev.get("passages") is not None
            else kind if kind in ("harm", "pii") else "other"].append(f)
    return out


async def _people_names(state: AppState) -> list[str]:
    """Who work can go to: enabled people who may decide (for the form's suggestions)."""
    got = await anyio.to_thread.run_sync(people_store(state).list)
    return [p["name"] for p in got if not p["disabled"] and p["role"] in ("admin", "reviewer")]


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
    hist = [{**h, "from": decisions.normal_status(h["from"]),
             "to": decisions.normal_status(h["to"])}
            for h in await anyio.to_thread.run_sync(
                lambda: service.history(state.store, incident_id, None))]
    can_decide = me.principal.can(Perm.REVIEW)
    return _page(request, "detail.html", me, inc=row, found=split_findings(row), history=hist,
                 statuses=decisions.STATUSES, can_decide=can_decide,
                 decided=row["review_status"] in decisions.DECIDED_STATUSES,
                 due_at=decisions.sla_due_at(state, row),
                 overdue=decisions.overdue(state, row),
                 four_eyes=decisions.four_eyes_for(state, row),
                 people=await _people_names(state) if can_decide else [],
                 roles=[r for r in ROLES if r != "auditor"])


Act = Callable[[Principal, dict[str, str]], Awaitable[object]]


async def _reviewer_action(request: Request, state: AppState, incident_id: str,
                           act: Act) -> Response:
    """A reviewer's form posted on an incident: the sign-in, CSRF and role checks, then
    ``act(person, form)``; back to the incident, or a page saying why not."""
    me = await web.signed_in(request, state)
    if me is None:
        return _login_redirect()
    back = f"/review/incidents/{incident_id}"
    try:
        await web.check_csrf(request, me.csrf_token)
        if not me.principal.can(Perm.REVIEW):  # before the form is read: a 403, not a 400
            raise PermissionDeniedError(f"The {me.principal.role} role cannot record "
                                        "decisions.", code="insufficient_role")
        form = await request.form()
        await act(me.principal, {k: v for k, v in form.items() if isinstance(v, str)})
    except ApiError as exc:
        return _refused(request, me, exc, back=back)
    return RedirectResponse(back, status_code=303)


@pages.post("/incidents/{incident_id}")
async def decide(request: Request, incident_id: str, state: State) -> Response:
    async def act(who: Principal, form: dict[str, str]) -> object:
        return await decisions.decide_with_policy(
            state, incident_id, decision=form.get("decision", ""),
            reason=form.get("reason", ""), who=who, escalate_to=form.get("escalate_to") or None,
            expected_status=form.get("expected_status") or None)

    return await _reviewer_action(request, state, incident_id, act)


@pages.post("/incidents/{incident_id}/assign")
async def assign(request: Request, incident_id: str, state: State) -> Response:
    """``to=me``: the signed-in person; ``to=none``: nobody; else the ``assignee`` field."""
    async def act(who: Principal, form: dict[str, str]) -> object:
        to = form.get("to")
        target = who.name if to == "me" else None if to == "none" else (
            form.get("assignee") or None)
        return await anyio.to_thread.run_sync(lambda: decisions.assign(
            state.store, incident_id, assignee=target, who=who))

    return await _reviewer_action(request, state, incident_id, act)


def _settings_page(request: Request, me: SignedIn, status_code: int = 200,
                   **context: Any) -> Response:
    return _page(request, "settings.html", me, status_code=status_code,
                 zones=i18n.timezones(), locales=i18n.LOCALES, **context)


@pages.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request, state: State) -> Response:
    me = await web.signed_in(request, state)
    if me is None:
        return _login_redirect()
    return _settings_page(request, me, saved=request.query_params.get("saved") == "1")


@pages.post("/settings")
async def save_settings(request: Request, state: State) -> Response:
    """The person's language and time zone. A form without a ``timezone`` field (the header's
    language buttons) keeps the saved one; ``next`` is where to go back to (a review page)."""
    me = await web.signed_in(request, state)
    if me is None:
        return _login_redirect()
    try:
        await web.check_csrf(request, me.csrf_token)
    except web.CsrfError as exc:
        return _refused(request, me, exc)
    form = await request.form()
    who = me.principal
    locale = str(form.get("locale") or "") or None
    raw_tz = form.get("timezone")
    tz = who.timezone if raw_tz is None else (str(raw_tz).strip() or None)
    if locale is not None and locale not in i18n.LOCALES:
        return _settings_page(request, me, 400, error="locale")
    if tz is not None and i18n.check_timezone(tz) is None:
        return _settings_page(request, me, 400, error="timezone", bad_tz=tz)
    assert who.person_id is not None  # a session is a person's
    await anyio.to_thread.run_sync(people_store(state).set_prefs, who.person_id, locale, tz)
    nxt = str(form.get("next") or "")
    if not (nxt.startswith("/review") and not nxt.startswith("//")):
        nxt = "/review/settings?saved=1"
    return RedirectResponse(nxt, status_code=303)
