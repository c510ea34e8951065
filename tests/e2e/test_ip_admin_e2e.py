"""A rights team registers a work through the admin API; a copy is held; a reviewer sees the
copied passage beside the registered work in the review page."""

from __future__ import annotations

import os

import httpx
import openai
import pytest

from tests.corpus.conftest import en_text
from tests.mocks.clients import launch_chromium
from tests.people.helpers import PASSWORD, add_person

POLICY = """
name: default
scanners:
  - type: ip
"""
WORK = en_text(4242, 900)


@pytest.fixture
def srv(make_server):
    server = make_server(POLICY)
    h = {"Authorization": f"Bearer {server.admin_key}"}
    base = server.root_url + "/v1/guardrail/corpora"
    r = httpx.post(base, headers=h, json={"name": "lyrics", "rights_holder": "Example Music KK",
                                         "license": "all rights reserved"})
    assert r.status_code == 201, r.text
    r = httpx.post(base + "/lyrics/works", headers=h, timeout=60,
                   json={"works": [{"title": "Song of the Sea", "text": WORK, "id": "ISWC-1"}]})
    assert r.status_code == 201, r.text
    again = httpx.post(base + "/lyrics/works", headers=h, timeout=60,
                       json={"works": [{"title": "Song of the Sea", "text": WORK}]})
    assert again.status_code == 201  # idempotent: same content is not registered twice
    listed = httpx.get(base + "/lyrics", headers=h).json()
    assert listed["works"] == 1 and len(listed["data"]) == 1
    assert httpx.get(base, headers={"Authorization": "Bearer wrong"}).status_code == 401
    return server


def test_registered_copy_is_held_and_reviewable(srv):
    copy = " ".join(WORK.split()[300:360])
    client = openai.OpenAI(base_url=srv.base_url, api_key=srv.client_key, max_retries=0)
    resp = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": f"Sure! {copy} Hope that helps."}])
    g = resp.model_extra["guardrail"]
    assert g["decision"] == "hold"
    inc_id = g["incident_ids"][0]
    ev = srv.store.get(inc_id)["evidence"]["findings"][0]["evidence"]
    assert ev["rights_holder"] == "Example Music KK" and ev["title"] == "Song of the Sea"

    from playwright.sync_api import sync_playwright

    add_person(srv, "Suzuki", "reviewer")
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(srv.root_url + "/review/login")
        page.fill("#name", "Suzuki")
        page.fill("#password", PASSWORD)
        page.click("#login")
        page.wait_for_selector("#me")
        page.goto(f"{srv.root_url}/review/incidents/{inc_id}")
        assert page.inner_text(".rights-holder") == "Example Music KK"
        assert "Song of the Sea" in page.inner_text(".work-title")
        out = page.inner_text(".passage .out")
        src = page.inner_text(".passage .src")
        assert out.split()[:5] == src.split()[:5] or out[:40] in copy
        if os.environ.get("GUARDRAIL_SCREENSHOT"):
            page.screenshot(path=os.environ["GUARDRAIL_SCREENSHOT"], full_page=True)
        browser.close()
