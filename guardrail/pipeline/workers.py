"""Bounded worker pools for the thread-backed scanners (pii, ip).

Each such scanner owns one :class:`WorkerPool`: ``size`` named threads
(``guardrail-pii_0`` ...), never the event loop's shared default executor. Python cannot stop a
thread, so a scan that times out cannot hand its thread back early. What is bounded instead,
and recorded as it is:

* a job holds one of ``size`` slots from the moment it is handed to a thread until that thread
  has really finished it, not until the scan awaiting it gave up: a pool never runs more than
  ``size`` jobs, and never queues work behind a stuck one;
* a scan waits for a free slot on the event loop, inside the runner's per-scanner timeout: a
  scan that gets no worker in time fails by its ``on_error`` like any timeout, and the
  failure's message and warning say how busy the pool was (:meth:`WorkerPool.load`);
* a scan that times out before its job started withdraws it: it never takes a thread.

:meth:`WorkerPool.aclose` (from the app's lifespan, through the scanners) refuses new work,
fails the waiting scans and lets the threads end after their current job.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from guardrail.errors import ConfigError, ScannerRuntimeError

if TYPE_CHECKING:
    from guardrail.runtime import Runtime

R = TypeVar("R")
DEFAULT_WORKERS = 2  # GUARDRAIL_SCANNER_WORKERS' default


def pool_size(configured: int | None, runtime: Runtime | None) -> int:
    """A scanner's pool size: its config's ``workers``, else ``GUARDRAIL_SCANNER_WORKERS``."""
    if configured is not None:
        return configured
    settings = getattr(runtime, "settings", None)  # a bare runtime (tests) has none
    return int(getattr(settings, "scanner_workers", DEFAULT_WORKERS))


class WorkerPoolClosedError(ScannerRuntimeError):
    """The pool was closed (shutting down): no new scan starts."""


class WorkerPool:
    def __init__(self, name: str, size: int) -> None:
        if size < 1:
            raise ConfigError(f"{name}: a worker pool needs at least one thread")
        self.name, self.size = name, size
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"guardrail-{name}")
        self._lock = threading.Lock()
        self._busy = 0  # slots held: jobs handed to a thread and not finished
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._closed = False

    def load(self) -> dict[str, int]:
        """``busy`` of ``size`` slots held, ``waiting`` scans queued for one."""
        with self._lock:
            return {"busy": self._busy, "size": self.size, "waiting": len(self._waiters)}

    def describe_load(self) -> str:
        d = self.load()
        return f"{self.name} workers {d['busy']}/{d['size']} busy, {d['waiting']} waiting"

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)`` on one of the pool's threads, once a slot is free."""
        await self._acquire()
        try:
            job = self._pool.submit(fn, *args)
        except RuntimeError:  # shut down since the slot was granted
            self._release()
            raise WorkerPoolClosedError(f"{self.name} worker pool is closed") from None
        except BaseException:
            self._release()
            raise
        job.add_done_callback(self._finished)  # finished, failed or withdrawn: slot back
        return await asyncio.wrap_future(job)  # cancelling this withdraws a job not started

    async def _acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise WorkerPoolClosedError(f"{self.name} worker pool is closed")
            if self._busy < self.size and not self._waiters:
                self._busy += 1
                return
            granted: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, granted))
        try:
            await granted
        except BaseException:
            with self._lock:
                try:
                    self._waiters.remove((loop, granted))
                except ValueError:
                    pass  # a slot is on its way to it: _grant passes it on
            raise

    def _finished(self, _job: Future[Any]) -> None:
        self._release()

    def _release(self) -> None:
        """Give a slot back: straight to the first waiter still alive, else free it."""
        with self._lock:
            while self._waiters:
                loop, granted = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(self._grant, granted)
                except RuntimeError:  # its loop is closed
                    continue
                return
            self._busy -= 1

    def _grant(self, granted: asyncio.Future[None]) -> None:
        if granted.done():  # cancelled meanwhile (its scan timed out): the next one's
            self._release()
        else:
            granted.set_result(None)

    async def aclose(self) -> None:
        with self._lock:
            self._closed = True
            waiters = list(self._waiters)
            self._waiters.clear()
        for loop, granted in waiters:
            try:
                loop.call_soon_threadsafe(self._refuse, granted)
            except RuntimeError:
                continue
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _refuse(self, granted: asyncio.Future[None]) -> None:
        if not granted.done():
            granted.set_exception(WorkerPoolClosedError(f"{self.name} worker pool is closed"))
