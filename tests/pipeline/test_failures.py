"""Scanner errors and timeouts follow the policy's fail mode and are recorded as incidents."""

from __future__ import annotations

import asyncio

import openai
import pytest

POLICY = """
name: default
on_scanner_error: {mode}
scanner_timeout_ms: 200
scanners:
  - type: denylist
    name: flaky
    terms: ["never-matches-anything"]
"""


class BrokenModelScanner:
    """Stands in for a model-backed scanner (not inline) that errors or hangs."""

    inline = False
    holdback_chars = 0

    def __init__(self, how: str) -> None:
        self.how = how

    async def scan(self, ctx):
        if self.how == "error":
            raise RuntimeError("model exploded")
        await asyncio.sleep(5)


def _break(server, how: str) -> None:
    pipeline = server.state.pipelines["default"]
    pipeline.scanners[0].scanner = BrokenModelScanner(how)
    pipeline.partition()


@pytest.mark.parametrize(("mode", "how", "finish", "action"), [
    pytest.param("fail_closed", "error", "content_filter", "block", id="closed-error"),
    pytest.param("fail_closed", "timeout", "content_filter", "block", id="closed-timeout"),
    pytest.param("fail_open", "error", "stop", "flag", id="open-error"),
    pytest.param("fail_open", "timeout", "stop", "flag", id="open-timeout"),
])
def test_fail_mode_and_incident(make_server, mode, how, finish, action):
    server = make_server(POLICY.format(mode=mode))
    _break(server, how)
    client = openai.OpenAI(base_url=server.base_url, api_key=server.client_key, max_retries=0)
    resp = client.chat.completions.create(model="echo",
                                          messages=[{"role": "user", "content": "benign"}])
    assert resp.choices[0].finish_reason == finish
    g = resp.model_extra["guardrail"]
    assert g["decision"] == action
    inc = server.store.get(g["incident_ids"][0])
    assert inc["kind"] == "scanner_failure"
    assert inc["category"] == f"scanner_{how}"
    assert inc["evidence"]["fail_mode"] == mode
    assert inc["scanner"] == "flaky"
    if mode == "fail_open":
        assert resp.choices[0].message.content == "benign"
    metrics = server.state.metrics.render().decode()
    assert (f'guardrail_scanner_failures_total{{enforcement="enforce",fail_mode="{mode}",'
            f'reason="{how}",scanner="flaky"}} 1.0') in metrics


def test_fail_closed_in_stream(make_server):
    server = make_server(POLICY.format(mode="fail_closed"))
    _break(server, "error")
    client = openai.OpenAI(base_url=server.base_url, api_key=server.client_key, max_retries=0)
    chunks = list(client.chat.completions.create(
        model="echo", stream=True, messages=[{"role": "user", "content": "benign " * 20}]))
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "content_filter"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""


def test_inline_scanner_error_is_recorded(make_server):
    server = make_server(POLICY.format(mode="fail_closed"))
    loaded = server.state.pipelines["default"].scanners[0]

    async def boom(ctx):
        raise ValueError("regex engine bug")

    loaded.scanner.scan = boom
    client = openai.OpenAI(base_url=server.base_url, api_key=server.client_key, max_retries=0)
    resp = client.chat.completions.create(model="echo",
                                          messages=[{"role": "user", "content": "benign"}])
    assert resp.choices[0].finish_reason == "content_filter"
    inc = server.store.get(resp.model_extra["guardrail"]["incident_ids"][0])
    assert inc["kind"] == "scanner_failure" and "regex engine bug" in inc["evidence"]["message"]
