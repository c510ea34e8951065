"""Through the SSE relay, the denylist scanner's own release bound: a banned term or an API
key split across chunks never leaves raw, whatever the chunk size (asserted on the bytes the
client receives), and benign text starts flowing after a few characters instead of the
secrets pattern's old fixed 64-character window."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from guardrail.deps import Client
from guardrail.pipeline.runner import Pipeline, ScannerCache
from guardrail.pipeline.types import RequestMeta
from guardrail.policy import Policy
from guardrail.proxy.streaming import StreamGuard
from tests.mocks.stores import fake_state

SIZES = [1, 2, 3, 7, 13, 50]
OLD_WINDOW = 64  # the secrets pattern's fixed hold-back before
KEY = "sk-" + "q7w8e9r0t1" * 4
STREAM = {"holdback_chars": 0, "scan_every_chars": 16, "first_release_chars": 8}
BENIGN = ("Thanks for the question. The report covers three regions. Sales grew in the north, "
          "held steady in the west and dipped slightly in the south. The team suggests a "
          "review of pricing next quarter, with a short survey of customers first. ")
SCANNERS = [
    {"type": "denylist", "terms": ["Project Falcon", "社外秘"]},
    {"type": "denylist", "name": "secrets", "action": "redact",
     "patterns": ["sk-[a-z0-9]{20,}"]},
]



def fake_runtime() -> Any:
    services: dict[str, Any] = {}

    def service(name: str, factory: Any) -> Any:
        if name not in services:
            services[name] = factory()
        return services[name]

    return SimpleNamespace(settings=None, engine=None, service=service)


@dataclass
class Relayed:
    raw: bytes  # every SSE byte sent to the client
    released: str  # the content those bytes carry
    finish: str | None
    first_at: int | None  # characters fed when the first content was released


def pipeline() -> Pipeline:
    policy = Policy.model_validate({"name": "t", "stream": STREAM, "scanners": SCANNERS})
    return Pipeline(policy, ScannerCache(fake_runtime()))


def relay(text: str, size: int) -> Relayed:
    pipe = pipeline()

    def chunk(piece: str | None, finish: str | None = None) -> str:
        delta = {} if piece is None else {"content": piece}
        return json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1,
                           "model": "m",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    async def go() -> Relayed:
        state = fake_state()
        meta = RequestMeta(request_id="r", route="/v1/chat/completions", policy_name="t",
                           policy_version=pipe.policy.version, system_id="s")
        g = StreamGuard(state, Client(key_id=None, policy=pipe.policy, pipeline=pipe), meta,  # type: ignore[arg-type]
                        chat=True)
        sent: list[bytes] = []
        first_at = None
        for i in range(0, len(text), size):
            sent += await g.feed(chunk(text[i:i + size]))
            if first_at is None and content(sent)[0]:
                first_at = min(len(text), i + size)
            if g.stopped:
                break
        else:
            sent += await g.feed(chunk(None, "stop"))
        if not g.stopped:
            sent += await g.finish()
        released, finish = content(sent)
        return Relayed(b"".join(sent), released, finish, first_at)

    return asyncio.run(go())


def content(sent: list[bytes]) -> tuple[str, str | None]:
    got, finish = "", None
    for b in sent:
        for line in b.decode().splitlines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for ch in json.loads(line[6:]).get("choices") or []:
                got += (ch.get("delta") or {}).get("content") or ""
                finish = ch.get("finish_reason") or finish
    return got, finish


def assert_not_in_bytes(value: str, raw: bytes) -> None:
    """Neither as UTF-8 nor JSON-escaped (``\\uXXXX``)."""
    for form in (value, json.dumps(value)[1:-1]):
        assert form.encode() not in raw


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("term", "lead"), [
    ("Project Falcon", "We can share the plan. It is called "),
    ("社外秘", "この資料の扱いについて説明します。分類は"),
])
def test_banned_term_split_across_chunks_never_released(size: int, term: str,
                                                         lead: str) -> None:
    text = lead + term + " and more text follows here."
    got = relay(text, size)
    assert got.finish == "content_filter"
    assert text.startswith(got.released)
    assert len(got.released) <= text.index(term)  # not one character of the term
    assert_not_in_bytes(term[:2], got.raw)
    if size < text.index(term):  # a first chunk that ends before the term: the lead flowed
        assert got.first_at is not None and got.first_at < text.index(term)


@pytest.mark.parametrize("size", SIZES)
def test_api_key_split_across_chunks_never_released_raw(size: int) -> None:
    lead = "Here is the configuration you asked for. Set the key to "
    text = lead + KEY + " and restart the service."
    got = relay(text, size)
    assert got.finish == "stop"
    assert got.released.startswith(lead) and got.released.endswith(" and restart the service.")
    assert "sk-" not in got.released
    assert_not_in_bytes("sk-", got.raw)
    assert_not_in_bytes(KEY[3:9], got.raw)
    if size < len(lead):
        assert got.first_at is not None and got.first_at < len(lead)


@pytest.mark.parametrize("size", SIZES)
def test_benign_text_flows_long_before_the_old_window(size: int) -> None:
    pipe = pipeline()
    assert pipe.release_floor == 0  # the secrets pattern bounds its own release now
    got = relay(BENIGN, size)
    assert got.released == BENIGN and got.finish == "stop"
    assert got.first_at is not None
    # the first scan, at first_release_chars, releases (nearly) all that arrived
    assert got.first_at <= STREAM["first_release_chars"] + size
    if size < OLD_WINDOW // 2:
        assert got.first_at < OLD_WINDOW // 2  # it waited for 64 + a chunk before
