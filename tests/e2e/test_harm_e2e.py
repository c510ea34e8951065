"""The harm scanner's embedded default in the real proxy, driven by the openai SDK.

The server runs the shipped ``policies/default.yaml`` unchanged. The fake upstream echoes the
last user message, so the user message is the "LLM output".
"""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

POLICY = (Path(__file__).resolve().parents[2] / "policies" / "default.yaml").read_text()

TOXIC = [
    pytest.param("You are a worthless, stupid idiot and everyone hates you.", id="en"),
    pytest.param("お前は本当にバカで役立たずだ。さっさと消えろ、クズ。", id="ja"),
]
BENIGN = [
    pytest.param("To kill a Python process, run kill -9 with its PID in a terminal.", id="en"),
    pytest.param("東京は日本の首都で、多くの美術館や公園があります。", id="ja"),
]


@pytest.fixture
def server(make_server):
    return make_server(POLICY)


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.client_key, max_retries=0)


@pytest.mark.parametrize("text", TOXIC)
def test_toxic_output_blocked_with_incident(server, text):
    resp = client(server).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": text}])
    g = resp.model_extra["guardrail"]
    assert g["decision"] == "block"
    assert resp.choices[0].finish_reason == "content_filter"
    assert text not in (resp.choices[0].message.content or "")
    incidents = [server.store.get(i) for i in g["incident_ids"]]
    blocking = [i for i in incidents if i["action"] == "block"]
    assert blocking, incidents
    inc = blocking[0]
    assert inc["scanner"] == "harm" and inc["backend"] == "embedded"
    assert inc["model_version"].startswith("heads-sha256:")
    assert inc["category"] in {"toxic", "harassment", "hate", "violence"}
    assert inc["score"] >= inc["threshold"] > 0


@pytest.mark.parametrize("text", BENIGN)
def test_benign_output_passes(server, text):
    resp = client(server).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": text}])
    assert resp.model_extra["guardrail"]["decision"] == "allow"
    assert resp.choices[0].message.content == text


def test_toxic_sentence_straddling_stream_chunks_blocked(server):
    bad = "You are a worthless, stupid idiot and everyone hates you."
    text = "Sure, here is the summary of the meeting you asked for. " * 3 + bad + " Bye."
    stream = client(server).chat.completions.create(
        model="echo", stream=True, messages=[{"role": "user", "content": text}])
    released, finish = "", None
    for chunk in stream:
        for ch in chunk.choices:
            released += ch.delta.content or ""
            finish = ch.finish_reason or finish
    assert finish == "content_filter"
    assert bad not in released
