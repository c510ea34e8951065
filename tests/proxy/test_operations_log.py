"""Operations log (issue 12, finding 8): a decision line per response, an access line per
request, structured warnings for scanner failures; no secret, key or personal data in any
line; presidio quiet on Japanese text."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import httpx
import pytest

from guardrail import logs
from guardrail.pipeline.runner import Pipeline, ScannerCache
from guardrail.pipeline.types import RequestMeta, ScanContext
from guardrail.policy import Policy
from guardrail.settings import Settings, key_id
from tests.conftest import ADMIN_KEY, UPSTREAM_KEY

EMAIL = "taro.yamada@example.co.jp"
SECRET = "sk-abcdefghijklmnopqrstuvwx"
QUERY_SECRET = "sk-queryqueryqueryqueryquery"
POLICY = """
name: default
scanner_timeout_ms: 60000
scanners:
  - type: denylist
    name: secrets
    category: credential
    action: redact
    patterns: ['sk-[a-z0-9]{20,}']
    match_timeout_ms: 5000  # this test is about the log lines, not the bound
  - type: pii
"""


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log record of the process (uvicorn's and the libraries' included), at DEBUG,
    formatted and filtered as ``guardrail serve`` does (:data:`guardrail.logs.QUIET`: httpx
    would log every URL, this test's own requests included, at INFO)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    level = root.level
    quiet = {n: logging.getLogger(n).level for n in logs.QUIET}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for n in logs.QUIET:
        logging.getLogger(n).setLevel(logging.WARNING)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for n, lv in quiet.items():
            logging.getLogger(n).setLevel(lv)


def _lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def _wait_for(out: io.StringIO, done, tries: int = 500) -> list[dict]:
    for _ in range(tries):
        lines = _lines(out)
        if done(lines):
            return lines
        time.sleep(0.01)
    return _lines(out)


def test_decision_and_access_lines_and_nothing_personal_or_secret(make_server, captured):
    server = make_server(POLICY)
    text = f"Write to {EMAIL}; the key is {SECRET}. 東京都千代田区1-2-3 に住む山田太郎です。"
    headers = {"Authorization": f"Bearer {server.client_key}"}
    resp = httpx.post(server.base_url + f"/chat/completions?api-key={QUERY_SECRET}",
                      json={"model": "echo", "messages": [{"role": "user", "content": text}]},
                      headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    g = resp.json()["guardrail"]
    assert g["decision"] == "redact"
    with httpx.stream("POST", server.base_url + "/chat/completions", headers=headers,
                      timeout=30, json={"model": "echo", "stream": True,
                                        "messages": [{"role": "user", "content": text}]}) as s:
        streamed = s.read().decode()
    assert SECRET not in streamed and EMAIL not in streamed
    # a stream's lines are written as its generator ends, just after the last chunk left
    lines = _wait_for(captured, lambda ls: sum(ln.get("event") == "access" for ln in ls) >= 2)
    raw = captured.getvalue()

    decisions = [ln for ln in lines if ln.get("event") == "decision"]
    assert len(decisions) == 2
    d = next(ln for ln in decisions if ln["request_id"] == g["request_id"])
    assert d["logger"] == "guardrail.decision" and d["level"] == "info"
    assert d["key_id"] == key_id(server.client_key) and d["tenant"] == "default"
    assert d["policy"] == f"default@{g['policy_version']}" and d["decision"] == "redact"
    assert d["incident_ids"] == g["incident_ids"] and d["stream"] is False
    assert set(d["scanner_ms"]) == {"secrets", "pii"}
    assert all(isinstance(v, int | float) for v in d["scanner_ms"].values())
    s = next(ln for ln in decisions if ln["stream"])
    assert s["decision"] == "redact" and s["end"] == "ok" and set(s["scanner_ms"]) == {
        "secrets", "pii"}

    access = [ln for ln in lines if ln.get("event") == "access"]
    a = next(ln for ln in access if ln["request_id"] == g["request_id"])
    assert (a["method"], a["route"], a["status"]) == ("POST", "/v1/chat/completions", 200)
    assert isinstance(a["ms"], int | float)

    for needle in (EMAIL, "taro.yamada", "山田太郎", "千代田区", SECRET, QUERY_SECRET,
                   "api-key=", server.client_key, UPSTREAM_KEY, ADMIN_KEY):
        assert needle not in raw, needle


def test_japanese_text_logs_no_presidio_warning(make_server, captured):
    server = make_server("name: default\nscanner_timeout_ms: 60000\nscanners:\n  - type: pii\n")
    resp = httpx.post(server.base_url + "/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {server.client_key}"},
                      json={"model": "echo", "messages": [
                          {"role": "user", "content": "連絡先は03-1234-5678、本日はありがとう。"}]})
    assert resp.status_code == 200 and resp.json()["guardrail"]["decision"] == "redact"
    noisy = [ln for ln in _lines(captured)
             if ln["logger"].startswith("presidio") and ln["level"] in ("warning", "error")]
    assert noisy == []


async def test_scanner_failure_is_a_structured_warning():
    class Broken:
        inline = False
        holdback_chars = 0

        async def scan(self, ctx: ScanContext) -> None:
            raise RuntimeError(f"choked on {ctx.text}")

    policy = Policy.model_validate({"name": "t", "on_scanner_error": "fail_open", "scanners": [
        {"type": "denylist", "name": "broken", "terms": ["x"]}]})
    pipe = Pipeline(policy, ScannerCache(runtime=None))
    pipe.scanners[0].scanner = Broken()
    pipe.partition()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("guardrail.pipeline")
    logger.addHandler(handler)
    try:
        meta = RequestMeta(request_id="req_log", route="/v1/chat/completions",
                           policy_name="t", policy_version="v", system_id="s")
        await pipe.run(ScanContext(text=f"mail {EMAIL}", meta=meta))
    finally:
        logger.removeHandler(handler)
    [line] = _lines(out)
    assert line["event"] == "scanner_failure" and line["level"] == "warning"
    assert {k: line[k] for k in ("request_id", "scanner", "reason", "fail_mode", "fail_open",
                                 "enforcement", "error")} == {
        "request_id": "req_log", "scanner": "broken", "reason": "error",
        "fail_mode": "fail_open", "fail_open": True, "enforcement": "enforce",
        "error": "RuntimeError"}
    assert EMAIL not in out.getvalue()


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {n: logging.getLogger(n).level for n in logs.QUIET}
    try:
        yield
    finally:
        logging.captureWarnings(False)
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)
        for n, lv in quiet.items():
            logging.getLogger(n).setLevel(lv)


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_configure_writes_the_chosen_format(fmt):
    out = io.StringIO()
    logs.configure(fmt, "info", stream=out)
    logs.configure(fmt, "info", stream=out)  # idempotent: one handler, not two
    logs.event(logging.getLogger("guardrail.decision"), logging.INFO, "decision",
               request_id="req_1", decision="allow", incident_ids=[])
    logging.getLogger("httpx").info("HTTP Request: POST http://upstream/v1?key=secret")
    [line] = out.getvalue().splitlines()
    if fmt == "json":
        assert json.loads(line) | {"ts": None} == {
            "ts": None, "level": "info", "logger": "guardrail.decision", "event": "decision",
            "request_id": "req_1", "decision": "allow", "incident_ids": []}
    else:
        assert line.endswith(
            "INFO guardrail.decision: decision request_id=req_1 decision=allow incident_ids=[]")


def test_serve_logs_json_by_default(monkeypatch):
    monkeypatch.delenv("GUARDRAIL_LOG_FORMAT", raising=False)
    assert Settings().log_format == "json"
    monkeypatch.setenv("GUARDRAIL_LOG_FORMAT", "text")
    assert Settings().log_format == "text"
