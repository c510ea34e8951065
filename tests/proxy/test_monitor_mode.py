"""``enforcement: monitor``: the response is released without waiting for the scanner, which
scans in the background and records what the policy would have done; nothing it finds changes
the response. The app runs in the test's event loop (ASGI transport, lifespan entered here), so
a scanner held on an :class:`asyncio.Event` proves the order without timing anything."""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from guardrail.pipeline.types import ScanContext, ScanResult
from tests.conftest import CLIENT_KEY, UPSTREAM_KEY, FakeUpstream

POLICY = """
name: default
scanner_timeout_ms: 60000
scanners:
  - type: denylist
    name: ban
    terms: ["forbidden-codename"]
    action: block
  - type: denylist
    name: watch
    enforcement: monitor
    terms: ["watchword"]
    action: block
"""

AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}


class Gated:
    """Wraps a real scanner: records what it is asked to scan, then waits for ``gate``."""

    inline = False
    holdback_chars = 0

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.seen: list[str] = []

    async def scan(self, ctx: ScanContext) -> ScanResult:
        self.seen.append(ctx.text)
        self.started.set()
        await self.gate.wait()
        return await self.inner.scan(ctx)  # type: ignore[no-any-return]


@pytest.fixture
def open_app(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> Callable[..., Any]:
    """``async with open_app(policy) as (client, state, gated):`` the real app, its lifespan
    entered, and the ``watch`` scanner wrapped in :class:`Gated`."""
    from guardrail.app import create_app
    from guardrail.settings import Settings

    @asynccontextmanager
    async def start(policy: str = POLICY) -> AsyncIterator[tuple[httpx.AsyncClient, Any, Gated]]:
        pdir = tmp_path / "policies"
        pdir.mkdir(exist_ok=True)
        (pdir / "default.yaml").write_text(textwrap.dedent(policy), encoding="utf-8")
        app = create_app(Settings(
            database_url=f"sqlite:///{tmp_path}/guardrail.db", policy_dir=pdir,
            upstream_url=fake_upstream.base_url, upstream_api_key=UPSTREAM_KEY,
            api_keys=[CLIENT_KEY], admin_key="admin-test-key", upstream_read_timeout_s=10.0))
        state = app.state.guardrail
        pipe = state.pipelines["default"]
        loaded = next(s for s in pipe.scanners if s.info.name == "watch")
        gated = Gated(loaded.scanner)
        loaded.scanner = gated
        pipe.partition()
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=transport, base_url="http://guardrail") as client:
            yield client, state, gated

    return start


def _chat(text: str, **kw: Any) -> dict[str, Any]:
    return {"model": "echo", "messages": [{"role": "user", "content": text}], **kw}


def _incidents(state: Any, request_id: str) -> list[dict[str, Any]]:
    return state.store.list(filters={"request_id": request_id})


async def test_response_is_released_before_the_monitor_scan_and_unchanged_by_it(open_app):
    text = "This answer mentions the watchword, which monitor mode would block."
    async with open_app() as (client, state, gated):
        resp = await client.post("/v1/chat/completions", json=_chat(text), headers=AUTH)
        # the response is here while the monitor scanner is still waiting on its gate
        assert not gated.gate.is_set()
        assert resp.status_code == 200
        body = resp.json()
        assert body["choices"][0]["message"]["content"] == text
        assert body["choices"][0]["finish_reason"] == "stop"
        g = body["guardrail"]
        assert g["decision"] == "allow" and g["incident_ids"] == []
        assert g["monitor"] == {"scanners": ["watch"], "status": "pending", "enforced": False}
        assert resp.headers["x-guardrail-decision"] == "allow"
        rid = g["request_id"]
        await gated.started.wait()
        assert gated.seen == [text]
        assert _incidents(state, rid) == []  # nothing found yet: it has not scanned
        gated.gate.set()
        # leaving the block runs the lifespan's shutdown, which must drain the monitor task
    [inc] = _incidents(state, rid)
    assert (inc["kind"], inc["action"], inc["scanner"]) == ("monitor", "block", "watch")
    assert inc["category"] == "denylist"
    assert inc["evidence"]["enforcement"] == "monitor" and inc["evidence"]["enforced"] is False
    assert inc["evidence"]["choice"] == 0 and inc["stage"] == "output"
    assert inc["review_status"] == "not_required"  # nothing was held back for anyone
    assert state.store.verify().ok
    metrics = state.metrics.render().decode()
    assert 'guardrail_incidents_total{action="block",kind="monitor"} 1.0' in metrics
    assert 'guardrail_decisions_total{action="allow",policy="default"} 1.0' in metrics


