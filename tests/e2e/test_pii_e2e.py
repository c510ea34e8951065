"""PII redaction end to end: the real proxy, the openai SDK, streaming and not."""

from __future__ import annotations

import json

import openai
import pytest

POLICY = """
name: default
scanner_timeout_ms: 60000   # behaviour, not speed: a loaded CI machine must not fail it closed
stream:
  holdback_chars: 16
  scan_every_chars: 8
scanners:
  - type: pii
    name: pii
    action: redact
    operators:
      JP_PHONE_NUMBER: {type: mask, keep_last: 4}
"""

TEXT = ("お問い合わせは taro.yamada@example.co.jp または 090-1234-5678 へ。"
        "マイナンバーは 1234 5678 9018 です。")
REDACTED = ("お問い合わせは <EMAIL_ADDRESS> または *********5678 へ。"
            "マイナンバーは <JP_MY_NUMBER> です。")
# fragments of the raw values; each has a character no hex digest can hold (a random chain hash
# once contained "9018")
RAW = ("taro.yamada", "090-1234", "1234 5678 9018", "5678 9018", " 9018")
ENTITIES = {"EMAIL_ADDRESS", "JP_PHONE_NUMBER", "JP_MY_NUMBER"}




@pytest.fixture
def srv(make_server):
    return make_server(POLICY)


def client(s) -> openai.OpenAI:
    return openai.OpenAI(base_url=s.base_url, api_key=s.client_key, max_retries=0)


def check_incidents(s, ids):
    assert ids
    found = set()
    for i in ids:
        inc = s.store.get(i)
        assert inc["scanner"] == "pii" and inc["backend"] == "presidio"
        blob = json.dumps(inc, ensure_ascii=False, default=str)
        for raw in RAW:
            assert raw not in blob, raw
        found |= {f["category"] for f in inc["evidence"]["findings"]}
    assert found == ENTITIES


def test_pii_redacted_non_streaming_and_streaming(srv):
    c = client(srv)
    resp = c.chat.completions.create(model="echo", messages=[{"role": "user", "content": TEXT}])
    assert resp.choices[0].message.content == REDACTED
    guard = resp.model_extra["guardrail"]
    assert guard["decision"] == "redact"
    check_incidents(srv, guard["incident_ids"])

    # the fake upstream streams in small chunks: identifiers arrive split across them
    text, guard = "", {}
    for chunk in c.chat.completions.create(
            model="echo", stream=True, messages=[{"role": "user", "content": TEXT}]):
        extra = chunk.model_extra or {}
        guard = extra.get("guardrail", guard)
        for ch in chunk.choices:
            text += ch.delta.content or ""
    assert text == REDACTED
    assert guard["decision"] == "redact"
    check_incidents(srv, guard["incident_ids"])


def test_readyz_shows_pii_mode_and_recognizers(srv):
    import httpx

    body = httpx.get(srv.root_url + "/v1/guardrail/readyz",
                     headers={"Authorization": f"Bearer {srv.admin_key}"}).json()
    pipe = body["policies"]["default"]
    assert pipe["holdback_chars"] >= 64
    (pii,) = [s for s in pipe["scanners"] if s["name"] == "pii"]
    assert pii["backend"] == "presidio" and pii["model"] == "pattern-only"
    assert pii["details"]["mode"] == "pattern"
    assert "MyNumberRecognizer" in pii["details"]["recognizers"]
    assert pii["details"]["operators"]["JP_PHONE_NUMBER"] == "mask"
