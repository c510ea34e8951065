"""Issue 12 (findings 1 and 2): no redacted value leaves the proxy or enters the record.

1. Streamed tool-call arguments are scanned whole and redacted exactly as a non-streamed
   response's are, whatever the chunking: the raw value never appears in the SSE bytes.
2. An IP hold over a copied passage with an email inside: the incident (all of its JSON,
   nested evidence included) never holds the raw email.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from guardrail.corpus.registry import WorkInput
from guardrail.corpus.service import get_registry
from tests.corpus.conftest import en_text
from tests.mocks.servers import ThreadedServer

EMAIL = "taro.yamada@example.com"
SECRET = "sk-abcdefghijklmnopqrstuvwxyz0123"
ARGS = json.dumps({"to": EMAIL, "token": SECRET, "note": "send the report"})
ARGS2 = json.dumps({"query": f"who owns {EMAIL}?"})

POLICY = """
name: default
scanner_timeout_ms: 60000
stream:
  holdback_chars: 16
  scan_every_chars: 8
scanners:
  - type: pii
    name: pii
    action: redact
  - type: denylist
    name: secrets
    category: credential
    action: redact
    patterns: ['sk-[a-z0-9]{20,}']
"""


def tool_upstream() -> FastAPI:
    """Answers every chat request with two tool calls (``ARGS``, ``ARGS2``); streamed in
    ``fake_piece``-character argument deltas, the way OpenAI streams them."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        calls = [("call_a", "send_mail", ARGS), ("call_b", "lookup", ARGS2)]
        env = {"id": "chatcmpl-" + uuid.uuid4().hex[:8], "created": int(time.time()),
               "model": body["model"]}
        if not body.get("stream"):
            return JSONResponse({**env, "object": "chat.completion", "choices": [{
                "index": 0, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": None,
                    "tool_calls": [{"id": i, "type": "function",
                                    "function": {"name": n, "arguments": a}}
                                   for i, n, a in calls]}}]})
        piece = int(body.get("fake_piece", 3))

        def ev(delta: dict[str, Any], finish: str | None = None) -> bytes:
            c = {**env, "object": "chat.completion.chunk",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(c)}\n\n".encode()

        async def gen() -> Any:
            yield ev({"role": "assistant", "content": None})
            for t, (cid, name, args) in enumerate(calls):
                yield ev({"tool_calls": [{"index": t, "id": cid, "type": "function",
                                          "function": {"name": name, "arguments": ""}}]})
                for i in range(0, len(args), piece):
                    yield ev({"tool_calls": [{"index": t,
                                              "function": {"arguments": args[i:i + piece]}}]})
            yield ev({}, "tool_calls")
            yield b"data: [DONE]\n\n"
        return StreamingResponse(gen(), media_type="text/event-stream")

    return app


@pytest.fixture
def tool_srv(make_server):
    up = ThreadedServer(tool_upstream()).start()
    try:
        yield make_server(POLICY, upstream_url=up.url + "/v1")
    finally:
        up.stop()


def post(srv, **body: Any) -> httpx.Response:
    return httpx.post(srv.base_url + "/chat/completions", timeout=60,
                      headers={"authorization": f"Bearer {srv.client_key}"},
                      json={"model": "m", "messages": [{"role": "user", "content": "go"}],
                            **body})


def streamed_calls(raw: bytes) -> tuple[dict[int, str], dict[str, Any]]:
    args: dict[int, str] = {}
    guard: dict[str, Any] = {}
    for line in raw.decode().splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        d = json.loads(line[6:])
        guard = d.get("guardrail") or guard
        for ch in d.get("choices") or []:
            for call in (ch.get("delta") or {}).get("tool_calls") or []:
                a = (call.get("function") or {}).get("arguments") or ""
                args[call["index"]] = args.get(call["index"], "") + a
    return args, guard


def test_streamed_tool_arguments_redacted_like_non_streamed(tool_srv):
    plain = post(tool_srv).json()
    want = [c["function"]["arguments"] for c in plain["choices"][0]["message"]["tool_calls"]]
    assert EMAIL not in json.dumps(want) and SECRET not in json.dumps(want)
    assert "<EMAIL_ADDRESS>" in want[0] and "<CREDENTIAL>" in want[0]
    assert "<EMAIL_ADDRESS>" in want[1]
    for piece in (1, 2, 3, 5, 8, 13, 29, 50, 400):
        raw = post(tool_srv, stream=True, fake_piece=piece).content
        # the raw values, or any recognisable part of them, never reach the client
        for needle in (EMAIL, SECRET, "taro.yamada", "example.com", "sk-abcdef", "wxyz0123"):
            assert needle.encode() not in raw, (piece, needle)
        args, guard = streamed_calls(raw)
        assert args == {0: want[0], 1: want[1]}, piece
        assert json.loads(args[0])["note"] == "send the report"  # still valid JSON
        assert guard["decision"] == "redact"
        assert b'"finish_reason": "tool_calls"' in raw or b'"finish_reason":"tool_calls"' in raw
        assert guard["incident_ids"], piece  # the redaction was recorded
        for i in guard["incident_ids"]:
            blob = json.dumps(tool_srv.store.get(i), default=str)
            assert EMAIL not in blob and SECRET not in blob


IP_POLICY = """
name: default
scanner_timeout_ms: 60000
scanners:
  - type: ip
    min_passage_words: 20
    min_passage_cjk_chars: 40
  - type: pii
    name: pii
    action: redact
"""


def test_ip_hold_evidence_never_holds_redacted_email(make_server):
    words = en_text(401, 1500).split()
    # the registered work itself carries the address, inside the passage the output copies
    work = " ".join([*words[:420], "Write to", EMAIL, "for details.", *words[420:]])
    srv = make_server(IP_POLICY)
    reg = get_registry(srv.state.runtime)
    reg.upsert_corpus("press", "Old Press Ltd", "all rights reserved", "https://press.example")
    reg.add_works("press", [WorkInput("The Book", work)])
    copy = " ".join([*words[395:420], "Write to", EMAIL, "for details.", *words[420:445]])
    resp = post(srv, messages=[{"role": "user", "content": f"Here it is: {copy} Enjoy!"}])
    g = resp.json()["guardrail"]
    assert g["decision"] == "hold"
    assert EMAIL.encode() not in resp.content
    for i in g["incident_ids"]:
        inc = srv.store.get(i)
        blob = json.dumps(inc, ensure_ascii=False, default=str)
        assert EMAIL not in blob and "taro.yamada" not in blob, blob
        if inc["scanner"] == "ip":
            ip = next(f for f in inc["evidence"]["findings"] if f["scanner"] == "ip")
            outs = [p["output"]["excerpt"] for p in ip["evidence"]["passages"]]
            assert any("<EMAIL_ADDRESS>" in o for o in outs), outs
            assert any(words[400] in o for o in outs)  # still the copied text, by span
