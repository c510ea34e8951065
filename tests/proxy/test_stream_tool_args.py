"""StreamGuard and tool calls: arguments are held whole, scanned, redacted or blocked; the raw
value never leaves (issue 12, finding 1)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.proxy.test_streaming import make_guard

SECRET = "sk-abcdef0123456789xyz"


def ev(delta: dict[str, Any], finish: str | None = None) -> str:
    return json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def relay(events: list[str]) -> tuple[bytes, Any]:
    async def go() -> tuple[bytes, Any]:
        g = make_guard()
        out: list[bytes] = []
        for e in events:
            out += await g.feed(e)
            if g.stopped:
                break
        if not g.stopped:
            out += await g.finish()
        return b"".join(out), g
    return asyncio.run(go())


def tool_events(args: str, piece: int, key: str = "tool_calls", index: Any = 0) -> list[str]:
    def part(a: str, first: bool = False) -> dict[str, Any]:
        fn: dict[str, Any] = {"arguments": a}
        if first:
            fn["name"] = "lookup"
        if key == "function_call":
            return {"function_call": fn}
        call: dict[str, Any] = {"index": index, "function": fn}
        if first:
            call |= {"id": "call_1", "type": "function"}
        return {"tool_calls": [call]}
    return [ev({"role": "assistant", "content": None}), ev(part("", first=True)),
            *[ev(part(args[i:i + piece])) for i in range(0, len(args), piece)],
            ev({}, "tool_calls")]


def received(raw: bytes) -> tuple[str, list[str]]:
    args, finishes = "", []
    for block in raw.decode().split("\n\n"):
        if not block.startswith("data: "):
            continue
        d = json.loads(block[6:])
        for ch in d.get("choices") or []:
            delta = ch.get("delta") or {}
            for call in delta.get("tool_calls") or []:
                args += (call.get("function") or {}).get("arguments") or ""
            args += (delta.get("function_call") or {}).get("arguments") or ""
            if ch.get("finish_reason"):
                finishes.append(ch["finish_reason"])
    return args, finishes


@pytest.mark.parametrize("key", ["tool_calls", "function_call"])
@pytest.mark.parametrize("piece", [1, 2, 3, 7, 100])
def test_tool_arguments_redacted_at_any_chunking(key, piece):
    args = json.dumps({"token": SECRET, "q": "weather"})
    raw, g = relay(tool_events(args, piece, key))
    assert SECRET.encode() not in raw and b"0123456789" not in raw
    got, finishes = received(raw)
    assert got == json.dumps({"token": "<SECRET>", "q": "weather"})
    assert finishes == ["tool_calls"]
    assert g.action.value == "redact"
    assert [r.stage for r in g.state.store.rows] == ["tool_arguments"]


def test_clean_tool_arguments_pass_byte_for_byte():
    events = tool_events(json.dumps({"q": "weather in Tokyo"}), 4)
    raw, g = relay(events)
    for e in events:
        assert f"data: {e}\n\n".encode() in raw
    assert g.action.value == "allow"


def test_unredactable_tool_arguments_block_and_release_nothing():
    # an index the rewrite cannot address: the arguments cannot be replaced, so block
    raw, g = relay(tool_events(json.dumps({"token": SECRET}), 3, index="0"))
    assert b"sk-" not in raw and b"0123" not in raw
    assert received(raw)[1] == ["content_filter"]
    assert g.action.value == "block"
