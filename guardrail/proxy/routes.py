"""OpenAI-compatible proxy routes: chat completions, completions, models."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from guardrail.deps import AppState, Client, ClientDep, State
from guardrail.errors import ApiError
from guardrail.holds.store import new_response_id
from guardrail.labelling.disclosure import (
    apply_notice,
    disclosure_field,
    disclosure_headers,
)
from guardrail.pipeline.types import (
    Action,
    RequestMeta,
    ScanContext,
    Stage,
    apply_redactions,
    detect_language,
)
from guardrail.policy import Policy
from guardrail.proxy import schemas
from guardrail.proxy.guard import (
    Guarded,
    MonitorItem,
    ScanTally,
    guard_text,
    keep_held,
    log_decision,
    monitor_after_release,
    monitor_note,
)
from guardrail.proxy.streaming import StreamGuard, relay
from guardrail.proxy.upstream import forward_headers

router = APIRouter(prefix="/v1", tags=["proxy"])



def _meta(request: Request, client: Client, route: str, body: dict[str, Any]) -> RequestMeta:
    return RequestMeta(
        request_id=getattr(request.state, "request_id", None) or "req_" + uuid.uuid4().hex[:20],
        route=route,
        policy_name=client.policy.name,
        policy_version=client.policy.version,
        system_id=client.policy.system,
        api_key_id=client.key_id,
        tenant=client.tenant,  # from the key's configuration; a client header is ignored
        upstream_model=body.get("model") if isinstance(body.get("model"), str) else None,
        response_id=new_response_id(),  # used only if the response is held
    )



def _model_of(data: dict[str, Any]) -> str | None:
    """The model the upstream says answered (``response.model``), as incidents record it."""
    model = data.get("model")
    return model if isinstance(model, str) else None


def _guardrail_headers(
    meta: RequestMeta, action: Action, incident_ids: list[str]
) -> dict[str, str]:
    h = {"X-Guardrail-Decision": action.value, "X-Guardrail-Request-Id": meta.request_id,
         "X-Guardrail-Policy": f"{meta.policy_name}@{meta.policy_version}"}
    if incident_ids:
        h["X-Guardrail-Incidents"] = ",".join(incident_ids)
    return h


def _splice(raw: bytes, key: str, value: dict[str, Any]) -> bytes:
    """Append ``"key": value`` to a JSON object's bytes without re-serialising the rest, so
    an allowed response stays byte-for-byte what the upstream sent."""
    body = raw.rstrip()
    if not body.endswith(b"}"):
        raise ValueError("not a JSON object")
    inner = body[:-1].rstrip()
    sep = b"" if inner.endswith(b"{") else b","
    return inner + sep + json.dumps({key: value}, ensure_ascii=False)[1:-1].encode() + b"}"


def _render_allowed(choices: list[Any], fields: list[schemas.TextField], results: list[Guarded],
                    policy: Policy, meta: RequestMeta, notice: bool) -> None:
    """Put each scanned field's released form in place: redactions, then the disclosure
    notice on output text."""
    by_index = {ch.get("index", i): ch for i, ch in enumerate(choices)}
    for f, g in zip(fields, results, strict=True):
        red = g.decision.redactions
        text = apply_redactions(f.text, red) if red else f.text
        if notice and f.stage is Stage.OUTPUT:
            text = apply_notice(policy, text, detect_language(f.text),
                                meta.upstream_model, meta.request_id)
        if text != f.text:
            schemas.set_path(by_index[f.choice], f.path, text)


async def _proxy(request: Request, state: AppState, client: Client, *, chat: bool) -> Response:
    route = "/v1/chat/completions" if chat else "/v1/completions"
    t0 = time.perf_counter()
    raw, body = await schemas.read_json_body(request, state.settings.max_body_bytes)
    (schemas.validate_chat if chat else schemas.validate_completion)(body)
    meta = _meta(request, client, route, body)
    path = "chat/completions" if chat else "completions"
    base_url = client.policy.upstream
    if body.get("stream") is True:
        return await _stream(request, state, client, meta, raw, path, base_url, chat, t0)

    up0 = time.perf_counter()
    resp = await state.upstream.request("POST", path, content=raw,
                                        headers=forward_headers(request.headers),
                                        base_url=base_url)
    up_s = time.perf_counter() - up0
    state.metrics.upstream_latency.labels(route).observe(up_s)
    try:
        data = schemas.upstream_json(resp.content)
        choices = data["choices"]
        assert isinstance(choices, list)
        meta = replace(meta, answered_model=_model_of(data))
    except Exception:  # noqa: BLE001 - an upstream that is not OpenAI-compatible
        from guardrail.errors import UpstreamUnreachableError

        raise UpstreamUnreachableError("upstream returned a body that is not an OpenAI "
                                       "completion object", code="upstream_bad_response") from None
    fields = [f for i, ch in enumerate(choices) if isinstance(ch, dict)
              for f in (schemas.chat_fields(ch, ch.get("index", i)) if chat
                        else schemas.completion_fields(ch, ch.get("index", i)))]
    results: list[Guarded] = await asyncio.gather(
        *(guard_text(state, client, meta, f.text, f.stage, extra={"choice": f.choice,
                                                                  "field": list(f.path)})
          for f in fields))
    action = Action.strongest([g.decision.action for g in results])
    ids = [i for g in results for i in g.incident_ids]
    state.metrics.decisions.labels(action.value, client.policy.name).inc()
    tally = ScanTally()
    for g in results:
        tally.add(g.decision)
    log_decision(meta, action, ids, tally, stream=False)
    for g in results:
        for rf in g.decision.acting_findings:
            state.metrics.findings.labels(rf.finding.scanner, rf.finding.category,
                                          rf.action.value).inc()
    policy = client.policy
    summary: dict[str, Any] = {"decision": action.value, "incident_ids": ids,
                               "policy": policy.name, "policy_version": policy.version,
                               "request_id": meta.request_id}
    disclosure = disclosure_field(policy, meta.upstream_model)
    if disclosure is not None:
        summary["disclosure"] = disclosure
    monitoring = monitor_note(client.pipeline)
    if monitoring is not None:
        summary["monitor"] = monitoring
    headers = _guardrail_headers(meta, action, ids)
    headers.update(disclosure_headers(policy, meta.upstream_model, meta.request_id))
    notice = policy.labelling.notice.position != "off" and policy.labelling.disclosure
    if action in (Action.ALLOW, Action.FLAG) and not notice:
        content = _splice(resp.content, "guardrail", summary)
    else:
        if action is Action.HOLD:
            # the held copy: what would have gone out (redactions and labelling applied)
            held = copy.deepcopy(data)
            _render_allowed(held["choices"], fields, results, policy, meta, notice)
            hold_ids = [i for g in results for i in g.hold_ids]
            summary["response_id"] = await keep_held(
                state, client, meta, json.dumps(held, ensure_ascii=False).encode(), hold_ids)
            headers["X-Guardrail-Response-Id"] = summary["response_id"]
        if action in (Action.ALLOW, Action.FLAG, Action.REDACT):
            _render_allowed(choices, fields, results, policy, meta, notice)
        else:
            msg = getattr(client.policy.messages, action.value).format(
                incident_id=ids[0] if ids else "-")
            summary["message"] = msg
            for ch in choices:
                ch["finish_reason"] = "content_filter"
                if chat:
                    ch["message"] = {"role": "assistant", "content": msg}
                else:
                    ch["text"] = msg
        data["guardrail"] = summary
        content = json.dumps(data, ensure_ascii=False).encode()
    state.metrics.overhead.labels(route).observe(max(0.0, time.perf_counter() - t0 - up_s))
    # monitor-mode scanners: in the background, on what the enforce ones scanned
    monitor_after_release(state, client, meta,
                          [(g.ctx, {"choice": f.choice, "field": list(f.path)})
                           for f, g in zip(fields, results, strict=True) if g.ctx is not None])
    return Response(content=content, status_code=resp.status_code,
                    media_type="application/json", headers=headers)


async def _stream(request: Request, state: AppState, client: Client, meta: RequestMeta,
                  raw: bytes, path: str, base_url: str | None, chat: bool, t0: float) -> Response:
    route = meta.route
    stack = AsyncExitStack()
    up0 = time.perf_counter()
    try:
        upstream = await stack.enter_async_context(
            state.upstream.stream(path, content=raw, headers=forward_headers(request.headers),
                                  base_url=base_url))
    except BaseException:
        await stack.aclose()
        raise

    def first_content() -> None:
        state.metrics.ttft.labels(route).observe(time.perf_counter() - t0)

    guard = StreamGuard(state, client, meta, chat, on_first_content=first_content)

    def done(status: str) -> None:
        total = time.perf_counter() - up0
        state.metrics.upstream_latency.labels(route).observe(total)
        state.metrics.decisions.labels(guard.action.value, client.policy.name).inc()
        log_decision(guard.meta, guard.action, guard.incident_ids, guard.tally, stream=True,
                     end=status)
        # monitor-mode scanners: the whole text of each choice, once, after the stream ended
        # (however it ended: finished, stopped, or the client went away)
        monitor_after_release(state, client, guard.meta, _streamed_texts(guard))

    async def body() -> Any:
        try:
            async for chunk in relay(guard, upstream, done):
                yield chunk
        finally:
            await stack.aclose()

    headers = _guardrail_headers(meta, Action.ALLOW, [])
    headers["X-Guardrail-Decision"] = "streamed"  # final decision is in the last chunk
    headers.update(disclosure_headers(client.policy, meta.upstream_model, meta.request_id))
    headers["Cache-Control"] = "no-cache"
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


def _streamed_texts(guard: StreamGuard) -> list[MonitorItem]:
    items: list[MonitorItem] = []
    for st in guard.choices.values():
        items.append((ScanContext(text=st.text, meta=guard.meta, stage=Stage.OUTPUT),
                      {"choice": st.index, "streamed": True}))
        for key, args in st.tool_args.items():
            items.append((ScanContext(text=args, meta=guard.meta, stage=Stage.TOOL_ARGUMENTS),
                          {"choice": st.index, "tool_call": key, "streamed": True}))
    return items


@router.post("/chat/completions")
async def chat_completions(request: Request, state: State, client: ClientDep) -> Response:
    return await _proxy(request, state, client, chat=True)


@router.post("/completions")
async def completions(request: Request, state: State, client: ClientDep) -> Response:
    return await _proxy(request, state, client, chat=False)


@router.get("/models")
async def models(request: Request, state: State, client: ClientDep) -> Response:
    resp = await state.upstream.request("GET", "models", headers=forward_headers(request.headers),
                                        base_url=client.policy.upstream)
    return Response(content=resp.content, status_code=resp.status_code,
                    media_type=resp.headers.get("content-type", "application/json"))


__all__ = ["router", "ApiError"]
