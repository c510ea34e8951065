"""Runs the pipeline on one text and turns non-allow decisions into incident drafts."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from guardrail.errors import StoreError
from guardrail.incidents.evidence import EvidenceBuilder
from guardrail.incidents.store import IncidentDraft, content_hash
from guardrail.logs import event
from guardrail.pipeline.types import (
    Action,
    Decision,
    RequestMeta,
    RuledFinding,
    ScanContext,
    Stage,
)

if TYPE_CHECKING:
    from guardrail.deps import AppState, Client
    from guardrail.pipeline.runner import Pipeline

log = logging.getLogger("guardrail.pipeline")
decision_log = logging.getLogger("guardrail.decision")


@dataclass
class Guarded:
    decision: Decision
    incident_ids: list[str]
    ctx: ScanContext | None = None  # what was scanned, for the monitor-mode scanners after
    hold_ids: list[str] = field(default_factory=list)  # the incidents a held copy waits on


def _lead(findings: tuple[RuledFinding, ...]) -> RuledFinding | None:
    return max(findings, key=lambda r: (r.action.rank, r.finding.score), default=None)


def incident_drafts(
    state: AppState,
    client: Client,
    meta: RequestMeta,
    stage: Stage,
    text: str,
    decision: Decision,
    findings: tuple[RuledFinding, ...] | None = None,
    extra: dict[str, Any] | None = None,
    monitor: bool = False,
) -> list[IncidentDraft]:
    """One draft for the decision (if it is not allow) plus one per scanner failure.

    ``monitor``: the decision is a monitor-mode one, taken after the response was released.
    Its drafts are kinds ``monitor`` / ``monitor_failure``, record the action the policy
    would have taken, and say in their evidence that nothing was enforced."""
    if monitor:
        extra = {**(extra or {}), "enforcement": "monitor", "enforced": False}
    acting = tuple(r for r in (findings if findings is not None else decision.findings)
                   if r.action is not Action.ALLOW)
    if not acting and not decision.failures:
        return []
    policy = client.policy
    scanners = client.pipeline.describe()
    common: dict[str, Any] = {
        "request_id": meta.request_id, "system_id": policy.system, "policy_name": policy.name,
        "policy_version": policy.version, "route": meta.route, "stage": stage.value,
        "api_key_id": meta.api_key_id, "tenant": meta.tenant,
        "upstream_model": meta.answered_model, "requested_model": meta.upstream_model,
        "scanners": scanners,
        "content_sha256": content_hash(text), "owner": policy.incidents.owner,
    }
    evidence = EvidenceBuilder(text, decision)  # every stored quote cut from redacted text
    excerpt = evidence.excerpt(policy.incidents.excerpt_chars)
    drafts: list[IncidentDraft] = []
    lead = _lead(acting)

    def reviewing(action: Action) -> tuple[str, dict[str, Any]]:
        """The review status a new incident starts in, and the held copy it waits on."""
        if monitor:  # nothing was held back: there is no response awaiting release
            return "not_required", {}
        if action is Action.HOLD:
            return "open", ({"response_id": meta.response_id} if meta.response_id else {})
        return ("open" if action in policy.review.route else "not_required"), {}

    if lead is not None:
        info = next((r.info for r in decision.results if r.scanner == lead.finding.scanner), None)
        action = Action.strongest([r.action for r in acting])
        status, held = reviewing(action)
        drafts.append(IncidentDraft(
            **common, kind="monitor" if monitor else "decision", action=action.value,
            scanner=lead.finding.scanner,
            backend=info.backend if info else None,
            model=info.model if info else None,
            model_version=info.model_version if info else None,
            category=lead.finding.category, score=float(lead.finding.score),
            threshold=lead.threshold, excerpt=excerpt, review_status=status,
            evidence={"findings": [evidence.finding(r) for r in acting],
                      **held, **(extra or {})},
        ))
    for f in decision.failures:
        # a failure is an SRE's matter, unless it held the response (fail-closed: hold)
        status, held = reviewing(f.action) if f.action is Action.HOLD else ("not_required", {})
        drafts.append(IncidentDraft(
            **common, kind="monitor_failure" if monitor else "scanner_failure",
            action=f.action.value, scanner=f.scanner,
            backend=f.info.backend, model=f.info.model, model_version=f.info.model_version,
            category=f"scanner_{f.reason}", excerpt=None, review_status=status,
            evidence={"reason": f.reason, "message": f.message, "fail_mode": f.fail_mode,
                      **held, **(extra or {})},
        ))
    return drafts


async def record(state: AppState, drafts: list[IncidentDraft],
                 on_store_error: str = "fail_closed") -> list[str]:
    """Commit drafts (before the response they concern is released) and count them. The
    store unreachable: ``fail_closed`` raises (503, nothing released); ``fail_open`` writes
    them to the durable local outbox (fsynced) and goes on (guardrail/incidents/outbox.py)."""
    try:
        ids = await state.store.append_async(drafts)
    except StoreError as exc:
        outbox = getattr(state, "extras", {}).get("outbox")
        if on_store_error != "fail_open" or outbox is None:
            raise
        ids = await anyio.to_thread.run_sync(outbox.put, drafts)
        state.metrics.outbox_writes.inc(len(drafts))
        event(log, logging.WARNING, "store_fail_open", error=type(exc).__name__,
              incident_ids=ids, outbox=str(outbox.path))
    for d in drafts:
        state.metrics.incidents.labels(d.kind, d.action).inc()
    return ids


async def guard_text(
    state: AppState, client: Client, meta: RequestMeta, text: str, stage: Stage,
    extra: dict[str, Any] | None = None,
) -> Guarded:
    ctx = ScanContext(text=text, meta=meta, stage=stage)
    decision = await client.pipeline.run(ctx)
    drafts = incident_drafts(state, client, meta, stage, text, decision, extra=extra)
    ids = await record(state, drafts, client.policy.on_store_error) if drafts else []
    return Guarded(decision, ids, ctx, hold_ids(drafts, ids))


def hold_ids(drafts: list[IncidentDraft], ids: list[str]) -> list[str]:
    """Of recorded drafts, the ids of those a held copy of the response waits on."""
    return [i for d, i in zip(drafts, ids, strict=True) if "response_id" in d.evidence]


async def keep_held(state: AppState, client: Client, meta: RequestMeta, body: bytes,
                    incident_ids: list[str], media_type: str = "application/json") -> str:
    """Store the would-be response, encrypted, before the hold notice leaves (a store failure
    raises :class:`~guardrail.errors.StoreError`: 503, nothing released). Returns its id."""
    assert meta.response_id is not None
    await state.extras["holds"].put_async(
        response_id=meta.response_id, body=body, media_type=media_type, tenant=meta.tenant,
        api_key_id=meta.api_key_id, policy_name=client.policy.name,
        request_id=meta.request_id, route=meta.route, incident_ids=incident_ids,
        expire_after_minutes=client.policy.hold.expire_after_minutes)
    return meta.response_id


# -- the operations log ----------------------------------------------------------------------

@dataclass
class ScanTally:
    """What a response's scans cost: milliseconds per scanner (summed over its texts and
    stream windows) and the scanners that failed, for its ``decision`` log line."""

    ms: dict[str, float] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)

    def add(self, decision: Decision) -> None:
        for name, ms in decision.scanner_ms.items():
            self.ms[name] = self.ms.get(name, 0.0) + ms
        self.failed.update(f.scanner for f in decision.failures)


def log_decision(meta: RequestMeta, action: Action, incident_ids: list[str], tally: ScanTally,
                 *, stream: bool, end: str | None = None) -> None:
    """The one ``decision`` line per proxied response (guardrail/logs.py): ids, names and
    numbers only, never content."""
    facts: dict[str, Any] = {
        "request_id": meta.request_id, "key_id": meta.api_key_id, "tenant": meta.tenant,
        "policy": f"{meta.policy_name}@{meta.policy_version}", "route": meta.route,
        "decision": action.value, "incident_ids": list(incident_ids),
        "scanner_ms": {k: round(v, 1) for k, v in sorted(tally.ms.items())},
        "failed": sorted(tally.failed), "stream": stream}
    if end is not None:
        facts["end"] = end  # streams: ok | upstream_error | store_unavailable | error
    event(decision_log, logging.INFO, "decision", **facts)


# -- monitor mode ----------------------------------------------------------------------------

MonitorItem = tuple[ScanContext, dict[str, Any] | None]  # a text to scan + incident extras


def monitor_note(pipeline: Pipeline) -> dict[str, Any] | None:
    """For the response's ``guardrail`` annotation: which monitor-mode scanners run after
    release. Their findings are never in the response and never change it."""
    names = pipeline.monitored
    if not names:
        return None
    return {"scanners": names, "status": "pending", "enforced": False}


def monitor_after_release(
    state: AppState, client: Client, meta: RequestMeta, items: list[MonitorItem]
) -> None:
    """Run the policy's monitor-mode scanners on ``items`` in a tracked background task (on
    ``state.background``, drained at shutdown) and record what they find as incidents. Returns
    at once: the response never waits for them."""
    items = [(ctx, extra) for ctx, extra in items if ctx.text]
    if not client.pipeline.monitored or not items:
        return
    try:
        state.background.spawn(_monitor(state, client, meta, items),
                               name=f"guardrail-monitor-{meta.request_id}")
    except RuntimeError:  # no running event loop: a stream torn down outside it
        event(log, logging.WARNING, "monitor_not_started",  # no running event loop
              request_id=meta.request_id)


async def _monitor(
    state: AppState, client: Client, meta: RequestMeta, items: list[MonitorItem]
) -> list[str]:
    decisions = await asyncio.gather(*(client.pipeline.run_monitor(ctx) for ctx, _ in items))
    drafts = [d for (ctx, extra), decision in zip(items, decisions, strict=True)
              for d in incident_drafts(state, client, meta, ctx.stage, ctx.text, decision,
                                       extra=extra, monitor=True)]
    return await record(state, drafts) if drafts else []
