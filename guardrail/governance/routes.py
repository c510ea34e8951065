"""Governance routes: the inventory API, the admin pages, and the other governance modules'
routers where they exist.

========================================== ==============================================
``GET /v1/guardrail/systems``              the inventory with each system's status
``GET /v1/guardrail/systems/{system_id}``  one system, its assessments and models seen
``GET /v1/guardrail/report``               the compliance report as JSON (``from``, ``to``,
                                           ``lang``, ``tz``)
``GET /governance/systems``                the inventory page (signed in)
``GET /governance/report``                 the report page (signed in; prints to PDF)
========================================== ==============================================

All of them: admin, compliance, auditor (the API takes the admin key or a person's token).
``routers`` also carries the routers of the lifecycle and redress modules of this package
(``routers``, or ``router`` / ``pages`` / ``api``, of each module that exists).
"""

from __future__ import annotations

import importlib
import importlib.util
from datetime import date, timedelta
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from guardrail.deps import AppState, State, _bearer
from guardrail.errors import BadRequestError, NotFoundError, PermissionDeniedError
from guardrail.governance import catalog as cat
from guardrail.governance.assessments import describe
from guardrail.governance.evidence import Period
from guardrail.governance.report import Context, build, environment, render
from guardrail.governance.setup import governance
from guardrail.people import web
from guardrail.people.auth import api_principal
from guardrail.people.roles import Perm, Principal

READERS = ("admin", "compliance", "auditor")
PARTNERS = ("lifecycle_routes", "redress_routes", "redress_pages", "retention_routes",
            "bundle_routes", "lifecycle", "redress", "retention", "bundle")
MAX_DAYS = 3660


async def require_reader(request: Request, state: State) -> Principal:
    """The admin key, or a person's token with the admin, compliance or auditor role."""
    who = await api_principal(state, _bearer(request), Perm.READ_INCIDENTS)
    if who.role not in READERS:
        raise PermissionDeniedError(f"The {who.role} role cannot read governance records.",
                                    code="insufficient_role")
    return who


ReaderDep = Annotated[Principal, Depends(require_reader)]
api = APIRouter(prefix="/v1/guardrail", tags=["governance"])
pages = APIRouter(prefix="/governance", tags=["governance"], include_in_schema=False)


def system_view(state: AppState, system_id: str) -> dict[str, Any]:
    gov = governance(state)
    s = gov.inventory.systems[system_id]
    st = gov.status.get(system_id)
    return {"object": "ai_system", **s.model_dump(mode="json"), "placeholder": s.placeholder,
            "file": str(gov.inventory.files.get(system_id, "")) or None,
            "reassessment": st.as_dict() if st else None}


@api.get("/systems")
async def list_systems(state: State, _who: ReaderDep) -> dict[str, Any]:
    gov = governance(state)
    return {"object": "list", "data": [system_view(state, sid) for sid in gov.inventory.systems],
            "inventory": {"found": gov.inventory.found,
                          "directory": str(gov.inventory.directory or "")},
            "reassessment_due": gov.due()}


@api.get("/systems/{system_id}")
async def get_system(system_id: str, state: State, _who: ReaderDep) -> dict[str, Any]:
    gov = governance(state)
    if system_id not in gov.inventory.systems:
        raise NotFoundError(f"No AI system {system_id!r} in the inventory.")
    seen = gov.seen_store.rows(system_id) if gov.seen_store else []
    return {**system_view(state, system_id),
            "assessments": [describe(a) | {"file": str(p)} for p, a in gov.assessments.values()
                            if a.system == system_id],
            "models_seen": seen}


