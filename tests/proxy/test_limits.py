"""Per-key rate and concurrency limits (429 + Retry-After, OpenAI format), in this process and
in Redis; JSON depth limit."""

from __future__ import annotations

import asyncio
import threading

import httpx
import openai
import pytest

from guardrail.limits import KeyLimits, LocalLimits, RateLimitedError, RedisLimits
from tests.conftest import CLIENT_KEY


def chat(srv, key: str = CLIENT_KEY, model: str = "echo", **kw) -> httpx.Response:
    return httpx.post(f"{srv.base_url}/chat/completions",
                      headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}],
                            **kw})


def test_rate_limit_per_key_is_429_with_retry_after(make_server):
    srv = make_server(api_keys=[{"key": CLIENT_KEY, "rate_per_min": 3}, "sk-other"])
    assert [chat(srv).status_code for _ in range(3)] == [200, 200, 200]
    r = chat(srv)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert r.json()["error"]["type"] == "requests"
    assert chat(srv, "sk-other").status_code == 200  # another key has its own budget
    with pytest.raises(openai.RateLimitError):  # what the SDK makes of it
        openai.OpenAI(base_url=srv.base_url, api_key=CLIENT_KEY, max_retries=0
                      ).chat.completions.create(model="echo",
                                                messages=[{"role": "user", "content": "x"}])


def test_concurrency_limit_counts_streams_until_their_end(make_server):
    srv = make_server(key_max_concurrency=1)
    got: list[int] = []
    started = threading.Event()

    def slow() -> None:
        started.set()
        got.append(chat(srv, model="slow", fake_sleep=1.5).status_code)

    t = threading.Thread(target=slow)
    t.start()
    started.wait()
    import time

    time.sleep(0.4)
    busy = chat(srv)
    t.join()
    assert busy.status_code == 429 and busy.json()["error"]["code"] == \
        "concurrency_limit_exceeded"
    assert got == [200]
    with httpx.stream("POST", f"{srv.base_url}/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {CLIENT_KEY}"},
                      json={"model": "echo", "stream": True, "fake_chunk_delay": 0.1,
                            "messages": [{"role": "user", "content": "hello there"}]}) as s:
        assert chat(srv).status_code == 429  # the open stream holds the slot
        for _ in s.iter_lines():
            pass
    assert chat(srv).status_code == 200  # given back at the stream's end


def test_json_nested_too_deep_is_400(make_server):
    srv = make_server(max_json_depth=8)
    deep: object = "x"
    for _ in range(10):
        deep = [deep]
    r = chat(srv, extra=deep)
    assert r.status_code == 400 and r.json()["error"]["code"] == "json_too_deep"
    assert chat(srv, extra=[[["ok"]]]).status_code == 200


def test_local_sliding_window():
    now = [1000 * 60.0]
    lim = LocalLimits(clock=lambda: now[0])
    one = KeyLimits(rate_per_min=2)

    async def go() -> None:
        await lim.acquire("k", one)
        await lim.acquire("k", one)
        with pytest.raises(RateLimitedError) as e:
            await lim.acquire("k", one)
        assert int(e.value.headers["Retry-After"]) == 60
        now[0] += 60 + 30  # half of the previous window still counts: 2 * 0.5 = 1 used
        await lim.acquire("k", one)
        with pytest.raises(RateLimitedError):
            await lim.acquire("k", one)

    asyncio.run(go())


def _redis() -> None:
    from tests.services import require_redis

    require_redis()


def test_redis_limits_are_shared_between_limiters():
    import uuid

    key = "k-" + uuid.uuid4().hex[:8]
    two = KeyLimits(rate_per_min=2, max_concurrency=1)

    async def go() -> None:
        a, b = RedisLimits(_redis_client()), RedisLimits(_redis_client())
        rel = await a.acquire(key, two)
        with pytest.raises(RateLimitedError, match="in flight"):
            await b.acquire(key, two)  # another worker sees the slot taken
        await rel()
        await rel()  # twice: still one slot given back
        rel2 = await b.acquire(key, two)
        await rel2()
        with pytest.raises(RateLimitedError, match="per minute"):
            await a.acquire(key, two)
        await a.aclose()
        await b.aclose()

    _redis()
    asyncio.run(go())


def _redis_client():
    import redis.asyncio

    return redis.asyncio.Redis.from_url("redis://127.0.0.1:6379/15")


def test_redis_outage_fails_open():
    async def go() -> None:
        import redis.asyncio

        dead = RedisLimits(redis.asyncio.Redis.from_url(
            "redis://127.0.0.1:1/0", socket_connect_timeout=0.2))
        release = await dead.acquire("k", KeyLimits(rate_per_min=1, max_concurrency=1))
        await release()
        await dead.aclose()

    asyncio.run(go())
