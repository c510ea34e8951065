"""One proxied completion as fixed stages over one object.

``parse -> upstream -> extract -> guard -> label -> render`` for a JSON response; a stream
runs ``parse -> upstream`` here and the same guard and label logic per window in
:class:`guardrail.proxy.streaming.StreamGuard`. Each stage reads and fills the
:class:`Exchange`; none calls another. Labelling is decided by the exchange's
:class:`~guardrail.proxy.label.Labels` only; the ``guardrail`` annotation is built by
:func:`summary` for both paths; the request id is the one the middleware gave the request.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response

from guardrail.errors import UpstreamUnreachableError
from guardrail.holds.store import new_response_id
from guardrail.pipeline.types import Action, RequestMeta, Stage, apply_redactions
from guardrail.proxy import schemas
from guardrail.proxy.guard import (
    Guarded,
    ScanTally,
    guard_text,
    keep_held,
    log_decision,
    monitor_after_release,
    monitor_note,
)
from guardrail.proxy.label import Labels
from guardrail.proxy.upstream import forward_headers

if TYPE_CHECKING:
    from guardrail.deps import AppState, Client
    from guardrail.pipeline.runner import Pipeline
    from guardrail.policy import Policy


@dataclass
class Exchange:
    """Everything one request is and becomes. Filled stage by stage."""

    request: Request
    state: AppState
    client: Client
    chat: bool
    raw: bytes  # the request body as the client sent it (forwarded unchanged)
    body: dict[str, Any]
    meta: RequestMeta
    labels: Labels
    t0: float = field(default_factory=time.perf_counter)
    # upstream
    status_code: int = 200
    upstream_raw: bytes = b""
    upstream_s: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    # extract / guard
    fields: list[schemas.TextField] = field(default_factory=list)
    results: list[Guarded] = field(default_factory=list)
    action: Action = Action.ALLOW
    incident_ids: list[str] = field(default_factory=list)
    # label / render
    released: list[Any] | None = None  # the choices as they may go out (redacted, labelled)
    summary: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def route(self) -> str:
        return self.meta.route

    @property
    def policy(self) -> Policy:
        return self.client.policy

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True


def summary(policy: Policy, meta: RequestMeta, pipeline: Pipeline, labels: Labels,
            action: Action, incident_ids: list[str], *, message: str | None = None,
            response_id: str | None = None) -> dict[str, Any]:
    """The ``guardrail`` object of a response (the last SSE chunk when streaming)."""
    s: dict[str, Any] = {"decision": action.value, "incident_ids": list(incident_ids),
                         "policy": policy.name, "policy_version": policy.version,
                         "request_id": meta.request_id}
    disclosure = labels.field()
    if disclosure is not None:
        s["disclosure"] = disclosure
    monitoring = monitor_note(pipeline)
    if monitoring is not None:
        s["monitor"] = monitoring
    if message:
        s["message"] = message
    if response_id is not None:
        s["response_id"] = response_id
    return s


def guardrail_headers(meta: RequestMeta, action: Action | str,
                      incident_ids: list[str]) -> dict[str, str]:
    h = {"X-Guardrail-Decision": action.value if isinstance(action, Action) else action,
         "X-Guardrail-Request-Id": meta.request_id,
         "X-Guardrail-Policy": f"{meta.policy_name}@{meta.policy_version}"}
    if incident_ids:
        h["X-Guardrail-Incidents"] = ",".join(incident_ids)
    return h


# -- parse -----------------------------------------------------------------------------------

async def parse(request: Request, state: AppState, client: Client, *, chat: bool) -> Exchange:
    raw, body = await schemas.read_json_body(request, state.settings.max_body_bytes,
                                             state.settings.max_json_depth)
    (schemas.validate_chat if chat else schemas.validate_completion)(body)
    model = body.get("model") if isinstance(body.get("model"), str) else None
    meta = RequestMeta(
        request_id=request.state.request_id,  # the middleware's, and only that
        route="/v1/chat/completions" if chat else "/v1/completions",
        policy_name=client.policy.name, policy_version=client.policy.version,
        system_id=client.policy.system, api_key_id=client.key_id,
        tenant=client.tenant,  # from the key's configuration; a client header is ignored
        upstream_model=model, response_id=new_response_id())  # kept only if held
    return Exchange(request=request, state=state, client=client, chat=chat, raw=raw,
                    body=body, meta=meta, labels=Labels(client.policy, model, meta.request_id))


def upstream_path(ex: Exchange) -> str:
    return "chat/completions" if ex.chat else "completions"


# -- upstream --------------------------------------------------------------------------------

async def upstream(ex: Exchange) -> None:
    up0 = time.perf_counter()
    resp = await ex.state.upstream.request(
        "POST", upstream_path(ex), content=ex.raw,
        headers=forward_headers(ex.request.headers), base_url=ex.policy.upstream)
    ex.upstream_s = time.perf_counter() - up0
    ex.state.metrics.upstream_latency.labels(ex.route).observe(ex.upstream_s)
    ex.status_code, ex.upstream_raw = resp.status_code, resp.content
    try:
        data = schemas.upstream_json(resp.content)
        assert isinstance(data, dict) and isinstance(data["choices"], list)
    except Exception:  # noqa: BLE001 - an upstream that is not OpenAI-compatible
        raise UpstreamUnreachableError("upstream returned a body that is not an OpenAI "
                                       "completion object", code="upstream_bad_response") from None
    ex.data = data
    answered = data.get("model")
    ex.meta = replace(ex.meta, answered_model=answered if isinstance(answered, str) else None)
    observe = ex.state.extras.get("observe_model")  # governance: models seen per system
    if observe is not None:
        observe(ex.state, ex.policy.system, ex.meta.answered_model)


# -- extract ---------------------------------------------------------------------------------

def extract(ex: Exchange) -> None:
    """Every text the scanners read: message content, tool-call arguments, completion text."""
    fields = schemas.chat_fields if ex.chat else schemas.completion_fields
    ex.fields = [f for i, ch in enumerate(ex.data["choices"]) if isinstance(ch, dict)
                 for f in fields(ch, ch.get("index", i))]


# -- guard -----------------------------------------------------------------------------------

async def guard(ex: Exchange) -> None:
    """The pipeline on every field at once; incidents are written before this returns."""
    ex.results = list(await asyncio.gather(
        *(guard_text(ex.state, ex.client, ex.meta, f.text, f.stage,
                     extra={"choice": f.choice, "field": list(f.path)}) for f in ex.fields)))
    ex.action = Action.strongest([g.decision.action for g in ex.results])
    ex.incident_ids = [i for g in ex.results for i in g.incident_ids]
    m = ex.state.metrics
    m.decisions.labels(ex.action.value, ex.policy.name).inc()
    tally = ScanTally()
    for g in ex.results:
        tally.add(g.decision)
        for rf in g.decision.acting_findings:
            m.findings.labels(rf.finding.scanner, rf.finding.category, rf.action.value).inc()
    log_decision(ex.meta, ex.action, ex.incident_ids, tally, stream=False)


# -- label -----------------------------------------------------------------------------------

def label(ex: Exchange) -> None:
    """The response as it may go out: redactions in place, the visible notice on output
    text (a copy of the choices; the upstream's bytes stay untouched for pass-through), and
    the disclosure headers."""
    ex.headers = {**guardrail_headers(ex.meta, ex.action, ex.incident_ids),
                  **ex.labels.headers()}
    changed = ex.labels.notice_on or any(g.decision.redactions for g in ex.results)
    if not changed and ex.action is not Action.HOLD:
        return  # nothing to rewrite: render splices the annotation into the upstream bytes
    choices = copy.deepcopy(ex.data["choices"])
    by_index = {ch.get("index", i): ch for i, ch in enumerate(choices)}
    for f, g in zip(ex.fields, ex.results, strict=True):
        red = g.decision.redactions
        text = apply_redactions(f.text, red) if red else f.text
        if f.stage is Stage.OUTPUT:
            text = ex.labels.text(text, f.text)
        if text != f.text:
            schemas.set_path(by_index[f.choice], f.path, text)
    ex.released = choices


# -- render ----------------------------------------------------------------------------------

async def render(ex: Exchange) -> Response:
    """The body the client gets: pass-through bytes with the annotation spliced in, the
    released (redacted, labelled) choices, or the policy's message for a block or hold (whose
    released form is first kept, encrypted, for a reviewer to release)."""
    policy, action = ex.policy, ex.action
    response_id = message = None
    if action is Action.HOLD:
        assert ex.released is not None
        held = {**ex.data, "choices": ex.released}
        response_id = await keep_held(ex.state, ex.client, ex.meta,
                                      json.dumps(held, ensure_ascii=False).encode(),
                                      [i for g in ex.results for i in g.hold_ids])
        ex.headers["X-Guardrail-Response-Id"] = response_id
    if action in (Action.HOLD, Action.BLOCK):
        message = getattr(policy.messages, action.value).format(
            incident_id=ex.incident_ids[0] if ex.incident_ids else "-")
    ex.summary = summary(policy, ex.meta, ex.client.pipeline, ex.labels, action,
                         ex.incident_ids, message=message, response_id=response_id)
    if message is not None:
        data = {**ex.data, "choices": [_refusal(ch, message, ex.chat)
                                       for ch in ex.data["choices"]], "guardrail": ex.summary}
        content = json.dumps(data, ensure_ascii=False).encode()
    elif ex.released is None:
        content = _splice(ex.upstream_raw, "guardrail", ex.summary)
    else:
        data = {**ex.data, "choices": ex.released, "guardrail": ex.summary}
        content = json.dumps(data, ensure_ascii=False).encode()
    if message is None:
        ex.labels.released(ex.state.extras)
    ex.state.metrics.overhead.labels(ex.route).observe(
        max(0.0, time.perf_counter() - ex.t0 - ex.upstream_s))
    # monitor-mode scanners: in the background, on what the enforce ones scanned
    monitor_after_release(ex.state, ex.client, ex.meta,
                          [(g.ctx, {"choice": f.choice, "field": list(f.path)})
                           for f, g in zip(ex.fields, ex.results, strict=True)
                           if g.ctx is not None])
    return Response(content=content, status_code=ex.status_code,
                    media_type="application/json", headers=ex.headers)


def _refusal(ch: Any, message: str, chat: bool) -> Any:
    if not isinstance(ch, dict):
        return ch
    out = {**ch, "finish_reason": "content_filter"}
    if chat:
        out["message"] = {"role": "assistant", "content": message}
    else:
        out["text"] = message
    return out


def _splice(raw: bytes, key: str, value: dict[str, Any]) -> bytes:
    """Append ``"key": value`` to a JSON object's bytes without re-serialising the rest, so
    an allowed response stays byte-for-byte what the upstream sent."""
    body = raw.rstrip()
    if not body.endswith(b"}"):
        raise ValueError("not a JSON object")
    inner = body[:-1].rstrip()
    sep = b"" if inner.endswith(b"{") else b","
    return inner + sep + json.dumps({key: value}, ensure_ascii=False)[1:-1].encode() + b"}"
