"""Sign-in rate limit: failed attempts per (name, client address).

In this process by default (:class:`SignInLimiter`: N workers allow up to N times the limit,
a restart forgets); shared by every worker and node through Redis when ``GUARDRAIL_REDIS_URL``
is set (:class:`RedisSignInLimiter`). A success clears the count; while limited, no password is
checked at all. The redress intake's per-address budgets use the same classes.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("guardrail.people")


class SignInLimiter:
    def __init__(self, max_failures: int = 5, window_s: float = 300.0, *,
                 max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_entries = max_entries  # memory bound: the oldest entries are forgotten
        self.clock = clock
        self._fails: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and now - q[0] >= self.window_s:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    def retry_after(self, name: str, addr: str) -> int:
        """Seconds until ``name`` may try again from ``addr`` (0: now)."""
        now = self.clock()
        with self._lock:
            q = self._recent((name, addr), now)
            if len(q) < self.max_failures:
                return 0
            return max(1, int(q[-self.max_failures] + self.window_s - now + 0.999))

    def failed(self, name: str, addr: str) -> None:
        now = self.clock()
        with self._lock:
            key = (name, addr)
            self._recent(key, now)
            q = self._fails.setdefault(key, deque(maxlen=self.max_failures))
            q.append(now)
            self._fails.move_to_end(key)
            while len(self._fails) > self.max_entries:
                self._fails.popitem(last=False)

    def succeeded(self, name: str, addr: str) -> None:
        with self._lock:
            self._fails.pop((name, addr), None)


class RedisSignInLimiter:
    """:class:`SignInLimiter`'s contract kept in Redis, shared by every worker and node: one
    sorted set of failure times per (name, address), trimmed to the window. Redis unreachable:
    the in-process limiter takes over (logged once per outage), so sign-in never fails open
    entirely and never waits on a dead Redis longer than its socket timeout."""

    def __init__(self, client: Any, max_failures: int = 5, window_s: float = 300.0, *,
                 scope: str = "signin", namespace: str = "guardrail",
                 clock: Callable[[], float] = time.time) -> None:
        self.r, self.max_failures, self.window_s = client, max_failures, window_s
        self.prefix = f"{namespace}:limits:"
        self.scope, self.clock = scope, clock
        self.local = SignInLimiter(max_failures, window_s)
        self._down = False

    def _key(self, name: str, addr: str) -> str:
        digest = hashlib.sha256(f"{name}\x00{addr}".encode()).hexdigest()[:32]
        return f"{self.prefix}{self.scope}:{digest}"  # no name or address in Redis keys

    def _fallback(self, exc: Exception) -> None:
        if not self._down:
            self._down = True
            log.warning("signin_limits_local: Redis unreachable (%s); counting in this process",
                        type(exc).__name__)

    def retry_after(self, name: str, addr: str) -> int:
        import redis

        now = self.clock()
        try:
            k = self._key(name, addr)
            pipe = self.r.pipeline()
            pipe.zremrangebyscore(k, 0, now - self.window_s)
            pipe.zrange(k, 0, -1, withscores=True)
            _, got = pipe.execute()
            self._down = False
        except redis.RedisError as exc:
            self._fallback(exc)
            return self.local.retry_after(name, addr)
        times = sorted(score for _, score in got)
        if len(times) < self.max_failures:
            return 0
        return max(1, int(times[-self.max_failures] + self.window_s - now + 0.999))

    def failed(self, name: str, addr: str) -> None:
        import redis

        now = self.clock()
        try:
            k = self._key(name, addr)
            pipe = self.r.pipeline()
            pipe.zadd(k, {f"{now:.6f}:{uuid.uuid4().hex[:8]}": now})
            pipe.zremrangebyrank(k, 0, -self.max_failures - 1)  # only the newest count
            pipe.expire(k, int(self.window_s) + 1)
            pipe.execute()
        except redis.RedisError as exc:
            self._fallback(exc)
            self.local.failed(name, addr)

    def succeeded(self, name: str, addr: str) -> None:
        import redis

        self.local.succeeded(name, addr)
        try:
            self.r.delete(self._key(name, addr))
        except redis.RedisError as exc:
            self._fallback(exc)


def build_limiter(redis_url: str | None, max_failures: int, window_s: float,
                  scope: str = "signin", namespace: str = "guardrail"
                  ) -> SignInLimiter | RedisSignInLimiter:
    """Per process without Redis; shared through Redis with ``GUARDRAIL_REDIS_URL``."""
    if not redis_url:
        return SignInLimiter(max_failures, window_s)
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=0.3, socket_connect_timeout=0.3)
    return RedisSignInLimiter(client, max_failures, window_s, scope=scope, namespace=namespace)
