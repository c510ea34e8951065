"""OpenAI-compatible proxy routes: chat completions, completions, models.

Each completion runs the fixed stages of :mod:`guardrail.proxy.exchange`; a stream hands the
open upstream response to :class:`guardrail.proxy.streaming.StreamGuard`.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from guardrail.deps import Client, ClientDep, State
from guardrail.errors import ApiError
from guardrail.limits import Release
from guardrail.pipeline.types import ScanContext, Stage
from guardrail.proxy import exchange
from guardrail.proxy.exchange import Exchange, guardrail_headers
from guardrail.proxy.guard import MonitorItem, log_decision, monitor_after_release
from guardrail.proxy.streaming import StreamGuard, relay
from guardrail.proxy.upstream import forward_headers

router = APIRouter(prefix="/v1", tags=["proxy"])


async def _completion(request: Request, state: State, client: Client, *, chat: bool
                      ) -> Response:
    ex = await exchange.parse(request, state, client, chat=chat)
    release = await state.extras["limits"].acquire(client.key_id or "-", client.limits)
    if ex.stream:
        try:
            return await _stream(ex, release)  # the stream gives its slot back at its end
        except BaseException:
            await release()
            raise
    try:
        await exchange.upstream(ex)
        exchange.extract(ex)
        await exchange.guard(ex)
        exchange.label(ex)
        return await exchange.render(ex)
    finally:
        await release()


async def _stream(ex: Exchange, release: Release) -> Response:
    state, client, route = ex.state, ex.client, ex.route
    stack = AsyncExitStack()
    up0 = time.perf_counter()
    try:
        upstream = await stack.enter_async_context(state.upstream.stream(
            exchange.upstream_path(ex), content=ex.raw,
            headers=forward_headers(ex.request.headers), base_url=client.policy.upstream))
    except BaseException:
        await stack.aclose()
        raise

    def first_content() -> None:
        state.metrics.ttft.labels(route).observe(time.perf_counter() - ex.t0)

    guard = StreamGuard(state, client, ex.meta, ex.chat, labels=ex.labels,
                        on_first_content=first_content)

    def done(status: str) -> None:
        state.metrics.upstream_latency.labels(route).observe(time.perf_counter() - up0)
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
            await release()

    headers = guardrail_headers(ex.meta, "streamed", [])  # the decision is in the last chunk
    headers.update(ex.labels.headers())
    headers["Cache-Control"] = "no-cache"
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


def _streamed_texts(guard: StreamGuard) -> list[MonitorItem]:
    items: list[MonitorItem] = []
    for st in guard.choices.values():
        items.append((ScanContext(text=str(st.text), meta=guard.meta, stage=Stage.OUTPUT),
                      {"choice": st.index, "streamed": True}))
        for key, args in st.tool_args.items():
            items.append((ScanContext(text=args, meta=guard.meta, stage=Stage.TOOL_ARGUMENTS),
                          {"choice": st.index, "tool_call": key, "streamed": True}))
    return items


@router.post("/chat/completions")
async def chat_completions(request: Request, state: State, client: ClientDep) -> Response:
    return await _completion(request, state, client, chat=True)


@router.post("/completions")
async def completions(request: Request, state: State, client: ClientDep) -> Response:
    return await _completion(request, state, client, chat=False)


@router.get("/models")
async def models(request: Request, state: State, client: ClientDep) -> Response:
    resp = await state.upstream.request("GET", "models", headers=forward_headers(request.headers),
                                        base_url=client.policy.upstream)
    return Response(content=resp.content, status_code=resp.status_code,
                    media_type=resp.headers.get("content-type", "application/json"))


__all__ = ["router", "ApiError"]
