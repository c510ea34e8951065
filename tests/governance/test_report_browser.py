"""The compliance report and the inventory page in Debian chromium (Playwright): screenshots
in Japanese and English and the report printed to PDF (``page.pdf()``), into
``$GUARDRAIL_TEST_ARTIFACTS`` (default ``tests/artifacts/``)."""

from __future__ import annotations

import pytest

from guardrail.incidents.store import IncidentStore
from guardrail.review.decisions import decide
from tests.governance.chain_helpers import REVIEWER, draft
from tests.mocks.clients import launch_chromium
from tests.people.helpers import add_person
from tests.review.test_review_browser import _sign_in, artifacts


@pytest.mark.browser
def test_report_prints_in_both_languages(make_server, full_gov_dir):
    from playwright.sync_api import sync_playwright

    srv = make_server(full_gov_dir.root.joinpath("default.yaml").read_text(),
                      policy_dir=full_gov_dir.root)
    store: IncidentStore = srv.store
    ids = store.append([draft(i, scanner="harm", category=c, system_id="chat")
                        for i, c in enumerate(("hate", "harassment", "violence"))])
    decide(store, ids[0], decision="reject", reason="abusive", who=REVIEWER)
    add_person(srv, "佐藤花子", "compliance")
    out = artifacts()
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        _sign_in(page, srv.root_url, "佐藤花子")
        for lang, title in (("ja", "コンプライアンス・レポート"), ("en", "Compliance report")):
            page.goto(f"{srv.root_url}/governance/report?lang={lang}")
            assert title in page.inner_text("#report-title")
            assert page.locator("section.req").count() == 20
            page.screenshot(path=str(out / f"governance-report-{lang}.png"), full_page=True)
            page.emulate_media(media="print")
            assert not page.is_visible("form.period")  # the controls do not print
            page.emulate_media(media="screen")
            pdf = page.pdf(format="A4", print_background=True)
            assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") > 3
            (out / f"governance-report-{lang}.pdf").write_bytes(pdf)
            page.goto(f"{srv.root_url}/governance/systems?lang={lang}")
            assert page.is_visible("#sys-chat")
            page.screenshot(path=str(out / f"governance-systems-{lang}.png"), full_page=True)
        browser.close()
