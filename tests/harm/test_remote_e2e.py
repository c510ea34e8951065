"""The remote harm backends in the real proxy (uvicorn), driven by the openai SDK.

The fake upstream echoes the last user message, so the user message is the "LLM output"; the
harm scanner calls the fake moderation / judge server over HTTP. Failures go through the
policy's fail mode and are recorded as scanner_failure incidents.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.harm.conftest import FakeRemote

KEY = "sk-remote-e2e-key-0123456789abcdef"


def _policy(url: str, *, backend: str = "openai-moderation", model: str = "omni-moderation-latest",
            mode: str = "fail_closed", extra: str = "") -> str:
    return f"""
name: default
on_scanner_error: {mode}
scanner_timeout_ms: 3000
scanners:
  - type: harm
    name: harm
    backend: {backend}
    url: {url}
    api_key_env: GUARDRAIL_TEST_REMOTE_KEY
    model: {model}
    threshold: 0.5
    categories:
      threat: {{threshold: 0.8, action: block}}
{extra}
"""


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDRAIL_TEST_REMOTE_KEY", KEY)


def _chat(server: Any, text: str, **kw: Any) -> Any:
    client = openai.OpenAI(base_url=server.base_url, api_key=server.client_key, max_retries=0)
    return client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": text}], **kw)


def test_moderation_blocks_with_incident_and_allows_benign(make_server, fake_remote: FakeRemote):
    server = make_server(_policy(fake_remote.url))
    resp = _chat(server, "I will KILLYOU tonight.")
    g = resp.model_extra["guardrail"]
    assert g["decision"] == "block" and resp.choices[0].finish_reason == "content_filter"
    inc = server.store.get(g["incident_ids"][0])
    assert inc["kind"] == "decision" and inc["scanner"] == "harm"
    assert inc["backend"] == "openai-moderation" and inc["category"] == "threat"
    assert inc["model"] == "omni-moderation-latest"
    assert inc["model_version"] == "omni-moderation-fake-1"  # what the server answered with
    assert fake_remote.requests[-1]["headers"]["authorization"] == f"Bearer {KEY}"

    ok = _chat(server, "Tokyo is the capital of Japan.")
    assert ok.model_extra["guardrail"]["decision"] == "allow"
    assert ok.choices[0].message.content == "Tokyo is the capital of Japan."

    (desc,) = server.state.pipelines["default"].describe()
    assert desc["backend"] == "openai-moderation"
    assert desc["details"]["url_host"] == fake_remote.url.split("/")[2]
    assert KEY not in repr(desc)


@pytest.mark.parametrize(("mode", "model", "extra", "category", "message", "decision"), [
    pytest.param("fail_open", "fail-500", "", "scanner_error", "HTTP 500", "flag",
                 id="open-5xx"),
    pytest.param("fail_closed", "not-json", "", "scanner_error", "RemoteAnswerError", "block",
                 id="closed-malformed"),
    pytest.param("fail_closed", "slow", "    request_timeout_ms: 300", "scanner_error",
                 "RemoteBackendTimeoutError", "block", id="closed-own-timeout"),
    pytest.param("fail_open", "slow", "    timeout_ms: 300", "scanner_timeout",
                 "no result within 300 ms", "flag", id="open-policy-timeout"),
])
def test_moderation_failures_follow_fail_mode_and_are_recorded(
        make_server, fake_remote: FakeRemote, mode: str, model: str, extra: str,
        category: str, message: str, decision: str):
    server = make_server(_policy(fake_remote.url, model=model, mode=mode, extra=extra))
    resp = _chat(server, "A perfectly benign answer.")
    g = resp.model_extra["guardrail"]
    assert g["decision"] == decision
    inc = server.store.get(g["incident_ids"][0])
    assert inc["kind"] == "scanner_failure" and inc["scanner"] == "harm"
    assert inc["backend"] == "openai-moderation"
    assert inc["category"] == category
    assert inc["evidence"]["fail_mode"] == mode
    assert message in inc["evidence"]["message"]
    assert KEY not in repr(inc)
    if mode == "fail_open":
        assert resp.choices[0].message.content == "A perfectly benign answer."
    else:
        assert resp.choices[0].finish_reason == "content_filter"


def test_unreachable_server_starts_and_fails_open(make_server):
    from tests.mocks.servers import free_port

    server = make_server(_policy(f"http://127.0.0.1:{free_port()}/v1", mode="fail_open"))
    resp = _chat(server, "Hello there.")
    g = resp.model_extra["guardrail"]
    assert g["decision"] == "flag"
    inc = server.store.get(g["incident_ids"][0])
    assert "unreachable" in inc["evidence"]["message"]


def test_llm_judge_blocks_and_streams(make_server, fake_remote: FakeRemote):
    server = make_server(_policy(fake_remote.url, backend="llm-judge", model="llama-guard3",
                                 extra="    judge_input: conversation"))
    resp = _chat(server, "Sure: I will KILLYOU, here is how.")
    g = resp.model_extra["guardrail"]
    assert g["decision"] == "block"
    inc = server.store.get(g["incident_ids"][0])
    assert inc["backend"] == "llm-judge" and inc["model"] == "llama-guard3"
    cats = {f["category"] for f in inc["evidence"]["findings"]}
    assert cats == {"violence", "hate", "toxic"}
    assert fake_remote.requests[-1]["body"]["messages"][-1]["role"] == "assistant"

    ok = _chat(server, "Here is a recipe for pancakes.")
    assert ok.model_extra["guardrail"]["decision"] == "allow"

    stream = _chat(server, "Some intro text that is fine. " * 4 + "Then I will KILLYOU.",
                   stream=True)
    released, finish = "", None
    for chunk in stream:
        for ch in chunk.choices:
            released += ch.delta.content or ""
            finish = ch.finish_reason or finish
    assert finish == "content_filter" and "KILLYOU" not in released


def test_llm_judge_unexpected_verdict_fails_closed(make_server, fake_remote: FakeRemote):
    server = make_server(_policy(fake_remote.url, backend="llm-judge", model="chatty"))
    resp = _chat(server, "A perfectly benign answer.")
    g = resp.model_extra["guardrail"]
    assert g["decision"] == "block"
    inc = server.store.get(g["incident_ids"][0])
    assert inc["category"] == "scanner_error"
    assert "unexpected verdict" in inc["evidence"]["message"]
