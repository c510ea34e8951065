"""A fake OpenAI-compatible upstream that echoes the last user message.

Behaviour is picked by the request's ``model``:
  any other model   echo (chat: last user message; completions: prompt), streaming in 3-char
                    chunks; ``fake_tool_args`` in the body adds a tool call with those arguments
  "fail-429"        HTTP 429 with an OpenAI error body
  "fail-500"        HTTP 500
  "slow"            sleeps ``fake_sleep`` seconds (default 5) before answering
  "disconnect"      streams two chunks, then drops the connection
``"fake_chunk_delay": S`` in a streamed request waits S seconds between chunks;
``"fake_piece": N`` streams N characters per chunk (default 3); with ``fake_tool_args`` a
stream ends with that tool call, its arguments in ``fake_piece``-sized deltas.
  "firehose"        streams ``fake_chunks`` chunks of 8 KB of text as fast as it is read,
                    counting in ``firehose_sent`` how many it has produced
  "not-json"        HTTP 200 with a body that is not JSON
``"fake_surrogate": true`` in the body starts the (non-streamed) answer with an unpaired UTF-16
surrogate, JSON-escaped (``\\ud800``): valid JSON, not Unicode text.
Every request body and its headers are kept in ``requests`` for assertions.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from guardrail.proxy.scripted import completion_object, reply_for, stream_events


def _with_tool(obj: dict[str, Any], args: str) -> None:
    for ch in obj["choices"]:
        ch["message"]["tool_calls"] = [{"id": "call_1", "type": "function",
                                        "function": {"name": "lookup", "arguments": args}}]
        ch["finish_reason"] = "tool_calls"


async def _with_streamed_tool(gen: Any, args: str, piece: int) -> Any:
    """The echo stream, then a tool call whose arguments arrive ``piece`` characters at a
    time, finishing with ``tool_calls``."""
    env: dict[str, Any] = {}
    async for raw in gen:
        block = raw.decode()
        if block.startswith("data: [DONE]"):
            break
        d = json.loads(block[6:])
        env = {k: d[k] for k in ("id", "object", "created", "model")}
        if d["choices"][0]["finish_reason"]:
            break
        yield raw

    def ev(delta: dict[str, Any], finish: str | None = None) -> bytes:
        c = {"index": 0, "delta": delta, "finish_reason": finish}
        return f"data: {json.dumps({**env, 'choices': [c]})}\n\n".encode()

    yield ev({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                              "function": {"name": "lookup", "arguments": ""}}]})
    for i in range(0, len(args), piece):
        yield ev({"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + piece]}}]})
    yield ev({}, "tool_calls")
    yield b"data: [DONE]\n\n"


async def _firehose(app: FastAPI, n: int) -> Any:
    app.state.firehose_sent = 0
    piece = ("lorem ipsum dolor sit amet " * 320)[:8192]
    for i in range(n):
        c = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
        yield f"data: {json.dumps({'id': 'f', 'object': 'chat.completion.chunk', 'created': 0, 'model': 'firehose', 'choices': [c]})}\n\n".encode()  # noqa: E501
        app.state.firehose_sent = i + 1
    done = {"index": 0, "delta": {}, "finish_reason": "stop"}
    yield f"data: {json.dumps({'id': 'f', 'object': 'chat.completion.chunk', 'created': 0, 'model': 'firehose', 'choices': [done]})}\n\ndata: [DONE]\n\n".encode()  # noqa: E501


async def _tracked(app: FastAPI, gen: Any) -> Any:
    """Record how each stream ended: ``completed`` or ``closed`` (the reader went away)."""
    done = False
    try:
        async for chunk in gen:
            yield chunk
        done = True
    finally:
        app.state.stream_ends.append("completed" if done else "closed")


def build_fake_upstream() -> FastAPI:
    app = FastAPI()
    app.state.requests = []
    app.state.stream_ends = []
    app.state.firehose_sent = 0

    async def handle(request: Request, chat: bool) -> Response:
        body = await request.json()
        app.state.requests.append({"body": body, "headers": dict(request.headers)})
        model = body.get("model")
        if model == "fail-429":
            return JSONResponse({"error": {"message": "Rate limit reached", "type": "requests",
                                           "param": None, "code": "rate_limit_exceeded"}},
                                status_code=429)
        if model == "fail-500":
            return JSONResponse({"error": {"message": "boom", "type": "server_error",
                                           "param": None, "code": None}}, status_code=500)
        if model == "slow":
            await asyncio.sleep(float(body.get("fake_sleep", 5)))
        if model == "not-json":
            return Response(b"<html>oops</html>", media_type="text/html")
        text = reply_for({**body, "messages": [
            {**m, "content": "echo:" + m["content"]} if m.get("role") == "user"
            and isinstance(m.get("content"), str) else m for m in body.get("messages", [])
        ]} if chat else {**body, "prompt": "echo:" + str(body.get("prompt", ""))})
        if body.get("stream"):
            # ``fake_chunk_delay``: seconds between chunks (a stream that stays open a while)
            piece = int(body.get("fake_piece", 3))
            gen = stream_events(body, text, chat, piece=piece,
                                delay=float(body.get("fake_chunk_delay", 0)))
            if chat and body.get("fake_tool_args") is not None:
                gen = _with_streamed_tool(gen, body["fake_tool_args"], piece)
            if model == "firehose":
                return StreamingResponse(_firehose(app, int(body.get("fake_chunks", 1000))),
                                         media_type="text/event-stream")
            if model == "disconnect":
                async def broken() -> Any:
                    n = 0
                    async for chunk in gen:
                        yield chunk
                        n += 1
                        if n == 3:
                            raise RuntimeError("upstream died mid-stream")
                return StreamingResponse(broken(), media_type="text/event-stream")
            return StreamingResponse(_tracked(app, gen), media_type="text/event-stream")
        surrogate = bool(body.get("fake_surrogate"))
        obj = completion_object(body, ("\ud800 " if surrogate else "") + text, chat)
        if chat and body.get("fake_tool_args") is not None:
            _with_tool(obj, body["fake_tool_args"])
        return Response(json.dumps(obj, ensure_ascii=surrogate), media_type="application/json")

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await handle(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await handle(request, chat=False)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "echo", "object": "model", "created": 0,
                                            "owned_by": "tests"}]}

    return app
