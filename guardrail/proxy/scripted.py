"""The built-in scripted upstream: an OpenAI-compatible fake used when no upstream is set.

It lets a newcomer see interventions in the first minute, with no API key and no network.
It is an ``httpx`` transport (no socket). Replies are canned; a user message starting with
``echo:`` is answered with the rest of the message verbatim.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

MODELS = ["guardrail-scripted-1"]

CANNED: list[tuple[tuple[str, ...], str]] = [
    (("codename", "secret project", "社外秘"),
     "Sure. The internal name is forbidden-project-codename, and the plan is marked 社外秘."),
    (("api key", "token"),
     "Here is the key you asked for: sk-abcdefghijklmnopqrstuvwxyz123456. Keep it safe."),
    (("contact", "email", "連絡先"),
     "You can reach Taro Yamada at taro.yamada@example.co.jp or 090-1234-5678 "
     "(マイナンバー 123456789018)."),
]
DEFAULT = ("Hello! I am guardrail's built-in scripted upstream. Ask me for a 'codename', an "
           "'api key' or a 'contact' to see the policy intervene, or start a message with "
           "'echo:' to have it repeated verbatim.")


def reply_for(body: dict[str, Any]) -> str:
    if "messages" in body:
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        content = users[-1].get("content") if users else ""
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    else:
        prompt = body.get("prompt", "")
        content = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
    content = content or ""
    if content.startswith("echo:"):
        return content[5:].lstrip()
    low = content.lower()
    for keys, text in CANNED:
        if any(k in low for k in keys):
            return text
    return DEFAULT


def _pieces(text: str, size: int = 4) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def completion_object(body: dict[str, Any], text: str, chat: bool) -> dict[str, Any]:
    n = body.get("n") or 1
    base = {"id": ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:12],
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()), "model": body.get("model", MODELS[0]),
            "usage": {"prompt_tokens": 8, "completion_tokens": len(text) // 4,
                      "total_tokens": 8 + len(text) // 4}}
    if chat:
        base["choices"] = [{"index": i, "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop", "logprobs": None} for i in range(n)]
    else:
        base["choices"] = [{"index": i, "text": text, "finish_reason": "stop", "logprobs": None}
                           for i in range(n)]
    return base


async def stream_events(body: dict[str, Any], text: str, chat: bool, delay: float = 0.0,
                        piece: int = 4) -> AsyncIterator[bytes]:
    cid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:12]
    env = {"id": cid, "object": "chat.completion.chunk" if chat else "text_completion",
           "created": int(time.time()), "model": body.get("model", MODELS[0])}
    n = body.get("n") or 1

    def chunk(i: int, content: str | None, finish: str | None, role: bool = False) -> bytes:
        if chat:
            delta: dict[str, Any] = {"role": "assistant"} if role else {}
            if content is not None:
                delta["content"] = content
            c = {"index": i, "delta": delta, "finish_reason": finish}
        else:
            c = {"index": i, "text": content or "", "finish_reason": finish}
        return f"data: {json.dumps({**env, 'choices': [c]}, ensure_ascii=False)}\n\n".encode()

    for i in range(n):
        if chat:
            yield chunk(i, "", None, role=True)
    for p in _pieces(text, piece):
        for i in range(n):
            yield chunk(i, p, None)
        if delay:
            await asyncio.sleep(delay)
    for i in range(n):
        yield chunk(i, None if chat else "", "stop")
    yield b"data: [DONE]\n\n"


class ScriptedTransport(httpx.AsyncBaseTransport):
    """Answers /chat/completions, /completions and /models like an OpenAI endpoint."""

    def __init__(self, delay_s: float = 0.01) -> None:
        self.delay_s = delay_s

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.rstrip("/")
        if path.endswith("/models") and request.method == "GET":
            data = {"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                "owned_by": "guardrail"} for m in MODELS]}
            return httpx.Response(200, json=data)
        chat = path.endswith("/chat/completions")
        if not (chat or path.endswith("/completions")) or request.method != "POST":
            return httpx.Response(404, json={"error": {"message": f"no route {path}",
                                                       "type": "invalid_request_error",
                                                       "param": None, "code": "not_found"}})
        body = json.loads(await request.aread())
        text = reply_for(body)
        if body.get("stream"):
            return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  content=stream_events(body, text, chat, self.delay_s))
        return httpx.Response(200, json=completion_object(body, text, chat))
