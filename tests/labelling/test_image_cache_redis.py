"""Signed images served by URL from any worker or node: the cache in Redis."""

from __future__ import annotations

import uuid

import redis

from guardrail.labelling.service import ImageCache, RedisImageCache
from tests.services import require_redis


def test_an_image_signed_on_one_node_is_served_by_another():
    url = require_redis()
    ns = "t-" + uuid.uuid4().hex[:8]
    a = RedisImageCache(redis.Redis.from_url(url), ImageCache(10, 10_000, 60), ns)
    b = RedisImageCache(redis.Redis.from_url(url), ImageCache(10, 10_000, 60), ns)
    image_id = a.put(b"\x89PNG fake bytes", "image/png")
    assert image_id is not None
    assert b.get(image_id) == ("image/png", b"\x89PNG fake bytes")
    assert b.local.get(image_id) is None  # it came from Redis, not b's own memory
    assert 0 < a.r.ttl(a.prefix + image_id) <= 60
    assert a.put(b"x" * 20_000, "image/png") is None  # larger than one image may be
    assert b.get("img_unknown") is None
    a.r.close()
    b.r.close()


def test_dead_redis_keeps_the_image_in_the_process():
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    c = RedisImageCache(dead, ImageCache(10, 10_000, 60))
    image_id = c.put(b"data", "image/webp")
    assert image_id is not None and c.get(image_id) == ("image/webp", b"data")
    dead.close()