async def test_enforce_scanners_still_act_while_a_monitor_one_runs_after(open_app):
    text = "The forbidden-codename and the watchword together."
    async with open_app() as (client, state, gated):
        resp = await client.post("/v1/chat/completions", json=_chat(text), headers=AUTH)
        g = resp.json()["guardrail"]
        assert g["decision"] == "block"
        assert resp.json()["choices"][0]["finish_reason"] == "content_filter"
        [enforced] = _incidents(state, g["request_id"])
        assert enforced["id"] == g["incident_ids"][0] and enforced["scanner"] == "ban"
        gated.gate.set()
        await state.background.drain()
        kinds = {(i["kind"], i["scanner"]) for i in _incidents(state, g["request_id"])}
        assert kinds == {("decision", "ban"), ("monitor", "watch")}


async def test_stream_is_relayed_in_full_and_monitored_once_at_its_end(open_app):
    text = "A streamed reply that carries the watchword somewhere in its middle, and more."
    async with open_app() as (client, state, gated):
        resp = await client.post("/v1/chat/completions", json=_chat(text, stream=True),
                                 headers=AUTH)
        # the whole stream, [DONE] included, while the monitor scanner waits on its gate
        assert not gated.gate.is_set()
        events = [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        released = "".join((c["choices"][0].get("delta") or {}).get("content") or ""
                           for c in chunks if c.get("choices"))
        assert released == text
        g = chunks[-1]["guardrail"]
        assert g["decision"] == "allow" and g["incident_ids"] == []
        assert g["monitor"]["scanners"] == ["watch"] and g["monitor"]["enforced"] is False
        await gated.started.wait()
        assert gated.seen == [text]  # one scan of the whole text, no windows
        assert _incidents(state, g["request_id"]) == []
        gated.gate.set()
        await state.background.drain()
        [inc] = _incidents(state, g["request_id"])
        assert (inc["kind"], inc["action"], inc["scanner"]) == ("monitor", "block", "watch")
        assert inc["evidence"]["streamed"] is True and inc["evidence"]["enforced"] is False


async def test_monitor_scanner_does_not_widen_the_stream_window(open_app):
    async with open_app() as (_client, state, _gated):
        pipe = state.pipelines["default"]
        watch = next(s for s in pipe.scanners if s.info.name == "watch")
        watch.scanner.holdback_chars = 10_000
        assert pipe.holdback_chars < 10_000


async def test_monitor_timeout_is_recorded_logged_and_counted_and_changes_nothing(
    open_app, caplog: pytest.LogCaptureFixture,
):
    policy = POLICY.replace("enforcement: monitor", "enforcement: monitor\n    timeout_ms: 30")
    text = "The watchword again; the monitor scanner never answers this time."
    with caplog.at_level(logging.WARNING, logger="guardrail.pipeline"):
        async with open_app(policy) as (client, state, gated):
            resp = await client.post("/v1/chat/completions", json=_chat(text), headers=AUTH)
            g = resp.json()["guardrail"]
            # policy default is fail_closed; a monitor failure still blocks nothing
            assert g["decision"] == "allow"
            assert resp.json()["choices"][0]["message"]["content"] == text
            await state.background.drain()  # the gate is never opened: it times out
            [inc] = _incidents(state, g["request_id"])
    assert (inc["kind"], inc["category"], inc["scanner"]) == (
        "monitor_failure", "scanner_timeout", "watch")
    assert inc["action"] == "block"  # what fail_closed would have done
    assert inc["evidence"]["enforced"] is False and inc["evidence"]["fail_mode"] == "fail_closed"
    [rec] = [r for r in caplog.records if r.name == "guardrail.pipeline"]
    assert rec.levelno == logging.WARNING
    line = rec.getMessage()
    assert f"request_id={g['request_id']}" in line and "scanner=watch" in line
    assert "reason=timeout" in line and "enforcement=monitor" in line
    assert "watchword" not in line
    assert ('guardrail_scanner_failures_total{enforcement="monitor",fail_mode="fail_closed",'
            'reason="timeout",scanner="watch"} 1.0') in state.metrics.render().decode()


async def test_readyz_shows_each_scanners_enforcement(open_app):
    async with open_app() as (client, _state, _gated):
        ready = (await client.get("/v1/guardrail/readyz",
                                  headers={"Authorization": "Bearer admin-test-key"})).json()
    modes = {s["name"]: s["enforcement"] for s in ready["policies"]["default"]["scanners"]}
    assert modes == {"ban": "enforce", "watch": "monitor"}


async def test_without_monitor_scanners_nothing_is_scheduled_or_annotated(open_app):
    policy = POLICY.replace("enforcement: monitor", "enforcement: enforce")
    async with open_app(policy) as (client, state, gated):
        gated.gate.set()  # an enforce scanner: the response waits for it
        resp = await client.post("/v1/chat/completions", json=_chat("the watchword"),
                                 headers=AUTH)
        g = resp.json()["guardrail"]
        assert g["decision"] == "block" and "monitor" not in g
        assert len(state.background) == 0
