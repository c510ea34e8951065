"""A minimal, fast OpenAI-compatible upstream for benchmarks (raw ASGI, no framework).

Non-streaming: a ~2 KB chat completion (fixed text, or different benign text per request when
the request has ``"vary": true``: the next of the 2 KB texts in the JSON list at
``$BENCH_TEXTS`` when set, e.g. real LLM answers from the harm corpus' test split, else
templated prose). Streaming: the same in 20-char chunks, as fast as possible or
``"pace_ms": N`` apart (an LLM's pace: ~50 tokens/s is ~10 chunks/s).
Run: ``python -m uvicorn benchmarks.fast_upstream:app --port 9101 --log-level warning``
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import time

_SUBJECTS = ["The quarterly report", "Our analysis", "The committee", "This proposal", "The team",
             "The survey", "Regional sales", "The new policy", "Customer feedback", "The audit"]
_VERBS = ["shows", "suggests", "confirms", "highlights", "indicates", "outlines", "reviews"]
_OBJECTS = ["steady growth across all regions", "strength in the Asia-Pacific markets",
            "a need for clearer onboarding", "lower costs in logistics", "rising demand in Osaka",
            "delays in the supplier network", "better retention among new users",
            "a shift toward remote work", "stable margins despite inflation",
            "room to improve documentation"]


def make_text(rng: random.Random, size: int = 2048) -> str:
    """~2 KB of varied benign prose (different per request, so no scanner cache can help)."""
    parts: list[str] = []
    n = 0
    while n < size:
        s = (f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}, "
             f"according to note {rng.randint(1, 9999)}. ")
        parts.append(s)
        n += len(s)
    return "".join(parts)[:size]


_RNG = random.Random(7)
TEXT = make_text(_RNG)
_POOL = (itertools.cycle(json.load(open(os.environ["BENCH_TEXTS"], encoding="utf-8")))
         if os.environ.get("BENCH_TEXTS") else None)


def next_text() -> str:
    return next(_POOL) if _POOL is not None else make_text(_RNG)


def _completion(model: str, text: str) -> bytes:
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()),
        "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 512, "total_tokens": 522},
    }).encode()


def _chunks(model: str, text: str) -> list[bytes]:
    env = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": model}
    out = [b"data: " + json.dumps({**env, "choices": [{"index": 0, "delta": {
        "role": "assistant", "content": ""}, "finish_reason": None}]}).encode() + b"\n\n"]
    for i in range(0, len(text), 20):
        out.append(b"data: " + json.dumps({**env, "choices": [{"index": 0, "delta": {
            "content": text[i:i + 20]}, "finish_reason": None}]}).encode() + b"\n\n")
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
    text = next_text() if req.get("vary") else TEXT
    if req.get("stream"):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        pace = float(req.get("pace_ms") or 0) / 1000
        for i, c in enumerate(_chunks(model, text)):
            if pace and i:
                await asyncio.sleep(pace)
            await send({"type": "http.response.body", "body": c, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    data = _completion(model, text)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
