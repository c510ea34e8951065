"""The review queue, as a reviewer uses it: headless Debian chromium driven by Playwright."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.mocks.clients import launch_chromium

POLICY = """
name: default
scanners:
  - type: denylist
    name: banned
    category: banned_term
    action: hold
    terms: ["forbidden-codename"]
"""


@pytest.fixture
def held(make_server):
    srv = make_server(POLICY)
    client = openai.OpenAI(base_url=srv.base_url, api_key=srv.client_key, max_retries=0)
    resp = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "About forbidden-codename: yes."}])
    g = resp.model_extra["guardrail"]
    assert g["decision"] == "hold"
    assert "held for review" in resp.choices[0].message.content
    return srv, g["incident_ids"][0]


def test_review_api_records_decisions(held):
    srv, inc_id = held
    h = {"Authorization": f"Bearer {srv.admin_key}"}
    url = f"{srv.root_url}/v1/guardrail/incidents/{inc_id}"
    assert httpx.get(url, headers=h).json()["review_status"] == "pending_review"
    bad = httpx.post(url + "/review", headers=h, json={"status": "nope", "reviewer": "a"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "status"
    ok = httpx.post(url + "/review", headers=h,
                    json={"status": "confirmed", "reviewer": "kato", "note": "copied lyrics"})
    assert ok.status_code == 200
    assert ok.json()["incident"]["review_status"] == "confirmed"
    hist = httpx.get(url + "/reviews", headers=h).json()["data"]
    assert [(x["from"], x["to"], x["reviewer"]) for x in hist] == [
        ("pending_review", "confirmed", "kato")]
    assert httpx.post(url + "/review", json={"status": "confirmed", "reviewer": "x"}
                      ).status_code == 401
    assert httpx.get(f"{srv.root_url}/v1/guardrail/incidents/verify", headers=h).json()["ok"]


def test_review_page_requires_login(held):
    srv, _ = held
    r = httpx.get(srv.root_url + "/review", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/review/login"
    bad = httpx.post(srv.root_url + "/review/login",
                     data={"admin_key": "wrong", "reviewer": "x"})
    assert bad.status_code == 401


@pytest.mark.browser
def test_reviewer_triages_in_chromium(held):
    from playwright.sync_api import sync_playwright

    srv, inc_id = held
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        page.goto(srv.root_url + "/review")
        page.fill("#reviewer", "Sato")
        page.fill("#admin_key", srv.admin_key)
        page.click("#login")
        page.wait_for_selector("#queue")
        page.click(f"a[href='/review/incidents/{inc_id}']")
        assert page.inner_text("#action") == "hold"
        assert "pending_review" in page.inner_text("#status")
        page.check("input[value='cleared']")
        page.fill("textarea[name='note']", "licensed use, not a leak")
        page.click("#submit-decision")
        page.wait_for_selector("#history")
        assert "cleared (Sato)" in page.inner_text("#status")
        assert "licensed use" in page.inner_text("#history")
        browser.close()
    assert srv.store.get(inc_id)["review_status"] == "cleared"
