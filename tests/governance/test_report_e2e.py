"""Issue 14's end-to-end: a store seeded through the real proxy with the openai SDK (a harmful
output blocked, personal data redacted, a copied passage held and released, labelled answers,
a redress request), then the compliance report: every control that ran shows evidence counted
from that store; the HTML renders in Chromium in Japanese and English and prints to PDF."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai
import pytest

from guardrail.corpus.registry import WorkInput
from guardrail.corpus.service import get_registry
from tests.corpus.conftest import en_text
from tests.mocks.clients import launch_chromium
from tests.people.helpers import add_person, token_for
from tests.review.test_review_browser import _sign_in, artifacts

SHIPPED = (Path(__file__).resolve().parents[2] / "policies" / "default.yaml").read_text()


def _ev(report: dict, rid: str, key: str) -> dict:
    (row,) = [r for r in report["rows"] if r["requirement"]["id"] == rid]
    (it,) = [e for e in row["evidence"] if e["key"] == key]
    return it


@pytest.mark.browser
def test_report_from_traffic_through_the_proxy(make_server):
    from playwright.sync_api import sync_playwright

    srv = make_server(SHIPPED)
    work = en_text(707, 1500)
    reg = get_registry(srv.state.runtime)
    reg.upsert_corpus("press", "Old Press Ltd", "all rights reserved", "https://press.example")
    reg.add_works("press", [WorkInput("The English Book", work)])
    app = openai.OpenAI(base_url=srv.base_url, api_key=srv.client_key, max_retries=0)

    def say(text: str, stream: bool = False) -> dict:
        msgs = [{"role": "user", "content": text}]
        if stream:
            g: dict = {}
            for chunk in app.chat.completions.create(model="echo", messages=msgs, stream=True):
                g = (chunk.model_extra or {}).get("guardrail", g)
            return g
        return app.chat.completions.create(model="echo", messages=msgs).model_extra["guardrail"]

    assert say("You are a worthless, stupid idiot and everyone hates you.")["decision"] == "block"
    assert say("Sure, write to taro.yamada@example.com or call 090-1234-5678.")["decision"] \
        == "redact"
    held = say("Here it is: " + " ".join(work.split()[300:345]) + " Enjoy!")
    assert held["decision"] == "hold"
    for text in ("Tokyo is the capital of Japan.", "Osaka is known for its food."):
        assert say(text)["decision"] == "allow"
    assert say("Kyoto has many temples and gardens.", stream=True)["decision"] == "allow"
    reviewer = token_for(srv, "山田花子", "reviewer")
    [hold_inc] = [i for i in held["incident_ids"] if srv.store.get(i)["action"] == "hold"]
    r = httpx.post(f"{srv.base_url}/guardrail/incidents/{hold_inc}/decisions",
                   headers={"Authorization": f"Bearer {reviewer}"},
                   json={"decision": "release", "reason": "quotation within fair practice"})
    assert r.status_code == 201
    assert app.get(f"/guardrail/responses/{held['response_id']}",
                   cast_to=httpx.Response).status_code == 200
    ack = httpx.post(f"{srv.base_url}/guardrail/redress", json={
        "incident_id": hold_inc, "text": "この出力は私の著作物の無断転載です。"})
    assert ack.status_code == 201
    srv.state.extras["label_counts"].flush()  # (also every few seconds and at shutdown)

    today = datetime.now(UTC).date()
    period = {"from": (today - timedelta(days=1)).isoformat(),
              "to": (today + timedelta(days=1)).isoformat()}
    rep = httpx.get(f"{srv.base_url}/guardrail/report", params={**period, "lang": "en"},
                    headers={"Authorization": f"Bearer {srv.admin_key}"}).json()
    ran = {  # (requirement, evidence key): the controls this traffic exercised
        ("safety", "interventions:harm"), ("privacy", "interventions:pii"),
        ("ip_review", "interventions:ip"), ("human_oversight", "holds"),
        ("human_oversight", "reviews"), ("transparency", "labelled_outputs"),
        ("incident_redress", "redress"), ("regulatory_documentation", "chain"),
    }
    for rid, key in sorted(ran):
        ev = _ev(rep, rid, key)
        assert ev["recorded"] and ev["value"], (rid, key, ev)
    assert _ev(rep, "transparency", "labelled_outputs")["value"] >= 4  # 3 allowed + released
    for row in rep["rows"]:
        assert set(row) == {"requirement", "control", "evidence", "cross_map", "gap"}

    add_person(srv, "佐藤花子", "compliance")
    out = artifacts()
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        _sign_in(page, srv.root_url, "佐藤花子")
        for lang in ("ja", "en"):
            page.goto(f"{srv.root_url}/governance/report?lang={lang}&from={period['from']}"
                      f"&to={period['to']}")
            assert page.locator("section.req").count() == 20
            assert page.get_attribute("html", "lang") == lang
            page.screenshot(path=str(out / f"governance-report-e2e-{lang}.png"),
                            full_page=True)
            pdf = page.pdf(format="A4", print_background=True)
            assert pdf.startswith(b"%PDF")
            (out / f"governance-report-e2e-{lang}.pdf").write_bytes(pdf)
        browser.close()
