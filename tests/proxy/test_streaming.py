"""StreamGuard: whatever the chunking, a match is never released and redaction is exact."""

from __future__ import annotations

import asyncio
import json

import pytest

from guardrail.deps import Client
from guardrail.pipeline.runner import Pipeline, ScannerCache
from guardrail.pipeline.types import RequestMeta
from guardrail.policy import Policy
from guardrail.proxy.streaming import StreamGuard
from tests.mocks.stores import fake_state

POLICY = {
    "name": "t",
    "stream": {"holdback_chars": 8, "scan_every_chars": 5},
    "scanners": [
        {"type": "denylist", "name": "ban", "terms": ["forbidden-codename"], "action": "block"},
        {"type": "denylist", "name": "sec", "category": "secret", "action": "redact",
         "patterns": [r"sk-[a-z0-9]{10,}"]},
    ],
}



def make_guard():
    policy = Policy.model_validate(POLICY)
    pipe = Pipeline(policy, ScannerCache(runtime=None))
    state = fake_state()
    meta = RequestMeta(request_id="r", route="/v1/chat/completions", policy_name="t",
                       policy_version=policy.version, system_id="s")
    return StreamGuard(state, Client(key_id=None, policy=policy, pipeline=pipe), meta, chat=True)


def chunk(text: str | None, finish: str | None = None) -> str:
    delta = {} if text is None else {"content": text}
    return json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def run(text: str, size: int) -> tuple[str, str | None, list[str]]:
    async def go():
        g = make_guard()
        out: list[bytes] = []
        for i in range(0, len(text), size):
            out += await g.feed(chunk(text[i:i + size]))
            if g.stopped:
                break
        else:
            out += await g.feed(chunk(None, "stop"))
        out += await g.finish() if not g.stopped else []
        released, finish = "", None
        for b in out:
            d = json.loads(b.decode()[6:])
            for ch in d["choices"]:
                released += (ch.get("delta") or {}).get("content") or ""
                finish = ch.get("finish_reason") or finish
        return released, finish, [r.action for r in g.state.store.rows]
    return asyncio.run(go())


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 11, 50])
def test_redaction_exact_for_any_chunking(size):
    text = "Here it is: sk-abcdef0123456789xyz and then more words after it."
    released, finish, actions = run(text, size)
    assert released == "Here it is: <SECRET> and then more words after it."
    assert finish == "stop"
    assert actions == ["redact"]


@pytest.mark.parametrize("size", [1, 3, 5, 9, 64])
def test_block_never_releases_any_part_of_the_term(size):
    text = "Some harmless preamble text here, then forbidden-codename, then more."
    released, finish, actions = run(text, size)
    assert finish == "content_filter"
    assert "forbidden" not in released and "codename" not in released
    assert released == text[: len(released)]
    assert actions == ["block"]


def test_benign_stream_released_in_full_unchanged():
    text = "Nothing to see here, just a long enough benign sentence for several windows."
    for size in (1, 4, 13):
        released, finish, actions = run(text, size)
        assert (released, finish, actions) == (text, "stop", [])


def test_first_release_comes_right_after_the_holdback_window():
    """The first scan runs once ``first_release_chars`` lie beyond the hold-back window, not
    at a multiple of ``scan_every_chars``: the first token reaches the client sooner."""
    policy = {**POLICY, "stream": {"holdback_chars": 40, "scan_every_chars": 100,
                                   "first_release_chars": 4}}

    async def go() -> tuple[int, int, str]:
        p = Policy.model_validate(policy)
        pipe = Pipeline(p, ScannerCache(runtime=None))
        state = fake_state()
        meta = RequestMeta(request_id="r", route="/v1/chat/completions", policy_name="t",
                           policy_version=p.version, system_id="s")
        g = StreamGuard(state, Client(key_id=None, policy=p, pipeline=pipe), meta, chat=True)
        text = "A benign answer that goes on and on without anything to flag at all. " * 3
        for i, c in enumerate(text):
            out = await g.feed(chunk(c))
            got = "".join((ch.get("delta") or {}).get("content") or ""
                          for b in out for ch in json.loads(b.decode()[6:])["choices"])
            if got:
                return i + 1, pipe.release_floor, got
        raise AssertionError("nothing released")

    # the floor: the policy's 40 (every scanner here bounds its own release: the denylist by
    # partial matching), so the first 4 characters leave as soon as 44 have arrived
    fed, floor, got = asyncio.run(go())
    assert floor == 40
    assert fed == floor + 4 and len(got) == 4
