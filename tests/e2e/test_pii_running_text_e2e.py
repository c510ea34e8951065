"""PII in running Japanese text, end to end: identifiers glued to kana/kanji are redacted
exactly (nothing of the neighbouring Japanese goes), and a 12-digit order number that happens
to pass the My Number check digit is left alone: through the real proxy (non-streaming and
streaming) and through the stream relay at chunk sizes 1-50."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest

from tests.mocks.stores import fake_state

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
"""

# 987654321093 passes the My Number check digit; after 注文番号 it is an order number.
TEXT = ("連絡先はtaro@example.co.jpです。電話090-1234-5678まで、"
        "〒100-0001東京都千代田区千代田1-1（本社）。マイナンバーは123456789018、"
        "注文番号は987654321093です。カード4111111111111111で決済、サーバーのIPは192.168.10.20です。")
REDACTED = ("連絡先は<EMAIL_ADDRESS>です。電話<JP_PHONE_NUMBER>まで、"
            "〒<JP_POSTAL_CODE><JP_ADDRESS>（本社）。マイナンバーは<JP_MY_NUMBER>、"
            "注文番号は987654321093です。カード<CREDIT_CARD>で決済、サーバーのIPは<IP_ADDRESS>です。")
RAW = ("taro@", "example.co.jp", "090-1234", "100-0001", "123456789018", "4111111111111111",
       "192.168.10.20")
ENTITIES = {"EMAIL_ADDRESS", "JP_PHONE_NUMBER", "JP_POSTAL_CODE", "JP_ADDRESS", "JP_MY_NUMBER",
            "CREDIT_CARD", "IP_ADDRESS"}
# Near-misses only: an order number, a tracking number (both valid My Numbers), Latin-glued IP.
CLEAN = "ご注文番号：123456789018、追跡番号987654321093です。バージョンv1.2.3.4をご利用ください。"


def check_incidents(store, ids) -> None:
    assert ids
    found: set[str] = set()
    for i in ids:
        inc = store.get(i)
        assert inc["scanner"] == "pii"
        blob = json.dumps(inc, ensure_ascii=False, default=str)
        for raw in RAW:
            assert raw not in blob, raw
        found |= {f["category"] for f in inc["evidence"]["findings"]}
    assert found == ENTITIES


@pytest.fixture
def srv(make_server):
    return make_server(POLICY)


def ask(s, text: str, stream: bool) -> tuple[str, dict]:
    c = openai.OpenAI(base_url=s.base_url, api_key=s.client_key, max_retries=0)
    msgs = [{"role": "user", "content": text}]  # the fake upstream echoes it
    if not stream:
        resp = c.chat.completions.create(model="echo", messages=msgs)
        return resp.choices[0].message.content or "", resp.model_extra["guardrail"]
    out, guard = "", {}
    for chunk in c.chat.completions.create(model="echo", stream=True, messages=msgs):
        guard = (chunk.model_extra or {}).get("guardrail", guard)
        for ch in chunk.choices:
            out += ch.delta.content or ""
    return out, guard


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
def test_glued_identifiers_redacted_exactly_order_number_kept(srv, stream):
    text, guard = ask(srv, TEXT, stream)
    assert text == REDACTED
    assert guard["decision"] == "redact"
    check_incidents(srv.store, guard["incident_ids"])


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
def test_order_and_tracking_numbers_pass_untouched(srv, stream):
    text, guard = ask(srv, CLEAN, stream)
    assert text == CLEAN
    assert guard.get("decision", "allow") == "allow" and not guard.get("incident_ids")


# -- the stream relay at any chunking --------------------------------------------------------

@pytest.fixture(scope="module")
def pipeline():
    import yaml

    from guardrail.pipeline.runner import Pipeline, ScannerCache
    from guardrail.policy import Policy

    policy = Policy.model_validate(yaml.safe_load(POLICY))
    return policy, Pipeline(policy, ScannerCache(runtime=None))



def relay(pipeline, text: str, size: int) -> tuple[str, list]:
    from guardrail.deps import Client
    from guardrail.pipeline.types import RequestMeta
    from guardrail.proxy.streaming import StreamGuard

    policy, pipe = pipeline

    def chunk(piece: str | None, finish: str | None = None) -> str:
        delta = {} if piece is None else {"content": piece}
        return json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1,
                           "model": "m", "choices": [{"index": 0, "delta": delta,
                                                      "finish_reason": finish}]})

    async def go() -> tuple[str, list]:
        state = fake_state()
        meta = RequestMeta(request_id="r", route="/v1/chat/completions", policy_name="default",
                           policy_version=policy.version, system_id="s")
        g = StreamGuard(state, Client(key_id=None, policy=policy, pipeline=pipe), meta,
                        chat=True)
        out: list[bytes] = []
        for i in range(0, len(text), size):
            out += await g.feed(chunk(text[i:i + size]))
        out += await g.feed(chunk(None, "stop"))
        out += await g.finish()
        released = ""
        for b in out:
            for ch in json.loads(b.decode()[6:])["choices"]:
                released += (ch.get("delta") or {}).get("content") or ""
        return released, state.store.rows

    return asyncio.run(go())


@pytest.mark.parametrize("size", [1, 2, 5, 13, 50])
def test_stream_relay_redacts_glued_identifiers_at_any_chunking(pipeline, size):
    released, rows = relay(pipeline, TEXT, size)
    assert released == REDACTED
    cats = {f["category"] for r in rows for f in r.evidence["findings"]}
    assert cats == ENTITIES


@pytest.mark.parametrize("size", [1, 7, 50])
def test_stream_relay_leaves_order_numbers_alone(pipeline, size):
    released, rows = relay(pipeline, CLEAN, size)
    assert (released, rows) == (CLEAN, [])
