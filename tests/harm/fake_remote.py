"""A fake moderation + chat-judge server for the remote harm backends.

``/v1/moderations`` answers OpenAI's format; each input scores by marker words in it:
  "KILLYOU"   harassment 0.6, harassment/threatening 0.92, hate/threatening 0.4, violence 0.7
  "SELFHARM"  self-harm 0.3, self-harm/intent 0.85, self-harm/instructions 0.5
  otherwise   every category 0.01
``/v1/chat/completions`` answers as Llama Guard would, from marker words anywhere in the
messages: "KILLYOU" -> ``unsafe\\nS1,S10``, "PRIVATE" -> ``unsafe\\nS7``, "NOCODE" -> ``unsafe``,
otherwise ``safe``.

Behaviour by ``model`` (both routes):
  "fail-500" / "fail-401"  that HTTP status with an OpenAI error body ("fail-401" echoes the
                           bearer token in the message, as a careless server might)
  "slow"                   sleeps ``app.state.sleep_s`` seconds first
  "not-json"               HTML with status 200
  "bad-shape"              JSON without the expected fields
  "short"                  moderations: one result fewer than inputs
  "bad-score"              moderations: a score of 7
  "foreign"                moderations: only categories we do not know
  "chatty"                 chat: a verdict that is neither safe nor unsafe
  "bad-code"               chat: ``unsafe\\nS99``
  "no-content"             chat: message content null
Every request's body and headers are kept in ``app.state.requests``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

CATS = ["harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
        "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual",
        "sexual/minors", "violence", "violence/graphic"]


def moderation_scores(text: str) -> dict[str, float]:
    scores = dict.fromkeys(CATS, 0.01)
    if "KILLYOU" in text:
        scores.update({"harassment": 0.6, "harassment/threatening": 0.92,
                       "hate/threatening": 0.4, "violence": 0.7})
    if "SELFHARM" in text:
        scores.update({"self-harm": 0.3, "self-harm/intent": 0.85,
                       "self-harm/instructions": 0.5})
    return scores


def judge_verdict(text: str) -> str:
    if "KILLYOU" in text:
        return "unsafe\nS1,S10"
    if "PRIVATE" in text:
        return "unsafe\nS7"
    if "NOCODE" in text:
        return "unsafe"
    return "safe"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "server_error", "param": None,
                                   "code": None}}, status_code=status)


async def _common(app: FastAPI, request: Request) -> tuple[dict[str, Any], Response | None]:
    body = await request.json()
    app.state.requests.append({"path": request.url.path, "body": body,
                               "headers": dict(request.headers)})
    model = body.get("model")
    if model == "fail-500":
        return body, _error(500, "internal error")
    if model == "fail-401":
        auth = request.headers.get("authorization", "")
        return body, _error(401, f"Incorrect API key provided: {auth.removeprefix('Bearer ')}")
    if model == "slow":
        await asyncio.sleep(app.state.sleep_s)
    if model == "not-json":
        return body, Response(b"<html>oops</html>", media_type="text/html")
    if model == "bad-shape":
        return body, JSONResponse({"object": "surprise"})
    return body, None


def build_fake_remote() -> FastAPI:
    app = FastAPI()
    app.state.requests = []
    app.state.sleep_s = 5.0

    @app.post("/v1/moderations")
    async def moderations(request: Request) -> Response:
        body, early = await _common(app, request)
        if early is not None:
            return early
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        results = [{"flagged": max(moderation_scores(t).values()) > 0.5,
                    "categories": {k: v > 0.5 for k, v in moderation_scores(t).items()},
                    "category_scores": moderation_scores(t)} for t in inputs]
        model = body.get("model")
        if model == "short":
            results = results[:-1]
        elif model == "bad-score":
            results[0]["category_scores"]["violence"] = 7
        elif model == "foreign":
            results = [{"flagged": False, "category_scores": {"spam": 0.1}} for _ in inputs]
        return JSONResponse({"id": "modr-1", "model": "omni-moderation-fake-1",
                             "results": results})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body, early = await _common(app, request)
        if early is not None:
            return early
        text = "\n".join(str(m.get("content") or "") for m in body["messages"])
        model = body.get("model")
        content: str | None = judge_verdict(text)
        if model == "chatty":
            content = "I think this message is probably fine."
        elif model == "bad-code":
            content = "unsafe\nS99"
        elif model == "no-content":
            content = None
        return JSONResponse({
            "id": "chatcmpl-1", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}]})

    return app
