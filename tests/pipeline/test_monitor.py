"""Enforcement modes in the runner, failure logging and metrics, and the background task set."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import ValidationError

from guardrail.deps import BackgroundTasks
from guardrail.metrics import Metrics
from guardrail.pipeline.runner import Pipeline, ScannerCache
from guardrail.pipeline.types import Action, RequestMeta, ScanContext
from guardrail.policy import Policy

META = RequestMeta(request_id="req_monitor_unit", route="/v1/chat/completions",
                   policy_name="t", policy_version="v", system_id="s")

POLICY = {
    "name": "t",
    "stream": {"holdback_chars": 8},
    "on_scanner_error": "fail_open",
    "scanners": [
        {"type": "denylist", "name": "ban", "terms": ["forbidden"], "action": "block"},
        {"type": "denylist", "name": "watch", "terms": ["watchword"], "action": "block",
         "enforcement": "monitor"},
    ],
}


class Hanging:
    """A model-backed (not inline) scanner that never answers."""

    inline = False
    holdback_chars = 5000

    async def scan(self, ctx: ScanContext) -> None:
        await asyncio.Event().wait()


def _pipeline(policy: dict | None = None, **kw) -> Pipeline:
    return Pipeline(Policy.model_validate(policy or POLICY), ScannerCache(runtime=None), **kw)


def test_enforcement_defaults_to_enforce_and_rejects_other_values() -> None:
    p = Policy.model_validate(POLICY)
    assert [s.enforcement for s in p.scanners] == ["enforce", "monitor"]
    with pytest.raises(ValidationError, match="enforcement"):
        Policy.model_validate({"name": "t", "scanners": [
            {"type": "denylist", "terms": ["x"], "enforcement": "shadow"}]})
    # the pii scanner's own `mode` (pattern | ner) is a different field and still validates
    pii = Policy.model_validate({"name": "t", "scanners": [
        {"type": "pii", "mode": "pattern", "enforcement": "monitor"}]}).scanners[0]
    assert (pii.mode, pii.enforcement) == ("pattern", "monitor")


async def test_run_uses_enforce_scanners_only_and_run_monitor_the_others() -> None:
    pipe = _pipeline()
    assert pipe.monitored == ["watch"]
    ctx = ScanContext(text="a watchword and something forbidden", meta=META)
    enforced = await pipe.run(ctx)
    assert [r.finding.scanner for r in enforced.findings] == ["ban"]
    assert enforced.action is Action.BLOCK
    monitored = await pipe.run_monitor(ctx)
    assert [r.finding.scanner for r in monitored.findings] == ["watch"]
    assert monitored.action is Action.BLOCK  # what the policy would have done

    only_watch = await pipe.run(ScanContext(text="just a watchword", meta=META))
    assert only_watch.action is Action.ALLOW and not only_watch.findings


def test_describe_shows_each_scanners_enforcement() -> None:
    described = {s["name"]: s["enforcement"] for s in _pipeline().describe()}
    assert described == {"ban": "enforce", "watch": "monitor"}


def test_monitor_scanners_do_not_widen_the_holdback_window() -> None:
    pipe = _pipeline()
    pipe.scanners[1].scanner = Hanging()  # the monitor one asks for 5000 characters
    pipe.partition()
    assert pipe.holdback_chars == max(8, pipe.scanners[0].scanner.holdback_chars)
    assert pipe.holdback_chars < 5000
    pipe.scanners[0].scanner = Hanging()  # an enforce scanner asking the same is honoured
    pipe.partition()
    assert pipe.holdback_chars == 5000


async def test_fail_open_timeout_logs_a_warning_and_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    policy = {**POLICY, "scanners": [
        {"type": "denylist", "name": "slowpoke", "terms": ["x"], "timeout_ms": 20}]}
    pipe = _pipeline(policy, observer=metrics.observe_scan, on_failure=metrics.observe_failure)
    pipe.scanners[0].scanner = Hanging()
    pipe.partition()
    secret = "Taro Yamada, taro@example.co.jp, private words"
    with caplog.at_level(logging.WARNING, logger="guardrail.pipeline"):
        decision = await pipe.run(ScanContext(text=secret, meta=META))
    assert decision.action is Action.FLAG  # fail open: flagged, released
    assert [f.reason for f in decision.failures] == ["timeout"]
    [rec] = [r for r in caplog.records if r.name == "guardrail.pipeline"]
    assert rec.levelno == logging.WARNING
    line = rec.getMessage()
    for part in ("request_id=req_monitor_unit", "scanner=slowpoke", "reason=timeout",
                 "fail_mode=fail_open", "enforcement=enforce"):
        assert part in line
    assert "Taro" not in line and "example.co.jp" not in line
    rendered = metrics.render().decode()
    assert ('guardrail_scanner_failures_total{enforcement="enforce",fail_mode="fail_open",'
            'reason="timeout",scanner="slowpoke"} 1.0') in rendered


async def test_scanner_error_log_names_the_exception_type_not_its_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    pipe = _pipeline(on_failure=metrics.observe_failure)

    async def boom(ctx: ScanContext) -> None:
        raise ValueError(f"could not parse {ctx.text!r}")

    pipe.scanners[1].scanner.scan = boom  # type: ignore[union-attr]  # the monitor one
    with caplog.at_level(logging.WARNING, logger="guardrail.pipeline"):
        decision = await pipe.run_monitor(ScanContext(text="my card 4111-1111", meta=META))
    [failure] = decision.failures
    assert failure.reason == "error" and "4111" in failure.message  # the incident keeps it
    [rec] = [r for r in caplog.records if r.name == "guardrail.pipeline"]
    assert rec.levelno == logging.WARNING
    assert "error=ValueError" in rec.getMessage() and "enforcement=monitor" in rec.getMessage()
    assert "4111" not in rec.getMessage() and rec.exc_info is None
    assert ('guardrail_scanner_failures_total{enforcement="monitor",fail_mode="fail_open",'
            'reason="error",scanner="watch"} 1.0') in metrics.render().decode()


async def test_background_tasks_are_kept_until_done_and_drained() -> None:
    tasks = BackgroundTasks()
    gate = asyncio.Event()
    done: list[str] = []

    async def work(name: str) -> None:
        await gate.wait()
        done.append(name)

    tasks.spawn(work("a"), name="a")
    tasks.spawn(work("b"), name="b")
    assert len(tasks) == 2
    gate.set()
    await tasks.drain()
    assert sorted(done) == ["a", "b"] and len(tasks) == 0


async def test_drain_cancels_what_outlives_the_grace(caplog: pytest.LogCaptureFixture) -> None:
    tasks = BackgroundTasks()
    cancelled = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = tasks.spawn(stuck(), name="stuck")
    await asyncio.sleep(0)  # let it start
    with caplog.at_level(logging.WARNING, logger="guardrail"):
        await tasks.drain(grace_s=0)
    assert task.cancelled() and cancelled.is_set() and len(tasks) == 0
    assert "cancelling 1 background task" in caplog.text


async def test_a_failing_background_task_is_logged_not_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = BackgroundTasks()

    async def fails() -> None:
        raise RuntimeError("store is down: taro@example.co.jp")

    with caplog.at_level(logging.ERROR, logger="guardrail"):
        tasks.spawn(fails(), name="guardrail-monitor-req_x")
        await tasks.drain()
    assert "background task guardrail-monitor-req_x failed: RuntimeError" in caplog.text
    assert "taro@example.co.jp" not in caplog.text


def test_spawn_outside_a_running_loop_raises_and_closes_the_coroutine() -> None:
    ran: list[bool] = []

    async def work() -> None:
        ran.append(True)

    coro = work()
    with pytest.raises(RuntimeError):
        BackgroundTasks().spawn(coro, name="x")
    assert coro.cr_frame is None and not ran  # closed: no "never awaited" warning later
