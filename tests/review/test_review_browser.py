"""The review queue, as reviewers use it: headless Debian chromium driven by Playwright.

Screenshots of the queue and an incident, in English and Japanese, go to
``$GUARDRAIL_TEST_ARTIFACTS`` (default ``tests/artifacts/``).
TODO(lead, .gitignore): ignore ``tests/artifacts/`` (this file must not commit them).
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.mocks.clients import launch_chromium
from tests.people.helpers import PASSWORD, add_person, token_for
from tests.review.conftest import hold_copy


def artifacts() -> Path:
    out = Path(os.environ.get("GUARDRAIL_TEST_ARTIFACTS")
               or Path(__file__).resolve().parents[1] / "artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_review_api_records_decisions(held):
    srv, inc_id = held
    h = {"Authorization": f"Bearer {token_for(srv, 'kato', 'reviewer')}"}
    url = f"{srv.root_url}/v1/guardrail/incidents/{inc_id}"
    assert httpx.get(url, headers=h).json()["review_status"] == "open"
    bad = httpx.post(url + "/decisions", headers=h, json={"decision": "nope", "reason": "r"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "decision"
    ok = httpx.post(url + "/decisions", headers=h,
                    json={"decision": "reject", "reason": "copied lyrics"})
    assert ok.status_code == 201
    assert ok.json()["incident"]["review_status"] == "rejected"
    hist = httpx.get(url + "/reviews", headers=h).json()["data"]
    assert [(x["from"], x["to"], x["reviewer"], x["role"]) for x in hist] == [
        ("open", "rejected", "kato", "reviewer")]
    assert httpx.post(url + "/decisions", json={"decision": "reject", "reason": "r"}
                      ).status_code == 401
    assert httpx.get(f"{srv.root_url}/v1/guardrail/incidents/verify", headers=h).json()["ok"]


def test_review_page_requires_sign_in(held):
    srv, _ = held
    r = httpx.get(srv.root_url + "/review", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/review/login"


def _sign_in(page, root: str, name: str) -> None:
    page.goto(root + "/review")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_selector("#queue")


def _current(page) -> str | None:
    return page.eval_on_selector_all("#queue tbody tr.current",
                                     "rows => rows.length ? rows[0].dataset.id : null")


@pytest.mark.browser
def test_reviewer_triages_in_chromium(ip_server):
    from playwright.sync_api import sync_playwright

    srv, work = ip_server
    first = hold_copy(srv, work, 400)
    second = hold_copy(srv, work, 800)
    name = "山田花子"
    add_person(srv, name, "reviewer")
    add_person(srv, "Audrey", "auditor")
    out = artifacts()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        ctx = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        _sign_in(page, srv.root_url, name)
        assert page.inner_text("#me") == f"{name} (reviewer)"
        assert page.get_attribute("html", "lang") == "en"
        page.screenshot(path=str(out / "queue-en.png"), full_page=True)
        page.click(f"a[href='/review/incidents/{first}']")
        page.wait_for_selector(".passage mark")
        page.screenshot(path=str(out / "detail-en.png"), full_page=True)

        # switch to Japanese from the header: saved on the account, back on the same page
        page.click("#lang-ja")
        page.wait_for_selector("html[lang='ja']")
        assert page.url.endswith(f"/review/incidents/{first}")
        page.goto(srv.root_url + "/review")
        assert page.inner_text("h1") == "レビュー対象のインシデント"

        # filter by corpus and rights holder (no key fires while typing in a field)
        page.fill("#f-corpus", "press")
        page.fill("#f-rights-holder", "old press")
        page.press("#f-rights-holder", "j")
        page.press("#f-rights-holder", "Backspace")
        assert _current(page) is None
        page.click("#apply-filters")
        page.wait_for_selector("#queue")
        assert "corpus=press" in page.url and "rights_holder=old+press" in page.url
        ids = page.eval_on_selector_all("#queue tbody tr", "rows => rows.map(r => r.dataset.id)")
        assert ids == [first, second]  # oldest first
        page.screenshot(path=str(out / "queue-ja.png"), full_page=True)
        page.fill("#f-rights-holder", "nobody at all")
        page.click("#apply-filters")
        page.wait_for_selector("#empty")
        page.go_back()
        page.wait_for_selector("#queue")

        # keyboard: j / k move, o opens
        page.locator("body").press("j")
        assert _current(page) == first
        page.keyboard.press("j")
        assert _current(page) == second
        page.keyboard.press("k")
        assert _current(page) == first
        page.keyboard.press("o")
        page.wait_for_url(f"**/review/incidents/{first}")

        # the detail page: spans highlighted side by side, in Japanese
        page.wait_for_selector(".passage mark")
        out_mark = page.inner_text(".passage pre.out mark")
        src_mark = page.inner_text(".passage pre.src mark")
        assert len(out_mark) > 50 and out_mark.split()[:5] == src_mark.split()[:5]
        assert page.inner_text(".rights-holder") == "Old Press Ltd"
        assert "未対応" in page.inner_text("#status")
        page.screenshot(path=str(out / "detail-ja.png"), full_page=True)
        page.keyboard.press("j")  # next incident of the queue shown
        page.wait_for_url(f"**/review/incidents/{second}")
        page.keyboard.press("k")
        page.wait_for_url(f"**/review/incidents/{first}")
        page.wait_for_selector("#decide")

        # r: release, focus in the reason; typing there fires no shortcut
        page.keyboard.press("x")
        assert page.is_checked("#decision-reject")
        page.keyboard.type("r")  # in the reason field: a letter, not a shortcut
        assert page.is_checked("#decision-reject")
        page.keyboard.press("Escape")  # leaves the field
        page.keyboard.press("r")
        assert page.is_checked("#decision-release")
        assert page.evaluate("document.activeElement.id") == "reason"
        page.keyboard.press("Control+a")
        page.keyboard.type("ライセンス契約あり (licensed use) x e")
        assert page.is_checked("#decision-release")
        page.click("#submit-decision")
        page.wait_for_selector("#decided")
        assert "解放済み" in page.inner_text("#status")
        history = page.inner_text("#history")
        assert name in history and "ライセンス契約あり" in history
        page.click("#logout")
        page.wait_for_selector("#login")

        # an auditor reads, sees no decision form, and a posted decision is refused
        page = browser.new_context(locale="en-US").new_page()
        _sign_in(page, srv.root_url, "Audrey")
        page.goto(f"{srv.root_url}/review/incidents/{second}")
        page.wait_for_selector(".passage mark")
        assert page.inner_text(".work-title").startswith("The English Book")
        assert page.locator("#decide").count() == 0 and page.locator("#assign").count() == 0
        assert "auditor" in page.inner_text("#read-only")
        page.locator("body").press("r")  # no form: nothing to pick
        token = page.get_attribute("input[name='csrf_token']", "value")
        refused = page.request.post(f"{srv.root_url}/review/incidents/{second}", form={
            "decision": "release", "reason": "looks fine", "csrf_token": token})
        assert refused.status == 403
        browser.close()
    assert srv.store.get(first)["review_status"] == "released"
    assert srv.store.get(first)["reviewer"] == name
    assert srv.store.get(second)["review_status"] == "open"
    for f in ("queue-en.png", "queue-ja.png", "detail-en.png", "detail-ja.png"):
        assert (out / f).stat().st_size > 10_000, f
    assert srv.store.verify().ok
