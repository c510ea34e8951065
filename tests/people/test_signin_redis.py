"""The sign-in limit shared through Redis: two workers (two limiters) count one budget; a dead
Redis falls back to counting in the process."""

from __future__ import annotations

import uuid

import redis

from guardrail.people.ratelimit import RedisSignInLimiter
from tests.services import require_redis


def test_two_workers_share_one_budget():
    url = require_redis()
    a = RedisSignInLimiter(redis.Redis.from_url(url), 3, 60, scope="t" + uuid.uuid4().hex)
    b = RedisSignInLimiter(redis.Redis.from_url(url), 3, 60, scope=a.scope)
    a.failed("kato", "10.0.0.1")
    b.failed("kato", "10.0.0.1")
    assert a.retry_after("kato", "10.0.0.1") == 0
    a.failed("kato", "10.0.0.1")
    assert 1 <= b.retry_after("kato", "10.0.0.1") <= 60  # the third failure, seen by b
    assert b.retry_after("kato", "10.0.0.2") == 0  # another address
    b.succeeded("kato", "10.0.0.1")
    assert a.retry_after("kato", "10.0.0.1") == 0
    assert not any(b"kato" in k for k in a.r.keys(f"{a.prefix}*"))  # no names in Redis
    a.r.close()
    b.r.close()


def test_dead_redis_counts_in_the_process():
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    lim = RedisSignInLimiter(dead, 2, 60)
    lim.failed("x", "a")
    lim.failed("x", "a")
    assert lim.retry_after("x", "a") >= 1
    dead.close()
