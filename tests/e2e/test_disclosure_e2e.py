"""AI-content disclosure on text responses through the openai SDK, streaming and not."""

from __future__ import annotations

import openai
import pytest

BASE = """
name: default
labelling:
  disclosure: true
  notice:
    position: {position}
scanners: []
"""


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.client_key, max_retries=0)


def test_headers_and_field_without_visible_notice(make_server):
    srv = make_server(BASE.format(position='"off"'))
    raw = client(srv).chat.completions.with_raw_response.create(
        model="echo", messages=[{"role": "user", "content": "plain text"}])
    assert raw.headers["x-ai-generated"] == "true"
    assert raw.headers["x-guardrail-ai-model"] == "echo"
    assert raw.headers["x-guardrail-policy"].startswith("default@")
    resp = raw.parse()
    assert resp.choices[0].message.content == "plain text"
    d = resp.model_extra["guardrail"]["disclosure"]
    assert d["ai_generated"] is True and d["model"] == "echo"

    with client(srv).chat.completions.with_streaming_response.create(
            model="echo", stream=True, messages=[{"role": "user", "content": "plain text"}]) as r:
        assert r.headers["x-ai-generated"] == "true"
        chunks = list(r.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "plain text"
    last = chunks[-1].model_extra["guardrail"]
    assert last["disclosure"]["ai_generated"] is True


@pytest.mark.parametrize(("position", "content", "marker"), [
    pytest.param("append", "An English answer.", "[AI-generated", id="append-en"),
    pytest.param("prepend", "日本語の回答です。", "AI生成", id="prepend-ja"),
])
def test_visible_notice_streaming_and_not(make_server, position, content, marker):
    srv = make_server(BASE.format(position=position))
    c = client(srv)
    plain = c.chat.completions.create(model="echo",
                                      messages=[{"role": "user", "content": content}])
    text = plain.choices[0].message.content
    assert content in text and marker in text
    assert (text.index(marker) < text.index(content)) == (position == "prepend")
    streamed = "".join(
        ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
            model="echo", stream=True, messages=[{"role": "user", "content": content}])
        if ch.choices)
    assert streamed == text
