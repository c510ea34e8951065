"""The access matrix: every route of the built app, against every kind of caller.

The routes come from the app's own route table (:func:`guardrail.access.routes_of`), so a
route added without a rule in :data:`guardrail.access.ACCESS` fails here, and every route is
called with no credentials, a configured and a stored client key, the admin key, an API token
of each role and a browser session of each role. Denied: 401/403 in the API's error format
(JSON routes) or the sign-in redirect / a 403 page (review pages). Allowed: anything but 401
or 403 (a 404 for a dummy id is fine), and never a 5xx.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from guardrail import access
from guardrail.access import Access
from guardrail.people.auth import sessions
from guardrail.people.keys import ClientKeys
from guardrail.people.roles import ROLES
from guardrail.people.web import SESSION_COOKIE, SIGNIN_COOKIE, SIGNIN_PATH
from tests.api.formats import error_problem
from tests.people.helpers import PASSWORD, add_person, make_held, people, token_for

SIGNIN_NAME = "matrix-signin"


@dataclass(frozen=True)
class Caller:
    name: str
    kind: str  # none (nobody known) | client | admin_key | token | session
    role: str | None = None
    bearer: str | None = None
    person_token: str | None = None  # a session's person (found by token)
    sid: str | None = None  # a fixed session cookie (one that must no longer work)


def _callers(srv) -> list[Caller]:
    stored_key = ClientKeys(people(srv)).add("acme")[1]
    out = [Caller("nobody", "none"),
           Caller("client-key", "client", bearer=srv.client_key),
           Caller("stored-client-key", "client", bearer=stored_key),
           Caller("admin-key", "admin_key", role="admin", bearer=srv.admin_key)]
    for role in ROLES:
        people(srv).add(f"matrix-{role}", role)  # token-only account (no password)
        token = token_for(srv, f"matrix-{role}")
        out.append(Caller(f"token:{role}", "token", role, bearer=token))
        out.append(Caller(f"session:{role}", "session", role, person_token=token))
    # credentials that must be worth nothing: unknown, and a disabled admin's token and session
    people(srv).add("matrix-gone", "admin")
    gone = token_for(srv, "matrix-gone")
    sid = sessions(srv.state).create(people(srv).by_token(gone))
    people(srv).set_disabled("matrix-gone", True)
    out += [Caller("unknown-token", "none", bearer="gr_pt_" + "x" * 43),
            Caller("disabled-admin", "none", bearer=gone, sid=sid)]
    return out


def allowed(rule: Access, caller: Caller) -> bool:
    if rule.kind == "public":
        return True
    if rule.kind == "client":
        return caller.kind == "client"
    if rule.kind == "api":
        if caller.kind == "admin_key":
            return "admin" in rule.roles and not rule.person
        return caller.kind == "token" and caller.role in rule.roles
    return caller.kind == "session" and caller.role in rule.roles


def _recognised(rule: Access, caller: Caller) -> bool:
    """Whether the route knows who the caller is (then 403, else 401)."""
    if rule.kind == "client":
        return caller.kind == "client"
    return caller.kind in ("token", "admin_key")


# Path parameters (real ids where the matrix has them; dummies answer 404, which is "allowed").
def _fill(path: str, ids: dict[str, str]) -> str:
    import re

    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: ids.get(m.group(1), "1"), path)


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()

# What each route is sent, so that an allowed caller gets past validation where it can.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/chat/completions"): {"json": {
        "model": "echo", "messages": [{"role": "user", "content": "hello"}]}},
    ("POST", "/v1/completions"): {"json": {"model": "echo", "prompt": "hello"}},
    ("POST", "/v1/images/generations"): {"json": {"prompt": "a lighthouse"}},
    ("POST", "/v1/images/edits"): {"files": {"image": ("a.png", b"\x89PNG\r\n", "image/png")},
                                   "data": {"prompt": "a lighthouse"}},
    ("POST", "/v1/guardrail/verify"): {"json": {"image": PNG}},
    ("POST", "/v1/guardrail/corpora"): {"json": {
        "name": "matrix", "rights_holder": "Matrix Press", "license": "all rights reserved"}},
    ("PATCH", "/v1/guardrail/corpora/{name}"): {"json": {"description": "d"}},
    ("POST", "/v1/guardrail/corpora/{name}/works"): {"json": {
        "works": [{"title": "t", "text": "a short registered work of the matrix corpus"}]}},
    ("POST", "/v1/guardrail/incidents/{incident_id}/decisions"): {"json": {
        "decision": "escalate", "reason": "m", "escalate_to": "admin"}},
    ("POST", "/v1/guardrail/incidents/{incident_id}/assignee"): {"json": {"assignee": "kato"}},
    ("POST", "/review/incidents/{incident_id}"): {"data": {
        "decision": "escalate", "reason": "m", "escalate_to": "admin"}},
}


@dataclass
class Matrix:
    srv: Any
    ids: dict[str, str]
    callers: list[Caller]
    http: httpx.Client

    def call(self, method: str, path: str, caller: Caller) -> httpx.Response:
        headers: dict[str, str] = {}
        cookies: dict[str, str] = {}
        kw = {k: (dict(v) if isinstance(v, dict) else v)
              for k, v in BODIES.get((method, path), {}).items()}
        if caller.bearer:
            headers["Authorization"] = f"Bearer {caller.bearer}"
        if caller.kind == "session":  # a fresh session each time (one cell signs out)
            sess = sessions(self.srv.state)
            person = people(self.srv).by_token(caller.person_token)
            sid = sess.create(person)
            cookies[SESSION_COOKIE] = sid
            if path.startswith("/review") and method == "POST":
                kw.setdefault("data", {})["csrf_token"] = sess.get(sid).csrf_token
        if caller.sid:
            cookies[SESSION_COOKIE] = caller.sid
        if (method, path) == ("POST", SIGNIN_PATH):  # the sign-in form's double-submit token
            cookies[SIGNIN_COOKIE] = "matrix-signin-csrf"
            kw["data"] = {"name": SIGNIN_NAME, "password": PASSWORD,
                          "csrf_token": "matrix-signin-csrf"}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        try:
            return self.http.request(method, _fill(path, self.ids), headers=headers, **kw)
        finally:
            self.http.cookies.clear()  # each cell is a caller of its own


@pytest.fixture
def matrix(make_server) -> Iterator[Matrix]:
    srv, inc_id = make_held(make_server)
    add_person(srv, SIGNIN_NAME, "auditor")  # the one with a password: signs in by form
    with httpx.Client(base_url=srv.root_url, timeout=30) as http:
        yield Matrix(srv, {"incident_id": inc_id, "name": "matrix", "image_id": "img_unknown"},
                     _callers(srv), http)


def _denial_problem(rule: Access, caller: Caller, r: httpx.Response) -> str | None:
    if rule.kind == "page":
        if caller.kind != "session":
            if r.status_code != 303 or r.headers.get("location") != SIGNIN_PATH:
                return f"HTTP {r.status_code}, not the 303 redirect to {SIGNIN_PATH}"
            return None
        if r.status_code != 403 or not r.headers.get("content-type", "").startswith("text/html"):
            return f"HTTP {r.status_code} {r.headers.get('content-type')}, not a 403 page"
        return None
    want = 403 if _recognised(rule, caller) else 401
    if r.status_code != want:
        return f"HTTP {r.status_code}, want {want}"
    return error_problem(r.status_code, r.headers.get("content-type"), r.content)


def _allowed_problem(rule: Access, r: httpx.Response) -> str | None:
    if r.status_code in (401, 403) or r.status_code >= 500:
        return f"HTTP {r.status_code}: {' '.join(r.text[:300].split())}"
    if rule.kind == "page" and r.is_redirect and r.headers.get("location") == SIGNIN_PATH:
        return "redirected to sign-in"
    return None


def test_every_route_has_an_access_rule(matrix):
    app: FastAPI = matrix.srv.app
    routes = access.routes_of(app)
    assert len(routes) >= 30, routes  # the walk found the included routers' routes
    missing = [f"route {m} {p} has no access rule" for m, p in access.unruled(app)]
    assert not missing, "\n".join(missing)
    stale = sorted(set(access.ACCESS) - set(routes))
    assert not stale, f"access rules for routes the app does not serve: {stale}"


def test_a_route_added_without_a_rule_is_caught(matrix):
    app: FastAPI = matrix.srv.app
    sub = FastAPI()

    @sub.get("/everything")
    async def everything() -> dict[str, str]:
        return {}

    @app.get("/v1/guardrail/new-thing")
    async def new_thing() -> dict[str, str]:
        return {}

    app.mount("/sub", sub)
    found = access.unruled(app)
    assert ("GET", "/v1/guardrail/new-thing") in found
    assert ("GET", "/sub/everything") in found and ("GET", "/sub/openapi.json") in found


def test_access_matrix(matrix):
    problems: list[str] = []
    cells = 0
    for method, path in access.routes_of(matrix.srv.app):
        rule = access.rule_for(method, path)
        assert rule is not None, f"route {method} {path} has no access rule"
        for caller in matrix.callers:
            r = matrix.call(method, path, caller)
            cells += 1
            ok = allowed(rule, caller)
            problem = _allowed_problem(rule, r) if ok else _denial_problem(rule, caller, r)
            if problem:
                problems.append(f"{method} {path} [{rule}] as {caller.name}: "
                                f"{'allowed' if ok else 'denied'}, but {problem}")
    assert cells >= 30 * 12
    assert not problems, f"{len(problems)} of {cells} cells wrong:\n" + "\n".join(problems)
