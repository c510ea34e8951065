"""The review queue, as a reviewer uses it: headless Debian chromium driven by Playwright."""

from __future__ import annotations

import httpx
import pytest

from tests.mocks.clients import launch_chromium
from tests.people.helpers import PASSWORD, add_person, token_for


def test_review_api_records_decisions(held):
    srv, inc_id = held
    h = {"Authorization": f"Bearer {token_for(srv, 'kato', 'reviewer')}"}
    url = f"{srv.root_url}/v1/guardrail/incidents/{inc_id}"
    assert httpx.get(url, headers=h).json()["review_status"] == "pending_review"
    bad = httpx.post(url + "/review", headers=h, json={"status": "nope"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "status"
    ok = httpx.post(url + "/review", headers=h,
                    json={"status": "confirmed", "note": "copied lyrics"})
    assert ok.status_code == 200
    assert ok.json()["incident"]["review_status"] == "confirmed"
    hist = httpx.get(url + "/reviews", headers=h).json()["data"]
    assert [(x["from"], x["to"], x["reviewer"], x["role"]) for x in hist] == [
        ("pending_review", "confirmed", "kato", "reviewer")]
    assert httpx.post(url + "/review", json={"status": "confirmed"}).status_code == 401
    assert httpx.get(f"{srv.root_url}/v1/guardrail/incidents/verify", headers=h).json()["ok"]


def test_review_page_requires_sign_in(held):
    srv, _ = held
    r = httpx.get(srv.root_url + "/review", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/review/login"


@pytest.mark.browser
@pytest.mark.parametrize("name", [pytest.param("Sato", id="latin"),
                                  pytest.param("山田花子", id="japanese")])
def test_reviewer_triages_in_chromium(held, name):
    from playwright.sync_api import sync_playwright

    srv, inc_id = held
    add_person(srv, name, "reviewer")
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        page.goto(srv.root_url + "/review")
        page.fill("#name", name)
        page.fill("#password", PASSWORD)
        page.click("#login")
        page.wait_for_selector("#queue")
        assert page.inner_text("#me") == f"{name} (reviewer)"
        page.click(f"a[href='/review/incidents/{inc_id}']")
        assert page.inner_text("#action") == "hold"
        assert "pending_review" in page.inner_text("#status")
        page.check("input[value='cleared']")
        page.fill("textarea[name='note']", "licensed use, not a leak")
        page.click("#submit-decision")
        page.wait_for_selector("#history")
        assert f"cleared ({name})" in page.inner_text("#status")
        assert name in page.inner_text("#history")
        assert "licensed use" in page.inner_text("#history")
        page.click("#logout")
        page.wait_for_selector("#login")
        page.goto(srv.root_url + "/review")
        assert page.url.endswith("/review/login")  # signed out: back to the sign-in form
        browser.close()
    rec = srv.store.get(inc_id)
    assert rec["review_status"] == "cleared" and rec["reviewer"] == name
    assert srv.store.verify().ok