def parse_period(start: str | None, end: str | None, tz: str | None = None,
                 today: date | None = None) -> Period:
    """``from``/``to`` (YYYY-MM-DD, inclusive; default: the last 30 days) and a time zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    today = today or date.today()
    try:
        to = date.fromisoformat(end) if end else today
        frm = date.fromisoformat(start) if start else to - timedelta(days=29)
    except ValueError:
        raise BadRequestError("from and to are dates: YYYY-MM-DD.", param="from",
                              code="invalid_value") from None
    if frm > to or (to - frm).days > MAX_DAYS:
        raise BadRequestError(f"from must be on or before to, at most {MAX_DAYS} days apart.",
                              param="from", code="invalid_value")
    try:
        zone = ZoneInfo(tz) if tz else None
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequestError(f"Unknown time zone {tz!r}.", param="tz",
                              code="invalid_value") from None
    return Period(frm, to, zone) if zone else Period(frm, to)


def context(state: AppState) -> Context:
    return Context(state.settings, state.policies, governance(state), state.store.engine)


@api.get("/report")
async def report_json(state: State, _who: ReaderDep,
                      start: Annotated[str | None, Query(alias="from")] = None,
                      end: Annotated[str | None, Query(alias="to")] = None,
                      lang: str = "en", tz: str | None = None) -> dict[str, Any]:
    period = parse_period(start, end, tz)
    return await anyio.to_thread.run_sync(lambda: build(context(state), period, lang))


# -- pages -------------------------------------------------------------------------------------

def page_lang(request: Request, who: Principal | None) -> str:
    asked = request.query_params.get("lang")
    if asked in cat.LANGS:
        return asked
    if who is not None and who.locale in cat.LANGS:
        return who.locale
    for part in (request.headers.get("accept-language") or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in cat.LANGS:
            return code
    return "en"


def _html(name: str, lang: str, status_code: int = 200, **context: Any) -> Response:
    body = environment().get_template(name).render(lang=lang, **context)
    return HTMLResponse(body, status_code=status_code,
                        headers={"Content-Language": lang, "Vary": "Accept-Language, Cookie",
                                 "Cache-Control": "no-store"})


async def _reader_page(request: Request, state: AppState,
                       ) -> tuple[Principal | None, str, Response | None]:
    me = await web.signed_in(request, state)
    if me is None:
        return None, "en", RedirectResponse(web.SIGNIN_PATH, status_code=303)
    who = me.principal
    lang = page_lang(request, who)
    if who.role not in READERS:
        return who, lang, _html("gov_refused.html", lang, status_code=403, me=who)
    return who, lang, None


@pages.get("/systems", response_class=HTMLResponse)
async def systems_page(request: Request, state: State) -> Response:
    who, lang, done = await _reader_page(request, state)
    if done is not None:
        return done
    gov = governance(state)
    seen = await anyio.to_thread.run_sync(gov.seen_store.rows) if gov.seen_store else []
    return _html("systems.html", lang, me=who, gov=gov, seen=seen,
                 files={k: str(v) for k, v in gov.inventory.files.items()})


@pages.get("/report", response_class=HTMLResponse)
async def report_page(request: Request, state: State) -> Response:
    who, lang, done = await _reader_page(request, state)
    if done is not None:
        return done
    q = request.query_params
    error = None
    try:
        period = parse_period(q.get("from"), q.get("to"), q.get("tz") or (
            who.timezone if who else None))
    except BadRequestError:
        error, period = cat.t("bad_period", lang), parse_period(None, None)
    rep = await anyio.to_thread.run_sync(lambda: build(context(state), period, lang))
    return HTMLResponse(render(rep, "html", me=who, form=True, error=error),
                        status_code=400 if error else 200,
                        headers={"Content-Language": lang, "Cache-Control": "no-store"})


def _partner_routers() -> list[APIRouter]:
    out: list[APIRouter] = []
    for name in PARTNERS:
        module = f"guardrail.governance.{name}"
        if importlib.util.find_spec(module) is None:
            continue
        mod = importlib.import_module(module)
        found = getattr(mod, "routers", None)
        if found is None:
            found = [getattr(mod, a) for a in ("router", "api", "pages")
                     if isinstance(getattr(mod, a, None), APIRouter)]
        out += [r for r in found if all(r is not o for o in out)]
    return out


routers: list[APIRouter] = [api, pages, *_partner_routers()]
