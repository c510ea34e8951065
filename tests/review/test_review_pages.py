"""Signing in to the review pages: people, sessions, CSRF, rate limit, cookies, Unicode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from guardrail.people.models import SessionRow
from guardrail.review import service
from tests.people.helpers import (
    PASSWORD,
    add_person,
    csrf_in,
    make_held,
    people,
    post_login,
    sign_in,
)


def _decide(c: httpx.Client, inc_id: str, decision: str = "reject", **extra) -> httpx.Response:
    page = c.get(f"/review/incidents/{inc_id}")
    data = {"decision": decision, "reason": "n", "csrf_token": csrf_in(page.text), **extra}
    return c.post(f"/review/incidents/{inc_id}", data=data)


def test_unicode_name_signs_in_decides_and_is_recorded(held):
    """山田花子 answered 500 (her name went into a Latin-1 cookie header)."""
    srv, inc_id = held
    add_person(srv, "山田花子", "reviewer")
    with sign_in(srv, "山田花子") as c:
        queue = c.get("/review")
        assert queue.status_code == 200 and "山田花子 (reviewer)" in queue.text
        assert all(v.isascii() for v in c.cookies.values())  # only a random id in the cookie
        r = _decide(c, inc_id, "escalate", escalate_to="法務部")
        assert r.status_code == 303
    rec = srv.store.get(inc_id)
    assert (rec["review_status"], rec["reviewer"], rec["assignee"]) == ("escalated", "山田花子",
                                                                        "法務部")
    [h] = service.history(srv.store, inc_id)
    assert (h["reviewer"], h["role"], h["owner"]) == ("山田花子", "reviewer", "法務部")
    assert h["person_id"] == people(srv).get("山田花子")["id"]


def test_the_recorded_name_is_the_signed_in_person(held):
    srv, inc_id = held
    add_person(srv, "kato", "reviewer")
    with sign_in(srv, "kato") as c:
        # an old form field naming someone else changes nothing
        assert _decide(c, inc_id, reviewer="mallory").status_code == 303
    assert [h["reviewer"] for h in service.history(srv.store, inc_id)] == ["kato"]


def test_wrong_password_and_unknown_person_are_refused(held):
    srv, _ = held
    add_person(srv, "kato", "reviewer")
    with httpx.Client(base_url=srv.root_url) as c:
        assert post_login(c, "kato", "not the password").status_code == 401
        assert post_login(c, "nobody", PASSWORD).status_code == 401
        assert c.get("/review", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("token", [pytest.param(None, id="missing"),
                                   pytest.param("forged", id="wrong")])
def test_csrf_missing_or_wrong_is_403(held, token):
    srv, inc_id = held
    add_person(srv, "kato", "reviewer")
    extra = {} if token is None else {"csrf_token": token}
    with sign_in(srv, "kato") as c:
        r = c.post(f"/review/incidents/{inc_id}",
                   data={"decision": "release", "reason": "r", **extra})
        assert r.status_code == 403 and "CSRF" in r.text
        assert c.post("/review/logout", data=extra).status_code == 403
        assert c.get("/review").status_code == 200  # still signed in: logout was refused
    with httpx.Client(base_url=srv.root_url) as c:
        c.get("/review/login")  # the sign-in form's own token is in the cookie
        r = c.post("/review/login", data={"name": "kato", "password": PASSWORD, **extra})
        assert r.status_code == 403
    assert srv.store.get(inc_id)["review_status"] == "open"
    assert service.history(srv.store, inc_id) == []


def test_logout_revokes_the_session_server_side(held):
    srv, _ = held
    add_person(srv, "kato", "reviewer")
    with sign_in(srv, "kato") as c:
        copied = dict(c.cookies)
        page = c.get("/review")
        r = c.post("/review/logout", data={"csrf_token": csrf_in(page.text)})
        assert r.status_code == 303 and r.headers["location"] == "/review/login"
    with httpx.Client(base_url=srv.root_url, cookies=copied) as replay:
        r = replay.get("/review", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/review/login"


def test_sessions_are_per_sign_in_not_derived_from_a_key(held):
    srv, _ = held
    add_person(srv, "kato", "reviewer")
    with sign_in(srv, "kato") as a, sign_in(srv, "kato") as b:
        assert a.cookies["guardrail_session"] != b.cookies["guardrail_session"]


@pytest.mark.parametrize("column", [pytest.param("expires_at", id="lifetime"),
                                    pytest.param("last_seen_at", id="idle")])
def test_sessions_expire(held, column):
    srv, _ = held
    add_person(srv, "kato", "reviewer")
    with sign_in(srv, "kato") as c:
        assert c.get("/review").status_code == 200
        past = datetime.now(UTC) - timedelta(hours=9)
        with srv.store.engine.begin() as conn:
            conn.execute(update(SessionRow).values({column: past}))
        r = c.get("/review", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/review/login"


def test_idle_timeout_from_settings(make_server):
    import time

    srv, _ = make_held(make_server, session_idle_s=1.0)
    add_person(srv, "kato", "reviewer")
    with sign_in(srv, "kato") as c:
        assert c.get("/review").status_code == 200
        time.sleep(1.2)
        assert c.get("/review", follow_redirects=False).status_code == 303


def test_signin_rate_limit_is_429_per_name_and_address(make_server):
    srv, _ = make_held(make_server, signin_max_failures=3, signin_window_s=60)
    add_person(srv, "kato", "reviewer")
    add_person(srv, "sato", "reviewer")
    with httpx.Client(base_url=srv.root_url) as c:
        assert [post_login(c, "kato", "wrong password!").status_code for _ in range(3)] == [
            401, 401, 401]
        limited = post_login(c, "KATO", PASSWORD)  # the right password, and another spelling
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        assert post_login(c, "sato", PASSWORD).status_code == 303  # another name is not limited


def _session_cookie_header(srv, headers: dict[str, str] | None = None) -> str:
    """Sign in as kato, as a browser on https would (it sends back Secure cookies)."""
    page = httpx.get(srv.root_url + "/review/login", headers=headers)
    signin = page.headers["set-cookie"].split(";")[0]
    r = httpx.post(srv.root_url + "/review/login", headers={**(headers or {}), "Cookie": signin},
                   data={"name": "kato", "password": PASSWORD, "csrf_token": csrf_in(page.text)})
    assert r.status_code == 303
    return next(h for h in r.headers.get_list("set-cookie")
                if h.startswith("guardrail_session="))


@pytest.mark.parametrize(("overrides", "headers", "secure"), [
    pytest.param({}, None, False, id="http"),
    pytest.param({}, {"X-Forwarded-Proto": "https"}, True, id="https-from-trusted-proxy"),
    pytest.param({"public_scheme": "https"}, None, True, id="configured-https"),
])
def test_cookie_flags(make_server, overrides, headers, secure):
    srv, _ = make_held(make_server, **overrides)
    add_person(srv, "kato", "reviewer")
    cookie = _session_cookie_header(srv, headers)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert ("Secure" in cookie) is secure


def test_auditor_reads_but_cannot_decide(held):
    srv, inc_id = held
    add_person(srv, "audit", "auditor")
    with sign_in(srv, "audit") as c:
        page = c.get(f"/review/incidents/{inc_id}")
        assert page.status_code == 200 and 'id="decide"' not in page.text
        r = c.post(f"/review/incidents/{inc_id}",
                   data={"decision": "release", "reason": "fine",
                         "csrf_token": csrf_in(page.text)})
        assert r.status_code == 403
    assert srv.store.get(inc_id)["review_status"] == "open"


def test_opening_an_incident_is_recorded_with_the_person(held):
    srv, inc_id = held
    add_person(srv, "鈴木", "auditor")
    with sign_in(srv, "鈴木") as c:
        assert c.get(f"/review/incidents/{inc_id}").status_code == 200
        assert c.get("/review/incidents/inc_missing").status_code == 404
    [access] = service.history(srv.store, inc_id, ("access",))
    assert (access["reviewer"], access["role"], access["note"]) == ("鈴木", "auditor",
                                                                    "review page")
    assert srv.store.verify().ok


def test_disabled_person_is_signed_out(held):
    srv, _ = held
    add_person(srv, "kato", "reviewer")
    with sign_in(srv, "kato") as c:
        people(srv).set_disabled("kato", True)
        assert c.get("/review", follow_redirects=False).status_code == 303
        assert post_login(c, "kato", PASSWORD).status_code == 401
