"""A minimal, fast OpenAI-compatible upstream for benchmarks (raw ASGI, no framework).

Non-streaming: a fixed ~2 KB chat completion. Streaming: the same text in 20-char chunks.
Run: ``python -m uvicorn benchmarks.fast_upstream:app --port 9101 --log-level warning``
"""

from __future__ import annotations

import json
import time

TEXT = ("The quarterly report shows steady growth across all regions, with particular strength "
        "in the Asia-Pacific markets where new partnerships were formed. ") * 14
TEXT = TEXT[:2048]


def _completion(model: str) -> bytes:
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()),
        "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT},
                                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 512, "total_tokens": 522},
    }).encode()


def _chunks(model: str) -> list[bytes]:
    env = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": model}
    out = [b"data: " + json.dumps({**env, "choices": [{"index": 0, "delta": {
        "role": "assistant", "content": ""}, "finish_reason": None}]}).encode() + b"\n\n"]
    for i in range(0, len(TEXT), 20):
        out.append(b"data: " + json.dumps({**env, "choices": [{"index": 0, "delta": {
            "content": TEXT[i:i + 20]}, "finish_reason": None}]}).encode() + b"\n\n")
    out.append(b"data: " + json.dumps({**env, "choices": [{"index": 0, "delta": {},
                                                            "finish_reason": "stop"}]}).encode()
               + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    req = json.loads(body or b"{}")
    model = req.get("model", "bench")
    if req.get("stream"):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for c in _chunks(model):
            await send({"type": "http.response.body", "body": c, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    data = _completion(model)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
