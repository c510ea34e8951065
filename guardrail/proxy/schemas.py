"""Request validation and the text fields of OpenAI responses that must be scanned.

Requests are validated only as far as the proxy needs; the original bytes go upstream
untouched, so fields guardrail does not know pass through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from guardrail.errors import BadRequestError, PayloadTooLargeError
from guardrail.pipeline.types import Stage


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``max_bytes`` (declared or
    streamed). Cached on the request so ``request.form()`` can parse it afterwards."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(f"Request body exceeds {max_bytes} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(f"Request body exceeds {max_bytes} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    request._body = raw
    return raw


def parse_json(raw: bytes, max_depth: int = 64) -> Any:
    """A request body as JSON, or a 400 ``invalid_json`` in the API's format: not JSON, not
    UTF-8, nested deeper than the parser goes, or holding an unpaired UTF-16 surrogate
    (``"\\ud800"`` is valid JSON but no Unicode text: it could be neither scanned nor stored)."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"Request body is not valid JSON: {exc}",
                              code="invalid_json") from None
    except RecursionError:
        raise BadRequestError("Request body is not valid JSON: nested too deeply.",
                              code="invalid_json") from None
    # a surrogate arrives only as a \u escape or in non-ASCII bytes (surrogatepass decoding)
    if (b"\\u" in raw or not raw.isascii()) and _has_surrogate(body):
        raise BadRequestError("Request body is not valid JSON: it holds an unpaired UTF-16 "
                              "surrogate (such as \\ud800), which is not Unicode text.",
                              code="invalid_json")
    if _deeper_than(body, max_depth):
        raise BadRequestError(f"Request body is nested deeper than {max_depth} levels.",
                              code="json_too_deep")
    return body


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays/objects nest more than ``limit`` deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            items: Any = v.values()
        elif isinstance(v, list):
            items = v
        else:
            continue
        if depth > limit:
            return True
        stack.extend((x, depth + 1) for x in items if isinstance(x, dict | list))
    return False


def _has_surrogate(value: Any) -> bool:
    stack = [value]  # iterative: the body may be nested as deep as the parser allowed
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def scrub_surrogates(value: Any) -> Any:
    """An upstream's parsed JSON with every unpaired UTF-16 surrogate replaced by U+FFFD.

    A request holding one is refused (:func:`parse_json`), but the upstream's answer is not
    ours to refuse: its text is scanned and stored as Unicode (a lone ``\\ud800`` could be
    neither hashed nor written to the store). The original bytes still pass through unchanged
    where no text is rewritten."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {scrub_surrogates(k): scrub_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_surrogates(v) for v in value]
    return value


def upstream_json(raw: bytes | str) -> Any:
    """An upstream body or SSE payload as JSON, lone surrogates scrubbed (only looked for where
    one can be: a backslash-u escape or non-ASCII text)."""
    data = json.loads(raw)
    probe = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if (b"\\u" in probe or not probe.isascii()) and _has_surrogate(data):
        return scrub_surrogates(data)
    return data


async def read_json_body(request: Request, max_bytes: int, max_depth: int = 64
                         ) -> tuple[bytes, dict[str, Any]]:
    raw = await read_body(request, max_bytes)
    body = parse_json(raw, max_depth)
    if not isinstance(body, dict):
        raise BadRequestError("Request body must be a JSON object.", code="invalid_json")
    return raw, body


def _require(body: dict[str, Any], field: str, kind: type | tuple[type, ...], desc: str) -> None:
    if field not in body:
        raise BadRequestError(f"Missing required parameter: '{field}'.", param=field,
                              code="missing_required_parameter")
    if not isinstance(body[field], kind) or (isinstance(body[field], bool) and kind is not bool):
        raise BadRequestError(f"Invalid type for '{field}': expected {desc}.", param=field,
                              code="invalid_type")


def validate_chat(body: dict[str, Any]) -> None:
    _require(body, "model", str, "a string")
    _require(body, "messages", list, "an array of messages")
    if not body["messages"]:
        raise BadRequestError("'messages' must contain at least one message.", param="messages",
                              code="invalid_value")
    for i, m in enumerate(body["messages"]):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequestError(f"messages[{i}] must be an object with a 'role'.",
                                  param=f"messages[{i}]", code="invalid_value")
    _common(body)


def validate_completion(body: dict[str, Any]) -> None:
    _require(body, "model", str, "a string")
    _require(body, "prompt", (str, list), "a string or an array")
    _common(body)


def _common(body: dict[str, Any]) -> None:
    if "stream" in body and not isinstance(body["stream"], bool):
        raise BadRequestError("Invalid type for 'stream': expected a boolean.", param="stream",
                              code="invalid_type")
    n = body.get("n", 1)
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise BadRequestError("'n' must be a positive integer.", param="n", code="invalid_value")


@dataclass
class TextField:
    """A scannable string inside a response: where it is, and how to put a new value back."""

    choice: int
    stage: Stage
    path: tuple[str | int, ...]  # path inside the choice object
    text: str


def chat_fields(choice: dict[str, Any], idx: int) -> list[TextField]:
    out: list[TextField] = []
    msg = choice.get("message") or {}
    if isinstance(msg.get("content"), str):
        out.append(TextField(idx, Stage.OUTPUT, ("message", "content"), msg["content"]))
    if isinstance(msg.get("refusal"), str):
        out.append(TextField(idx, Stage.OUTPUT, ("message", "refusal"), msg["refusal"]))
    for t, call in enumerate(msg.get("tool_calls") or []):
        args = (call.get("function") or {}).get("arguments")
        if isinstance(args, str):
            out.append(TextField(idx, Stage.TOOL_ARGUMENTS,
                                 ("message", "tool_calls", t, "function", "arguments"), args))
    fc = msg.get("function_call") or {}
    if isinstance(fc.get("arguments"), str):
        out.append(TextField(idx, Stage.TOOL_ARGUMENTS, ("message", "function_call", "arguments"),
                             fc["arguments"]))
    return out


def completion_fields(choice: dict[str, Any], idx: int) -> list[TextField]:
    text = choice.get("text")
    return [TextField(idx, Stage.OUTPUT, ("text",), text)] if isinstance(text, str) else []


def set_path(obj: Any, path: tuple[str | int, ...], value: Any) -> None:
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value
