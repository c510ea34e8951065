"""Issue 13's scenario end to end: an application is held by the IP scanner (streaming, with
the openai SDK); a reviewer with a Japanese name releases the hold in Chromium while a second
reviewer's stale form is refused; the application then fetches the whole response with its own
key, and its webhook receives a correctly signed notice."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from guardrail.holds import webhooks
from tests.conftest import CLIENT_KEY
from tests.mocks.clients import collect, launch_chromium
from tests.mocks.webhooks import webhook_receiver  # noqa: F401 - a fixture
from tests.people.helpers import PASSWORD, add_person
from tests.review.conftest import press_server
from tests.review.test_review_browser import artifacts


def _sign_in(page, root: str, name: str) -> None:
    page.goto(root + "/review")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_selector("#queue")


@pytest.mark.browser
def test_held_stream_released_in_chromium_reaches_the_application(
        make_server, webhook_receiver):  # noqa: F811 - the fixture
    from playwright.sync_api import sync_playwright

    srv, work = press_server(make_server, api_keys=[{
        "key": CLIENT_KEY, "tenant": "acme", "webhook_url": webhook_receiver.url,
        "webhook_secret": "whsec_test"}])
    copy = " ".join(work.split()[500:545])
    said = f"Of course. {copy} I hope this helps."
    app = openai.OpenAI(base_url=srv.base_url, api_key=CLIENT_KEY, max_retries=0)
    released, finish, g = collect(app.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": said}], stream=True))
    assert finish == "content_filter" and g["decision"] == "hold"
    assert copy.split()[0] not in released.split()[2:]  # nothing of the copy went out
    rid, [inc] = g["response_id"], g["incident_ids"]
    pending = app.get(f"/guardrail/responses/{rid}", cast_to=httpx.Response)
    assert pending.status_code == 202
    add_person(srv, "山田花子", "reviewer")
    add_person(srv, "Sato", "reviewer")
    out = artifacts()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        # Sato opens the incident first and leaves the form open
        late = browser.new_context(locale="en-US").new_page()
        _sign_in(late, srv.root_url, "Sato")
        late.goto(f"{srv.root_url}/review/incidents/{inc}")
        late.wait_for_selector("#decide")

        page = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900}
                                   ).new_page()
        _sign_in(page, srv.root_url, "山田花子")
        assert page.get_attribute("html", "lang") == "ja"  # from Accept-Language
        page.fill("#f-rights-holder", "Old Press")
        page.click("#apply-filters")
        page.wait_for_selector(f"#queue tr[data-id='{inc}']")
        page.screenshot(path=str(out / "release-queue-ja.png"), full_page=True)
        page.click(f"a[href='/review/incidents/{inc}']")
        page.wait_for_selector(".passage mark")
        assert page.inner_text(".rights-holder") == "Old Press Ltd"
        page.check("#decision-release")
        page.fill("#reason", "引用の範囲内 (quotation within fair practice)")
        page.click("#submit-decision")
        page.wait_for_selector("#decided")
        page.screenshot(path=str(out / "release-detail-ja.png"), full_page=True)

        # Sato's stale form: refused, and told why
        late.check("#decision-reject")
        late.fill("#reason", "copied")
        with late.expect_response(lambda r: r.request.method == "POST") as answer:
            late.click("#submit-decision")
        assert answer.value.status == 409
        assert "another reviewer decided first" in late.inner_text("body")
        browser.close()

    # the application fetches the whole streamed response with its own key
    body = app.get(f"/guardrail/responses/{rid}", cast_to=httpx.Response).json()
    assert body["object"] == "chat.completion" and body["guardrail"]["decision"] == "released"
    assert body["choices"][0]["message"]["content"] == said
    assert srv.store.get(inc)["reviewer"] == "山田花子"

    deadline = time.monotonic() + 10
    while not webhook_receiver.calls and time.monotonic() < deadline:
        time.sleep(0.05)
    [(sent, headers)] = webhook_receiver.calls
    assert webhooks.verify("whsec_test", headers["guardrail-signature"], sent)
    notice = json.loads(sent)
    assert notice["type"] == "held_response.released" and notice["data"]["id"] == rid
    assert srv.store.verify().ok
