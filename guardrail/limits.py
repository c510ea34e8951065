"""Per-client-key limits: requests per minute and requests in flight (429 with Retry-After).

``GUARDRAIL_KEY_RATE_PER_MIN`` and ``GUARDRAIL_KEY_MAX_CONCURRENCY`` (0: no limit) apply to
every client key; a configured key may set its own ``rate_per_min`` / ``max_concurrency``.
Counted in this process (:class:`LocalLimits`), or in Redis when ``GUARDRAIL_REDIS_URL`` is set
(:class:`RedisLimits`: shared by every worker and node). The rate is a sliding window of
one minute approximated by two fixed windows (the previous window's count weighted by how much
of it still overlaps, as Cloudflare and nginx do); concurrency is a counter taken before the
upstream call and given back when the response (a stream: its last byte) is done.

If Redis is unreachable the limit is not applied (fail open) and the failure is logged; the
request is never refused for an outage of the limiter.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from guardrail.errors import ApiError
from guardrail.logs import event

log = logging.getLogger("guardrail.limits")

WINDOW_S = 60.0


class RateLimitedError(ApiError):
    status_code = 429
    error_type = "requests"  # OpenAI's type for rate limits
    code = "rate_limit_exceeded"


@dataclass(frozen=True)
class KeyLimits:
    rate_per_min: int = 0  # 0: unlimited
    max_concurrency: int = 0


Release = Callable[[], Awaitable[None]]


class Limits(Protocol):
    async def acquire(self, key: str, limits: KeyLimits) -> Release:
        """Count one request for ``key``; return the release for its concurrency slot (safe
        to call twice), or raise :class:`RateLimitedError`."""


def _weighted(prev: int, cur: int, now: float) -> float:
    elapsed = now % WINDOW_S
    return prev * (1 - elapsed / WINDOW_S) + cur


def _retry_after(prev: int, cur: int, rate: int, now: float) -> int:
    """Seconds until the weighted count drops under ``rate`` (at least 1)."""
    elapsed = now % WINDOW_S
    if prev == 0 or cur >= rate:
        return max(1, math.ceil(WINDOW_S - elapsed))
    need = prev * (1 - elapsed / WINDOW_S) + cur + 1 - rate  # to shed from prev's share
    return max(1, math.ceil(need / prev * WINDOW_S))


def _refused_rate(rate: int, retry: int) -> RateLimitedError:
    return RateLimitedError(f"Rate limit reached for this key: {rate} requests per minute. "
                            f"Retry in {retry} s.", headers={"Retry-After": str(retry)})


def _refused_concurrency(n: int) -> RateLimitedError:
    return RateLimitedError(f"Too many requests in flight for this key (limit {n}). Retry "
                            "when one has finished.", code="concurrency_limit_exceeded",
                            headers={"Retry-After": "1"})


async def _noop() -> None:
    return None


class LocalLimits:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int, int]] = {}  # key -> (window, prev, cur)
        self._inflight: dict[str, int] = {}

    async def acquire(self, key: str, limits: KeyLimits) -> Release:
        now = self.clock()
        with self._lock:
            w = int(now // WINDOW_S)
            win, prev, cur = self._windows.get(key, (w, 0, 0))
            if win != w:
                prev, cur = (cur if win == w - 1 else 0), 0
            if limits.rate_per_min and _weighted(prev, cur, now) + 1 > limits.rate_per_min:
                self._windows[key] = (w, prev, cur)
                raise _refused_rate(limits.rate_per_min,
                                    _retry_after(prev, cur, limits.rate_per_min, now))
            n = self._inflight.get(key, 0)
            if limits.max_concurrency and n >= limits.max_concurrency:
                raise _refused_concurrency(limits.max_concurrency)  # not counted as a request
            if limits.rate_per_min:
                self._windows[key] = (w, prev, cur + 1)
            if not limits.max_concurrency:
                return _noop
            self._inflight[key] = n + 1
        done = threading.Event()

        async def release() -> None:
            if done.is_set():
                return
            done.set()
            with self._lock:
                left = self._inflight.get(key, 1) - 1
                if left > 0:
                    self._inflight[key] = left
                else:
                    self._inflight.pop(key, None)

        return release


class RedisLimits:
    """The same limits in Redis (``redis.asyncio``), shared by every worker and node."""

    def __init__(self, client: Any, clock: Callable[[], float] = time.time,
                 namespace: str = "guardrail") -> None:
        self.r, self.clock = client, clock
        self.prefix = f"{namespace}:limits:"

    async def acquire(self, key: str, limits: KeyLimits) -> Release:
        import redis

        now = self.clock()
        try:
            if limits.rate_per_min:
                w = int(now // WINDOW_S)
                cur_k, prev_k = f"{self.prefix}rate:{key}:{w}", f"{self.prefix}rate:{key}:{w - 1}"
                pipe = self.r.pipeline()
                pipe.incr(cur_k)
                pipe.expire(cur_k, int(2 * WINDOW_S))
                pipe.get(prev_k)
                cur, _, prev = await pipe.execute()
                prev = int(prev or 0)
                if _weighted(prev, int(cur) - 1, now) + 1 > limits.rate_per_min:
                    await self.r.decr(cur_k)  # a refused request does not count
                    raise _refused_rate(limits.rate_per_min, _retry_after(
                        prev, int(cur) - 1, limits.rate_per_min, now))
            if not limits.max_concurrency:
                return _noop
            ck = f"{self.prefix}inflight:{key}"
            n = int(await self.r.incr(ck))
            await self.r.expire(ck, 3600)  # a killed worker's slots do not leak forever
            if n > limits.max_concurrency:
                await self.r.decr(ck)
                if limits.rate_per_min:
                    await self.r.decr(cur_k)  # refused: not counted as a request
                raise _refused_concurrency(limits.max_concurrency)
        except redis.RedisError as exc:
            event(log, logging.WARNING, "limits_unavailable", error=type(exc).__name__)
            return _noop
        done = threading.Event()

        async def release() -> None:
            if done.is_set():
                return
            done.set()
            try:
                await self.r.decr(ck)
            except redis.RedisError as exc:
                event(log, logging.WARNING, "limits_unavailable", error=type(exc).__name__)

        return release

    async def aclose(self) -> None:
        await self.r.aclose()


def build_limits(redis_url: str | None, namespace: str = "guardrail") -> Limits:
    if not redis_url:
        return LocalLimits()
    import redis.asyncio

    return RedisLimits(redis.asyncio.Redis.from_url(redis_url, socket_timeout=0.5,
                                                    socket_connect_timeout=0.5),
                       namespace=namespace)
