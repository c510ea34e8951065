"""Sign-in rate limit: failed attempts per (name, client address), in this process.

In-process only: each worker counts on its own, so N workers allow up to N times the limit,
and a restart forgets. A shared limit (Redis) belongs with the scale-out work. A success clears
the count; while limited, no password is checked at all.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


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
